// Package rules compiles Dubbo's traffic rules, as Dubbo Admin publishes
// them to the config center, into matchers evaluated per call without
// re-reading text: condition routers ("method = find* => host = 10.0.0.1")
// and tag routers (grey release by dubbo.tag). The semantics follow Java
// Dubbo 3.3's ConditionStateRouter and TagStateRouter (see each type).
package rules

// ConsumerApplication is the application name meshgate calls Dubbo
// providers as: what "application = ..." conditions see, and the key of
// the application-scoped condition rules meant for it.
const ConsumerApplication = "meshgate"
