// Package xds is meshgate's ADS client: it subscribes to listeners,
// clusters, route configurations and endpoints over one aggregated stream
// (state of the world or delta, on go-control-plane's protos), validates
// what arrives by compiling it as the data plane would, ACKs or NACKs each
// response, and writes accepted resources into the config.Store under the
// source "xds".
//
// Each resource stands alone, as in Envoy: every resource of a response
// that compiles goes live, every one that does not is named in the NACK's
// error_detail and keeps its previous version. The data plane reports
// compile failures per resource (config.ResourceErrors); the client takes
// the failing ones back and tries again until what is left goes through.
//
// Warming is per resource too: a listener goes live once its RDS route
// configurations have arrived and an EDS cluster once its endpoints have
// (or after the initial fetch timeout), while its previous version keeps
// serving. The first config goes live whole, once complete. While
// disconnected the gateway keeps serving the last good config and the
// client reconnects with exponential backoff.
package xds
