package kbench.driver;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The {@code spec} line (docs/drivers.md), checked field by field; a bad field is a {@link SpecError}. */
final class Spec {
    /** A spec the driver cannot run; the message names the field and what was expected. */
    static final class SpecError extends Exception {
        private static final long serialVersionUID = 1L;

        SpecError(String message) { super(message); }
    }

    static final int PROTOCOL = 1;
    /** protocol v2 adds group_options and the group events (GroupOptions, GroupEvents) */
    static final int PROTOCOL_V2 = 2;

    /** the version of this spec, which the driver answers in: 1 or 2 */
    final int protocol;
    /** protocol v2: the consumer's group options, or null */
    final GroupOptions groupOptions;
    /** protocol v2, transactional mode: a transactional producer's options (TxnRun), or null */
    final TxnOptions transactions;
    /** protocol v2, explicit-records mode: the records a producer sends (RecordsRun), or null */
    final List<RecordsRun.Rec> records;
    /** protocol v2: a consumer's isolation.level ("read_committed" / "read_uncommitted"), or null */
    final String isolationLevel;

    final String role;
    final int index;
    final int producers;
    final String bootstrap;
    final String topic;
    final Map<String, String> clientConfig;
    final long warmupNs;
    final long durationNs;
    final Double rate;
    final Sizes sizes;
    final String payloadKind;
    final double compressibility;
    final String payloadFile;
    final String keysKind;
    final int keyCount;
    final double zipfS;
    final String group;
    final boolean waitForConsume;
    final long seed;
    final boolean verify;
    final double flushTimeoutS;

    /** Message sizes: fixed, uniform [min, max], normal (mean, stddev) clipped to [min, max], choice. */
    static final class Sizes {
        final String distribution;
        final int value;
        final int min;
        final int max;
        final double mean;
        final double stddev;
        final int[] values;
        final double[] cumulative;

        Sizes(String distribution, int value, int min, int max, double mean, double stddev, int[] values,
              double[] cumulative) {
            this.distribution = distribution;
            this.value = value;
            this.min = min;
            this.max = max;
            this.mean = mean;
            this.stddev = stddev;
            this.values = values;
            this.cumulative = cumulative;
        }
    }

    private Spec(Map<String, Object> m) throws SpecError {
        if (!"spec".equals(m.get("type"))) throw new SpecError("type: expected \"spec\", got " + Json.write(m.get("type")));
        long version = integer(m, "protocol", PROTOCOL);
        if (version != PROTOCOL && version != PROTOCOL_V2) {
            throw new SpecError("protocol: this driver speaks protocols 1 and 2, got " + version);
        }
        protocol = (int) version;
        groupOptions = GroupOptions.parse(m.get("group_options"));
        if (groupOptions != null && (protocol < PROTOCOL_V2 || !"consumer".equals(m.get("role")))) {
            throw new SpecError("group_options: only a consumer's protocol 2 spec has them");
        }
        transactions = TxnOptions.parse(m.get("transactions"));
        if (transactions != null && (protocol < PROTOCOL_V2 || !"producer".equals(m.get("role")))) {
            throw new SpecError("transactions: only a producer's protocol 2 spec has them");
        }
        records = RecordsRun.parse(m.get("records"));
        if (records != null && (protocol < PROTOCOL_V2 || !"producer".equals(m.get("role")) || transactions != null)) {
            throw new SpecError("records: only a producer's protocol 2 spec without transactions has them");
        }
        Object iso = m.get("isolation_level");
        if (iso != null && (protocol < PROTOCOL_V2 || !List.of("read_committed", "read_uncommitted").contains(iso))) {
            throw new SpecError("isolation_level: expected \"read_committed\" or \"read_uncommitted\" in a protocol 2 spec, got "
                    + Json.write(iso));
        }
        isolationLevel = (String) iso;
        role = string(m, "role", null);
        if (!"producer".equals(role) && !"consumer".equals(role)) {
            throw new SpecError("role: expected \"producer\" or \"consumer\", got " + Json.write(role));
        }
        index = (int) integer(m, "index", 0);
        if (index < 0 || index > 0xFFFF) throw new SpecError("index: expected 0..65535, got " + index);
        producers = (int) Math.max(1, integer(m, "producers", 1));
        bootstrap = string(m, "bootstrap", null);
        topic = string(m, "topic", null);
        clientConfig = config(m.get("client_config"));
        warmupNs = integer(m, "warmup_ns", 0);
        durationNs = integer(m, "duration_ns", -1);
        if (warmupNs < 0 || durationNs <= 0) {
            throw new SpecError("warmup_ns, duration_ns: expected warmup_ns >= 0 and duration_ns > 0");
        }
        Object r = m.get("rate");
        if (r != null && !(r instanceof Number && ((Number) r).doubleValue() > 0)) {
            throw new SpecError("rate: expected a positive number or null, got " + Json.write(r));
        }
        rate = r == null ? null : ((Number) r).doubleValue();
        sizes = sizes(object(m, "message_size"));
        Map<String, Object> payload = object(m, "payload");
        payloadKind = string(payload, "kind", "random");
        compressibility = number(payload, "compressibility", 0.0);
        payloadFile = "file".equals(payloadKind) ? string(payload, "file", null) : null;
        if (!"random".equals(payloadKind) && !"file".equals(payloadKind)) {
            throw new SpecError("payload.kind: expected \"random\" or \"file\", got " + Json.write(payloadKind));
        }
        Map<String, Object> keys = object(m, "keys");
        keysKind = string(keys, "kind", "none");
        if (!List.of("none", "round_robin", "uniform", "zipf").contains(keysKind)) {
            throw new SpecError("keys.kind: expected none, round_robin, uniform or zipf, got " + Json.write(keysKind));
        }
        keyCount = (int) Math.max(1, keys.get("count") == null ? 1 : integer(keys, "count", 1));
        zipfS = number(keys, "zipf_s", 1.2);
        Object g = m.get("group");
        group = g == null ? null : string(m, "group", null);
        if ("consumer".equals(role) && group == null) throw new SpecError("group: a consumer needs a group id");
        waitForConsume = bool(m, "wait_for_consume", false);
        seed = integer(m, "seed", 0);
        verify = bool(m, "verify", false);
        flushTimeoutS = number(m, "flush_timeout_s", 30.0);
    }

    static Spec parse(String line) throws SpecError {
        Object v;
        try {
            v = Json.parse(line);
        } catch (Json.ParseError e) {
            throw new SpecError("the spec line is not JSON: " + e.getMessage());
        }
        if (!(v instanceof Map)) throw new SpecError("the spec line is not a JSON object");
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) v;
        return new Spec(m);
    }

    boolean producer() { return "producer".equals(role); }

    private static Sizes sizes(Map<String, Object> m) throws SpecError {
        String d = string(m, "distribution", "fixed");
        int lo = (int) Math.max(1, m.get("min") == null ? 1 : integer(m, "min", 1));
        int hi = (int) (m.get("max") == null ? 100 * 1024 * 1024 : integer(m, "max", 0));
        switch (d) {
            case "fixed": {
                int v = (int) integer(m, "value", 0);
                if (v < 0) throw new SpecError("message_size.value: expected a size in bytes, got " + v);
                return new Sizes(d, v, v, v, v, 0, new int[0], new double[0]);
            }
            case "uniform":
                if (hi < lo) throw new SpecError("message_size: max < min");
                return new Sizes(d, 0, lo, hi, 0, 0, new int[0], new double[0]);
            case "normal":
                return new Sizes(d, 0, lo, hi, number(m, "mean", 0), number(m, "stddev", 0), new int[0], new double[0]);
            case "choice": {
                List<Object> vs = list(m, "values");
                List<Object> ws = m.get("weights") == null ? Collections.emptyList() : list(m, "weights");
                if (vs.isEmpty() || (!ws.isEmpty() && ws.size() != vs.size())) {
                    throw new SpecError("message_size: choice needs values (and as many weights)");
                }
                int[] values = new int[vs.size()];
                double[] cum = new double[vs.size()];
                double total = 0;
                for (int i = 0; i < values.length; i++) {
                    values[i] = ((Number) vs.get(i)).intValue();
                    total += ws.isEmpty() ? 1.0 : ((Number) ws.get(i)).doubleValue();
                    cum[i] = total;
                }
                for (int i = 0; i < cum.length; i++) cum[i] /= total;
                return new Sizes(d, 0, lo, hi, 0, 0, values, cum);
            }
            default:
                throw new SpecError("message_size.distribution: expected fixed, uniform, normal or choice, got "
                        + Json.write(d));
        }
    }

    private static Map<String, String> config(Object v) throws SpecError {
        Map<String, String> out = new LinkedHashMap<>();
        if (v == null) return out;
        if (!(v instanceof Map)) throw new SpecError("client_config: expected an object of strings");
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) v;
        for (Map.Entry<String, Object> e : m.entrySet()) {
            Object x = e.getValue();
            if (x instanceof String || x instanceof Number || x instanceof Boolean) out.put(e.getKey(), String.valueOf(x));
            else throw new SpecError("client_config." + e.getKey() + ": expected a string, got " + Json.write(x));
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> object(Map<String, Object> m, String key) throws SpecError {
        Object v = m.get(key);
        if (v == null) return new LinkedHashMap<>();
        if (!(v instanceof Map)) throw new SpecError(key + ": expected an object, got " + Json.write(v));
        return (Map<String, Object>) v;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Map<String, Object> m, String key) throws SpecError {
        Object v = m.get(key);
        if (!(v instanceof List)) throw new SpecError(key + ": expected an array, got " + Json.write(v));
        for (Object x : (List<Object>) v) {
            if (!(x instanceof Number)) throw new SpecError(key + ": expected numbers, got " + Json.write(x));
        }
        return new ArrayList<>((List<Object>) v);
    }

    private static String string(Map<String, Object> m, String key, String dflt) throws SpecError {
        Object v = m.get(key);
        if (v == null && dflt != null) return dflt;
        if (!(v instanceof String) || ((String) v).isEmpty()) {
            throw new SpecError(key + ": expected a non-empty string, got " + Json.write(v));
        }
        return (String) v;
    }

    private static long integer(Map<String, Object> m, String key, long dflt) throws SpecError {
        Object v = m.get(key);
        if (v == null) return dflt;
        if (!(v instanceof Long)) throw new SpecError(key + ": expected an integer, got " + Json.write(v));
        return (Long) v;
    }

    private static double number(Map<String, Object> m, String key, double dflt) throws SpecError {
        Object v = m.get(key);
        if (v == null) return dflt;
        if (!(v instanceof Number)) throw new SpecError(key + ": expected a number, got " + Json.write(v));
        return ((Number) v).doubleValue();
    }

    private static boolean bool(Map<String, Object> m, String key, boolean dflt) throws SpecError {
        Object v = m.get(key);
        if (v == null) return dflt;
        if (!(v instanceof Boolean)) throw new SpecError(key + ": expected true or false, got " + Json.write(v));
        return (Boolean) v;
    }
}
