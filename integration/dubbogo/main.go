// Command provider is a dubbo-go v3.3.2 provider for meshgate's integration
// tests: it exports one non-IDL service (hessian2) over both the dubbo and
// tri protocols and registers it in ZooKeeper or Nacos, interface-level,
// application-level, or both. It lives in its own module so that the
// gateway's module does not pull in dubbo-go.
//
//	provider -app demo-app -registry zookeeper -registry-addr 127.0.0.1:2181 -mode all \
//	  -iface org.apache.dubbo.samples.GreeterService -version 1.0.0 -group g1 \
//	  -dubbo-port 20880 -tri-port 50051 -meta-port 20881
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"dubbo.apache.org/dubbo-go/v3"
	"dubbo.apache.org/dubbo-go/v3/common/constant"
	"dubbo.apache.org/dubbo-go/v3/graceful_shutdown"
	_ "dubbo.apache.org/dubbo-go/v3/imports"
	"dubbo.apache.org/dubbo-go/v3/otel/trace"
	"dubbo.apache.org/dubbo-go/v3/protocol"
	"dubbo.apache.org/dubbo-go/v3/registry"
	"dubbo.apache.org/dubbo-go/v3/server"
	hessian "github.com/apache/dubbo-go-hessian2"
	gxbig "github.com/dubbogo/gost/math/big"
)

// User is a POJO with a Java class name, as Java Dubbo services use.
type User struct {
	ID   string `hessian:"id"`
	Name string `hessian:"name"`
	Age  int32  `hessian:"age"`
}

// JavaClassName names the POJO for hessian2.
func (u *User) JavaClassName() string { return "org.apache.dubbo.samples.User" }

// Greeter is the exported service.
type Greeter struct {
	instance string
}

// SayHello greets.
func (g *Greeter) SayHello(_ context.Context, name string) (string, error) {
	return "Hello " + name + " from " + g.instance, nil
}

// GetUser returns the user it was given, one year older.
func (g *Greeter) GetUser(_ context.Context, u *User) (*User, error) {
	return &User{ID: u.ID, Name: u.Name, Age: u.Age + 1}, nil
}

// Add adds.
func (g *Greeter) Add(_ context.Context, a, b int64) (int64, error) { return a + b, nil }

// Bridge is the second service, exported with -bridge only (so that
// what Greeter publishes, which registry fixtures record, stays as it is):
// the Dubbo2 bridge tests' arguments and results.
type Bridge struct {
	instance string
}

// Describe formats its primitive arguments, so a caller sees what arrived.
func (g *Bridge) Describe(_ context.Context, i int32, l int64, d float64, b bool, s string) (string, error) {
	return fmt.Sprintf("int=%d long=%d double=%g boolean=%t string=%s", i, l, d, b, s), nil
}

// Totals sums each list of a map of lists (nested collections).
func (g *Bridge) Totals(_ context.Context, groups map[string][]int64) (map[string]int64, error) {
	out := map[string]int64{}
	for k, vs := range groups {
		for _, v := range vs {
			out[k] += v
		}
	}
	return out, nil
}

// Oldest returns the oldest of a list of users (a list of POJOs).
func (g *Bridge) Oldest(_ context.Context, users []*User) (*User, error) {
	var oldest *User
	for _, u := range users {
		if oldest == nil || u.Age > oldest.Age {
			oldest = u
		}
	}
	return oldest, nil
}

// Later moves a date (java.util.Date) by a number of days. It answers a
// string: dubbo-go's generic invocation turns a time.Time result into an
// empty map.
func (g *Bridge) Later(_ context.Context, t time.Time, days int32) (string, error) {
	return t.AddDate(0, 0, int(days)).UTC().Format(time.RFC3339Nano), nil
}

// Double doubles a java.math.BigDecimal exactly. It answers a string:
// dubbo-go's generic invocation loses a Decimal result's digits.
func (g *Bridge) Double(_ context.Context, d *gxbig.Decimal) (string, error) {
	out := new(gxbig.Decimal)
	if err := gxbig.DecimalAdd(d, d, out); err != nil {
		return "", err
	}
	return out.String(), nil
}

// Attachment answers with an attachment the caller sent (Dubbo's
// RpcContext), so that a caller sees which headers became attachments.
func (g *Bridge) Attachment(ctx context.Context, key string) (string, error) {
	att, _ := ctx.Value(constant.AttachmentKey).(map[string]any)
	v, ok := att[key]
	if !ok {
		return "<none>", nil
	}
	if vs, ok := v.([]string); ok && len(vs) == 1 {
		return vs[0], nil
	}
	return fmt.Sprint(v), nil
}

// Instance names the provider that answered.
func (g *Bridge) Instance(_ context.Context, prefix string) (string, error) {
	return prefix + g.instance, nil
}

// Fail throws: its error reaches the caller as an exception.
func (g *Bridge) Fail(_ context.Context, msg string) (string, error) {
	return "", errors.New("refused: " + msg)
}

// Sleep answers after ms milliseconds (a provider slower than the caller's
// timeout).
func (g *Bridge) Sleep(ctx context.Context, ms int64) (string, error) {
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return "slept " + g.instance, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func main() {
	app := flag.String("app", "dubbo-go-provider", "application name")
	reg := flag.String("registry", "zookeeper", "zookeeper, nacos, or none (serve without registering: bench/)")
	regAddr := flag.String("registry-addr", "127.0.0.1:2181", "registry address")
	namespace := flag.String("namespace", "", "Nacos namespace id")
	username := flag.String("username", "", "registry username (Nacos auth)")
	password := flag.String("password", "", "registry password (Nacos auth)")
	mode := flag.String("mode", "all", "registration: interface, service (application-level) or all")
	iface := flag.String("iface", "org.apache.dubbo.samples.GreeterService", "interface name")
	version := flag.String("version", "1.0.0", "service version")
	group := flag.String("group", "", "service group")
	dubboPort := flag.Int("dubbo-port", 20880, "dubbo protocol port")
	triPort := flag.Int("tri-port", 50051, "tri protocol port")
	metaPort := flag.Int("meta-port", 20881, "metadata service port")
	remote := flag.Bool("remote-metadata", false, "publish metadata to the registry instead of serving it")
	instance := flag.String("instance", "", "name returned in answers (default: app)")
	protocols := flag.String("protocols", "dubbo,tri", "the protocols to export: dubbo, tri or both")
	bridge := flag.Bool("bridge", false, "also export org.apache.dubbo.samples.BridgeService (the Dubbo2 bridge tests')")
	otlp := flag.String("otlp-endpoint", "", "trace every call (dubbo-go's OpenTelemetry filter, W3C) and export the spans to this OTLP gRPC collector")
	flag.Parse()
	if *instance == "" {
		*instance = *app
	}

	hessian.RegisterPOJO(&User{})
	regOpts := []registry.Option{registry.WithAddress(*regAddr)}
	switch *reg {
	case "none":
	case "zookeeper":
		regOpts = append(regOpts, registry.WithZookeeper())
	case "nacos":
		regOpts = append(regOpts, registry.WithNacos())
		if *namespace != "" {
			regOpts = append(regOpts, registry.WithNamespace(*namespace))
		}
		if *username != "" {
			regOpts = append(regOpts, registry.WithUsername(*username), registry.WithPassword(*password))
		}
	default:
		log.Fatalf("unknown registry %q", *reg)
	}
	switch *mode {
	case "interface":
		regOpts = append(regOpts, registry.WithRegisterInterface())
	case "service":
		regOpts = append(regOpts, registry.WithRegisterService())
	case "all":
		regOpts = append(regOpts, registry.WithRegisterServiceAndInterface())
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	opts := []dubbo.InstanceOption{
		dubbo.WithName(*app),
		dubbo.WithMetadataServicePort(*metaPort),
		dubbo.WithShutdown(
			graceful_shutdown.WithTimeout(5*time.Second),
			graceful_shutdown.WithStepTimeout(300*time.Millisecond),
			graceful_shutdown.WithConsumerUpdateWaitTime(0),
			graceful_shutdown.WithOfflineRequestWindowTimeout(0),
			graceful_shutdown.WithNotifyTimeout(300*time.Millisecond),
		),
	}
	for _, p := range strings.Split(*protocols, ",") {
		switch strings.TrimSpace(p) {
		case "dubbo":
			opts = append(opts, dubbo.WithProtocol(protocol.WithDubbo(), protocol.WithPort(*dubboPort)))
		case "tri":
			opts = append(opts, dubbo.WithProtocol(protocol.WithTriple(), protocol.WithPort(*triPort)))
		default:
			log.Fatalf("unknown protocol %q", p)
		}
	}
	if *reg != "none" {
		opts = append(opts, dubbo.WithRegistry(regOpts...))
	}
	if *remote {
		opts = append(opts, dubbo.WithRemoteMetadata())
	}
	if *otlp != "" {
		opts = append(opts, dubbo.WithTracing(trace.WithEnabled(), trace.WithOtlpGrpcExporter(), trace.WithEndpoint(*otlp),
			trace.WithInsecure(), trace.WithW3cPropagator(), trace.WithAlwaysMode()))
	}
	ins, err := dubbo.NewInstance(opts...)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := ins.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	svcOpts := []server.ServiceOption{
		server.WithInterface(*iface),
		server.WithVersion(*version),
		server.WithSerialization(constant.Hessian2Serialization),
	}
	if *group != "" {
		svcOpts = append(svcOpts, server.WithGroup(*group))
	}
	if err := srv.RegisterService(&Greeter{instance: *instance}, svcOpts...); err != nil {
		log.Fatal(err)
	}
	if *bridge {
		bridgeOpts := append([]server.ServiceOption{server.WithInterface("org.apache.dubbo.samples.BridgeService")}, svcOpts[1:]...)
		if err := srv.RegisterService(&Bridge{instance: *instance}, bridgeOpts...); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Fprintln(os.Stdout, "SERVING")
	if err := srv.Serve(); err != nil {
		log.Fatal(err)
	}
}
