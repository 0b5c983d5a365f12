// Package config owns meshgate's configuration model: a store of Envoy v3
// resources (Listener, RouteConfiguration, Cluster, ClusterLoadAssignment) by
// type and name, with the source and version of each, and the loaders that
// turn files into those resources: meshgate's friendly YAML and Envoy's own
// static_resources.
//
// Sources (files, xDS, registries) only write resources into the Store; the
// data plane reads them through the Consumer it registers. The store hands
// the consumer a candidate Set before committing it, so a change that does
// not compile is rejected whole and the last good set stays. Nothing here
// builds runtime objects.
package config
