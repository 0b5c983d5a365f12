package org.apache.dubbo.samples;

import java.util.HashMap;
import java.util.Map;
import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ReferenceConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;

/**
 * A Java Dubbo consumer for meshgate's integration tests: one call of
 * GreeterService.sayHello(arg) to a URL (tri://host:port for Triple,
 * dubbo://host:port for Dubbo2; no registry), printing {"result":"..."} or
 * {"error":"..."} on stdout (logs go to stderr).
 *
 * <pre>
 * java -cp provider.jar:lib/* org.apache.dubbo.samples.Consumer \
 *   -url tri://127.0.0.1:8080 -version 1.0.0 -group g1 -arg world
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
            ref.setUrl(f.get("url"));
            ref.setVersion(f.get("version"));
            if (!f.get("group").isEmpty()) {
                ref.setGroup(f.get("group"));
            }
            // hessian2 on the wire, as the providers are pinned to it.
            ref.setParameters(Map.of("serialization", "hessian2", "prefer.serialization", "hessian2"));
            ref.setTimeout(10_000);
            ref.setRetries(0);
            ref.setCheck(false);
            DubboBootstrap.getInstance().application(application).reference(ref).start();
            GreeterService greeter = ref.get();
            // The client connects in the background: the first calls can find
            // no connection yet. Retry for a few seconds, then report.
            RuntimeException last = null;
            String result = null;
            for (int attempt = 0; attempt < 50 && result == null; attempt++) {
                try {
                    result = greeter.sayHello(f.get("arg"));
                } catch (RuntimeException e) {
                    last = e;
                    Thread.sleep(100);
                }
            }
            if (result == null) {
                throw last;
            }
            out = "{\"result\":" + quote(result) + "}";
        } catch (Throwable t) {
            out = "{\"error\":" + quote(String.valueOf(t)) + "}";
        }
        System.out.println(out);
        System.out.flush();
        Runtime.getRuntime().halt(0); // Dubbo's threads would hold the JVM
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
