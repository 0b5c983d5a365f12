// Package xds will hold meshgate's ADS client (state of the world and delta
// xDS over go-control-plane's protos): it validates what the control plane
// sends with config's validation, writes it into the config.Store under the
// source "xds", and ACKs or NACKs. Nothing is implemented here yet; see the
// xDS issue.
package xds
