package org.apache.dubbo.samples;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ProtocolConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.ServiceConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;

/**
 * A Java Dubbo provider for meshgate's integration tests. It exports
 * GreeterService over the dubbo protocol (hessian2, pinned) and over tri,
 * registers it in ZooKeeper or Nacos, and prints SERVING on stdout once
 * everything is exported and registered (logs go to stderr).
 *
 * <pre>
 * java -cp provider.jar:lib/* org.apache.dubbo.samples.Main \
 *   -app java-app -registry zookeeper://127.0.0.1:2181 -mode all \
 *   -version 1.0.0 -group g1 -dubbo-port 20880 -tri-port 50051
 * </pre>
 *
 * Flags (all optional): -app, -registry (zookeeper://host:port or
 * nacos://host:port?namespace=..), -mode (interface|instance|all:
 * dubbo.application.register-mode), -version, -group, -dubbo-port,
 * -tri-port, -meta-port (the MetadataService's port; default: the port of
 * the protocol it uses), -meta-protocol (dubbo|tri; default: Dubbo's
 * choice, the first dubbo/tri protocol its ConfigManager lists, which is
 * tri here although dubbo is given first), -metadata-type
 * (local|remote), -host (the address to bind and register; default: Dubbo's
 * choice, which binds 0.0.0.0 and registers the first non-loopback address:
 * a 127.x host counts as none), -instance (the name answers carry; default the
 * app), -qos (true|false, default false), -bridge (true: also export
 * BridgeService, the Dubbo2 bridge tests' service; default false).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> f = new HashMap<>();
        f.put("app", "java-dubbo-provider");
        f.put("registry", "zookeeper://127.0.0.1:2181");
        f.put("mode", "all");
        f.put("version", "1.0.0");
        f.put("group", "");
        f.put("dubbo-port", "20880");
        f.put("tri-port", "50051");
        f.put("meta-port", "0");
        f.put("metadata-type", "local");
        f.put("meta-protocol", "");
        f.put("host", "");
        f.put("instance", "");
        f.put("qos", "false");
        f.put("bridge", "false");
        for (int i = 0; i < args.length; i++) {
            String a = args[i].replaceFirst("^--?", "");
            String v;
            int eq = a.indexOf('=');
            if (eq >= 0) {
                v = a.substring(eq + 1);
                a = a.substring(0, eq);
            } else if (i + 1 < args.length) {
                v = args[++i];
            } else {
                throw new IllegalArgumentException("flag -" + a + " needs a value");
            }
            if (!f.containsKey(a)) {
                throw new IllegalArgumentException("unknown flag -" + a + " (known: " + f.keySet() + ")");
            }
            f.put(a, v);
        }
        String app = f.get("app");
        String instance = f.get("instance").isEmpty() ? app : f.get("instance");

        ApplicationConfig application = new ApplicationConfig(app);
        application.setRegisterMode(f.get("mode"));
        application.setMetadataType(f.get("metadata-type"));
        application.setQosEnable(Boolean.parseBoolean(f.get("qos")));
        application.setQosAcceptForeignIp(false);
        application.setLogger("slf4j");
        // No ~/.dubbo caches: every run starts from the registry.
        application.setEnableFileCache(false);
        // SIGTERM: unregister, then wait at most this long for requests in flight.
        application.setShutwait("2000");
        int metaPort = Integer.parseInt(f.get("meta-port"));
        if (metaPort > 0) {
            application.setMetadataServicePort(metaPort);
        }
        if (!f.get("meta-protocol").isEmpty()) {
            application.setMetadataServiceProtocol(f.get("meta-protocol"));
        }

        RegistryConfig registry = new RegistryConfig(f.get("registry"));

        ProtocolConfig dubbo = protocol("dubbo", f.get("host"), Integer.parseInt(f.get("dubbo-port")));
        ProtocolConfig tri = protocol("tri", f.get("host"), Integer.parseInt(f.get("tri-port")));

        ServiceConfig<GreeterService> service = new ServiceConfig<>();
        service.setInterface(GreeterService.class);
        service.setRef(new GreeterServiceImpl(instance));
        service.setVersion(f.get("version"));
        if (!f.get("group").isEmpty()) {
            service.setGroup(f.get("group"));
        }
        service.setProtocols(List.of(dubbo, tri));

        long start = System.nanoTime();
        DubboBootstrap bootstrap = DubboBootstrap.getInstance()
                .application(application)
                .registry(registry)
                .protocols(List.of(dubbo, tri))
                .service(service);
        if (Boolean.parseBoolean(f.get("bridge"))) {
            ServiceConfig<BridgeService> bridge = new ServiceConfig<>();
            bridge.setInterface(BridgeService.class);
            bridge.setRef(new BridgeServiceImpl(instance));
            bridge.setVersion(f.get("version"));
            if (!f.get("group").isEmpty()) {
                bridge.setGroup(f.get("group"));
            }
            bridge.setProtocols(List.of(dubbo, tri));
            bootstrap.service(bridge);
        }
        bootstrap.start();
        System.err.printf("exported in %d ms (JVM up %d ms)%n",
                (System.nanoTime() - start) / 1_000_000,
                java.lang.management.ManagementFactory.getRuntimeMXBean().getUptime());
        System.out.println("SERVING");
        System.out.flush();
        bootstrap.await();
    }

    /** A protocol pinned to hessian2, bound to (and registered as) host when one is given. */
    private static ProtocolConfig protocol(String name, String host, int port) {
        ProtocolConfig p = new ProtocolConfig(name, port);
        if (!host.isEmpty()) {
            p.setHost(host);
        }
        p.setSerialization("hessian2");
        p.setPreferSerialization("hessian2");
        return p;
    }
}
