package org.apache.dubbo.samples;

import java.util.HashMap;
import java.util.Map;
import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ReferenceConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;
import org.apache.dubbo.rpc.RpcContext;

/**
 * A Java Dubbo consumer for meshgate's integration tests: one call of
 * GreeterService.sayHello(arg) to a URL (tri://host:port for Triple,
 * dubbo://host:port for Dubbo2), or to a provider found in a registry with
 * application-level discovery only (-registry zookeeper://host:port: the
 * interface's mapping, the application's instances, their MetadataService),
 * printing {"result":"..."} or {"error":"..."} on stdout (logs go to stderr).
 * With -calls N it makes N calls -interval-ms apart (after the first that
 * works), printing each outcome on its own line; -retries sets Dubbo's
 * failover retries, -tag the dubbo.tag attachment of each call.
 *
 * <pre>
 * java -cp provider.jar:lib/* org.apache.dubbo.samples.Consumer \
 *   -url tri://127.0.0.1:8080 -version 1.0.0 -group g1 -arg world
 * java -cp provider.jar:lib/* org.apache.dubbo.samples.Consumer \
 *   -registry zookeeper://127.0.0.1:2181 -version 1.0.0 -group g1 -arg world
 * </pre>
 */
public final class Consumer {
    private Consumer() {}

    public static void main(String[] args) {
        Map<String, String> f = new HashMap<>();
        f.put("url", "tri://127.0.0.1:50051");
        f.put("version", "1.0.0");
        f.put("group", "");
        f.put("arg", "world");
        f.put("registry", "");
        f.put("wait-ms", "5000");
        f.put("calls", "1");
        f.put("interval-ms", "100");
        f.put("retries", "0");
        f.put("protocol", "");
        f.put("tag", "");
        for (int i = 0; i + 1 < args.length; i += 2) {
            String k = args[i].replaceFirst("^--?", "");
            if (!f.containsKey(k)) {
                throw new IllegalArgumentException("unknown flag -" + k + " (known: " + f.keySet() + ")");
            }
            f.put(k, args[i + 1]);
        }
        String out;
        try {
            ApplicationConfig application = new ApplicationConfig("java-test-consumer");
            application.setQosEnable(false);
            application.setLogger("slf4j");
            application.setEnableFileCache(false);
            ReferenceConfig<GreeterService> ref = new ReferenceConfig<>();
            ref.setInterface(GreeterService.class);
            DubboBootstrap boot = DubboBootstrap.getInstance().application(application);
            if (f.get("registry").isEmpty()) {
                ref.setUrl(f.get("url"));
            } else {
                // Application-level discovery only: a provider registered
                // at the interface level alone is not found this way.
                System.setProperty("dubbo.application.service-discovery.migration", "FORCE_APPLICATION");
                RegistryConfig registry = new RegistryConfig(f.get("registry"));
                boot.registry(registry);
            }
            if (!f.get("protocol").isEmpty()) {
                ref.setProtocol(f.get("protocol")); // of the providers found in a registry
            }
            ref.setVersion(f.get("version"));
            if (!f.get("group").isEmpty()) {
                ref.setGroup(f.get("group"));
            }
            // hessian2 on the wire, as the providers are pinned to it.
            ref.setParameters(Map.of("serialization", "hessian2", "prefer.serialization", "hessian2"));
            ref.setTimeout(10_000);
            // Dubbo's failover: another provider after a failed try.
            ref.setRetries(Integer.parseInt(f.get("retries")));
            ref.setCheck(false);
            boot.reference(ref).start();
            GreeterService greeter = ref.get();
            // The client connects in the background: the first calls can find
            // no connection yet. Retry for a few seconds, then report.
            RuntimeException last = null;
            String result = null;
            long deadline = System.currentTimeMillis() + Long.parseLong(f.get("wait-ms"));
            while (result == null && System.currentTimeMillis() < deadline) {
                try {
                    tagCall(f.get("tag"));
                    result = greeter.sayHello(f.get("arg"));
                } catch (RuntimeException e) {
                    last = e;
                    Thread.sleep(100);
                }
            }
            if (result == null) {
                throw last;
            }
            // The provider's answer attachments ride along, as one JSON
            // object of strings.
            StringBuilder att = new StringBuilder("{");
            for (Map.Entry<String, Object> e : RpcContext.getServerContext().getObjectAttachments().entrySet()) {
                if (att.length() > 1) {
                    att.append(',');
                }
                att.append(quote(e.getKey())).append(':').append(quote(String.valueOf(e.getValue())));
            }
            out = "{\"result\":" + quote(result) + ",\"attachments\":" + att.append('}') + "}";
            // With -calls N, the first call's outcome and N-1 more follow,
            // one line each as they happen (the caller may act between).
            int calls = Integer.parseInt(f.get("calls"));
            for (int i = 1; i < calls; i++) {
                System.out.println(out);
                System.out.flush();
                Thread.sleep(Long.parseLong(f.get("interval-ms")));
                try {
                    tagCall(f.get("tag"));
                    out = "{\"result\":" + quote(greeter.sayHello(f.get("arg"))) + "}";
                } catch (RuntimeException e) {
                    out = "{\"error\":" + quote(String.valueOf(e)) + "}";
                }
            }
        } catch (Throwable t) {
            out = "{\"error\":" + quote(String.valueOf(t)) + "}";
        }
        System.out.println(out);
        System.out.flush();
        Runtime.getRuntime().halt(0); // Dubbo's threads would hold the JVM
    }

    /** Sets the next call's dubbo.tag attachment (tag routing), unless empty. */
    private static void tagCall(String tag) {
        if (!tag.isEmpty()) {
            RpcContext.getClientAttachment().setAttachment("dubbo.tag", tag);
        }
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
