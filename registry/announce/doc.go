// Package announce registers a provider that meshgate serves for a local
// application (the sidecar's inbound side) in Dubbo registries, the way a
// Dubbo 3 provider registers itself, so that Java Dubbo and dubbo-go
// consumers find it with either discovery model:
//
//   - interface-level: one URL per service under
//     /<root>/<interface>/providers (ephemeral);
//   - application-level: an instance under /services/<app>/<host:port>
//     (ephemeral, Curator's ServiceInstance JSON with Dubbo's metadata: the
//     revision and where the MetadataService answers), the interface ->
//     application mapping under /<root>/mapping/<interface>, and the
//     MetadataInfo of that revision, which the listener answers as
//     org.apache.dubbo.metadata.MetadataService.getMetadataInfo;
//   - the metadata report: each service's definition with full signatures
//     under /<root>/metadata/<interface>/<version>/<group>/provider/<app>
//     (as Java Dubbo publishes it; dubbo-go publishes none).
//
// An Announcer keeps the registration in step with the app's health and
// withdraws it when stopped, before the listener stops accepting.
package announce
