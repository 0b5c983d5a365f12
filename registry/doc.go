// Package registry will hold the Nacos and ZooKeeper watchers for
// interface- and application-level Dubbo discovery: they write
// ClusterLoadAssignments (and Dubbo method metadata) into the config.Store,
// which the data plane applies in place. Nothing is implemented here yet;
// see the registries issue.
package registry
