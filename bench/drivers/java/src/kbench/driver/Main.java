package kbench.driver;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.utils.AppInfoParser;

/**
 * kbench's load driver for Apache Kafka's Java client: one producer or one consumer per process, speaking
 * the driver protocol v1 (docs/drivers.md) on stdin/stdout.
 *
 * <pre>
 *   java -cp CLASSPATH kbench.driver.Main                 read the spec on stdin, run, write JSON lines
 *   java -cp CLASSPATH kbench.driver.Main --list-configs  the client's property names, as one JSON object
 * </pre>
 *
 * Exit codes: 0 done (a result was written), 2 the spec is unusable (an error line names the field or
 * property), 1 the run failed.
 */
public final class Main {
    private Main() {}

    /** the protocol version this process answers in: the spec's, once read */
    private static int protocol = Spec.PROTOCOL;

    static Map<String, Object> client() {
        return Json.obj("name", "java", "version", AppInfoParser.getVersion());
    }

    public static void main(String[] args) throws Exception {
        Out.claim();
        if (args.length == 1 && args[0].equals("--list-configs")) {
            Out.line(Json.obj("type", "configs", "client", client(),
                    "producer", new TreeSet<>(ProducerConfig.configNames()),
                    "consumer", new TreeSet<>(ConsumerConfig.configNames())));
            System.exit(0);
        }
        if (args.length > 0) {
            System.err.println("usage: kbench.driver.Main [--list-configs]  (the spec comes on stdin)");
            System.exit(2);
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Map<String, Object> hello = Json.obj("type", "hello", "protocol", Spec.PROTOCOL, "now_ns", 0L,
                "clock", "System.nanoTime", "client", client(), "pid", ProcessHandle.current().pid(),
                "runtime", "java " + System.getProperty("java.version"));
        Json.write(hello); // load and run the writer once, so the clock is read right before the line goes out
        String line = in.readLine();
        if (line == null) fail(2, "no spec line on stdin (EOF)");
        Spec spec = null;
        try {
            spec = Spec.parse(line);
        } catch (Spec.SpecError e) {
            fail(2, "spec: " + e.getMessage());
        }
        List<String> unknown = unknownProperties(spec);
        if (!unknown.isEmpty()) {
            fail(2, "client_config: " + String.join(", ", unknown) + ": not a property of the Java " + spec.role
                    + " (kafka-clients " + AppInfoParser.getVersion() + ")");
        }
        hello.put("role", spec.role);
        hello.put("protocol", spec.protocol);
        protocol = spec.protocol;
        hello.put("now_ns", System.nanoTime()); // refusals above come without a hello, as docs/drivers.md says
        Out.line(hello);
        Control control = new Control(in);
        Map<String, Object> result;
        try {
            result = spec.records != null ? new RecordsRun(spec, control).run()
                    : spec.transactions != null ? new TxnRun(spec, control).run()
                    : spec.producer() ? new ProducerRun(spec, control).run() : new ConsumerRun(spec, control).run();
        } catch (Exception e) {
            fail(1, e.getClass().getSimpleName() + ": " + e.getMessage());
            return;
        }
        emit(result);
        System.exit(0); // a result was written (a "failed" one only if stopped before the start)
    }

    static List<String> unknownProperties(Spec spec) {
        Set<String> known = spec.producer() ? ProducerConfig.configNames() : ConsumerConfig.configNames();
        List<String> unknown = new ArrayList<>();
        for (String key : spec.clientConfig.keySet()) {
            if (!known.contains(key)) unknown.add("'" + key + "'");
        }
        return unknown;
    }

    private static void emit(Map<String, Object> result) {
        Map<String, Object> line = Json.obj("type", "result");
        line.putAll(result);
        line.put("client", client());
        line.put("protocol", protocol);
        Out.line(line);
    }

    private static void fail(int code, String message) {
        Out.error(message);
        emit(Json.obj("failed", message));
        System.exit(code);
    }
}
