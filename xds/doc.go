// Package xds is meshgate's ADS client: it subscribes to listeners,
// clusters, route configurations and endpoints over one aggregated
// state-of-the-world stream (go-control-plane's protos), validates what
// arrives by compiling it as the data plane would, ACKs or NACKs each
// response, and writes accepted resources into the config.Store under the
// source "xds".
//
// Warming: an update is made live only once it is complete (every
// listener's RDS route configuration and every EDS cluster's endpoints
// have arrived) or the initial fetch timeout has passed, so traffic never
// sees half a config. While disconnected the gateway keeps serving the last
// good config and the client reconnects with exponential backoff.
package xds
