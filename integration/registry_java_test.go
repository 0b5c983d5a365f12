package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/registry"
)

// javaGreeterSignatures are GreeterService.java's declarations, written by
// hand from the source: name(parameter types) return type.
var javaGreeterSignatures = []string{
	"add(int,int) int",
	"findUsers(java.lang.String,java.util.Map<java.lang.String,java.lang.String>) java.util.List<org.apache.dubbo.samples.User>",
	"getUser(long) org.apache.dubbo.samples.User",
	"greet(java.lang.String) java.lang.String",
	"greet(java.lang.String,int) java.lang.String",
	"ping() void",
	"sayHello(java.lang.String) java.lang.String",
	"updateUser(org.apache.dubbo.samples.User) org.apache.dubbo.samples.User",
}

// signatures renders a cluster's learned signatures like
// javaGreeterSignatures.
func signatures(md map[string]any) []string {
	var out []string
	list, _ := md["signatures"].([]any)
	for _, s := range list {
		m := s.(map[string]any)
		var types []string
		for _, p := range m["parameter_types"].([]any) {
			types = append(types, p.(string))
		}
		out = append(out, fmt.Sprintf("%s(%s) %s", m["name"], strings.Join(types, ","), m["return_type"]))
	}
	slices.Sort(out)
	return out
}

// Java Dubbo 3.3 providers, registering in ZooKeeper and in Nacos: the
// gateway finds them interface-level and application-level (metadata from
// the MetadataService over tri, Java's default, and from the remote
// metadata report), and learns full signatures from the metadata report,
// matching the Java interface.
func TestRegistry_JavaProvidersZK(t *testing.T) {
	testJavaProviders(t, javaSetup{"zookeeper", func(t *testing.T) (*registryGateway, string) {
		z := startZooKeeper(t)
		return startZKWatcher(t, z.addr, registry.ModeAll), "zookeeper://" + z.addr
	}})
}

// javaSetup is a registry the Java providers register in.
type javaSetup struct {
	name     string
	registry func(t *testing.T) (gw *registryGateway, url string)
}

func testJavaProviders(t *testing.T, setups ...javaSetup) {
	if testing.Short() {
		t.Skip("runs registries and Java Dubbo providers; skipped with -short")
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			g, regURL := s.registry(t)
			// Started together: a JVM takes seconds.
			all := launchJavaProvider(t, javaProviderSpec{App: "java-all", Registry: regURL, Mode: "all", Version: "1.0.0", Group: "g1"})
			inst := launchJavaProvider(t, javaProviderSpec{App: "java-instance", Registry: regURL, Mode: "instance", Version: "2.0.0", Group: "g2"})
			remote := launchJavaProvider(t, javaProviderSpec{App: "java-remote", Registry: regURL, Mode: "instance", Version: "3.0.0", MetadataType: "remote"})
			for _, p := range []*javaProvider{all, inst, remote} {
				p.wait()
			}
			for _, c := range []struct {
				p    *javaProvider
				key  registry.ServiceKey
				what string
			}{
				{all, registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}, "interface- and application-level"},
				{inst, registry.ServiceKey{Interface: greeter, Version: "2.0.0", Group: "g2"}, "application-level, MetadataService over tri"},
				{remote, registry.ServiceKey{Interface: greeter, Version: "3.0.0"}, "application-level, remote metadata"},
			} {
				tri, dub := registry.ClusterName("tri", c.key), registry.ClusterName("dubbo", c.key)
				d := g.waitPorts(t, tri, c.p.triPort)
				g.waitPorts(t, dub, c.p.dubboPort)
				t.Logf("%s %s (%s): endpoints %v after SERVING", s.name, c.key, c.what, d.Round(1e6))
				waitFor(t, "full signatures for "+tri, func() bool {
					return g.dubboMetadata(t, tri)["signatures_source"] == "metadata-report"
				})
				md := g.dubboMetadata(t, tri)
				if got := signatures(md); !slices.Equal(got, javaGreeterSignatures) {
					t.Errorf("%s signatures:\n got %q\nwant %q", tri, got, javaGreeterSignatures)
				}
				if md["serialization"] != "hessian2" {
					t.Errorf("%s serialization %v, want hessian2", tri, md["serialization"])
				}
			}
			// A Java provider that stops gracefully leaves.
			all.stop()
			g.waitPorts(t, registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}))
		})
	}
}
