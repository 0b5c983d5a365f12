// Package registry discovers Dubbo providers in ZooKeeper and Nacos, the way
// a Dubbo consumer finds them, and writes what it finds into the
// config.Store as Envoy resources: per service (interface, version, group)
// and protocol (dubbo, tri), an EDS Cluster carrying the service's Dubbo
// metadata (methods and, when the provider publishes them, signatures) and
// a ClusterLoadAssignment of its providers. Endpoint changes are written as
// ClusterLoadAssignments only, which the data plane applies in place.
//
// Both registration models are read: interface-level (one URL per provider
// and service under /dubbo/<interface>/providers, or Nacos services named
// providers:<interface>:<version>:<group>) and application-level (Dubbo 3's
// default: the interface -> application mapping, one instance per provider
// process, and the provider's metadata, fetched by revision).
package registry
