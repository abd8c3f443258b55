package kbench.driver;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The spec's {@code transactions} object (driver protocol v2, transactional mode; docs/drivers.md
 * "Protocol v2: transactions"): a transactional producer's id, the records per transaction, how each ends
 * ({@code plan}, then {@code abort_ratio}), the hold of the last one, and consume-transform-produce.
 */
final class TxnOptions {
    final String transactionalId;
    final long messages;
    final double abortRatio;
    final List<String> plan;
    /** "commit", "abort" or null: hold the transaction open at the schedule's end until stop, then end it so */
    final String hold;
    final Long timeoutMs;
    /** consume-transform-produce: the input topic, group and records to commit, or null */
    final String consumeTopic;
    final String consumeGroup;
    final long consumeRecords;

    @SuppressWarnings("unchecked")
    private TxnOptions(Map<String, Object> m) throws Spec.SpecError {
        transactionalId = str(m, "transactional_id");
        if (transactionalId == null || transactionalId.isEmpty()) {
            throw new Spec.SpecError("transactions.transactional_id: expected a non-empty string");
        }
        messages = integer(m, "messages", 1);
        if (messages <= 0) throw new Spec.SpecError("transactions.messages: expected a positive count");
        Object r = m.get("abort_ratio");
        if (r != null && !(r instanceof Number)) throw new Spec.SpecError("transactions.abort_ratio: expected a number");
        abortRatio = r == null ? 0.0 : ((Number) r).doubleValue();
        if (abortRatio < 0 || abortRatio > 1) throw new Spec.SpecError("transactions.abort_ratio: expected 0..1");
        plan = new ArrayList<>();
        Object p = m.get("plan");
        if (p != null && !(p instanceof List)) throw new Spec.SpecError("transactions.plan: expected an array");
        for (Object x : p == null ? List.of() : (List<Object>) p) plan.add(end(x, "plan"));
        hold = m.get("hold") == null ? null : end(m.get("hold"), "hold");
        timeoutMs = m.get("timeout_ms") == null ? null : integer(m, "timeout_ms", 0);
        Object c = m.get("consume");
        if (c != null && !(c instanceof Map)) throw new Spec.SpecError("transactions.consume: expected an object");
        Map<String, Object> cm = (Map<String, Object>) c;
        consumeTopic = cm == null ? null : str(cm, "topic");
        consumeGroup = cm == null ? null : str(cm, "group");
        consumeRecords = cm == null ? 0 : integer(cm, "records", 0);
        if (cm != null && (consumeTopic == null || consumeGroup == null || consumeRecords <= 0)) {
            throw new Spec.SpecError("transactions.consume: expected topic, group and a positive records count");
        }
        if (cm != null && hold != null) throw new Spec.SpecError("transactions: hold with consume");
    }

    @SuppressWarnings("unchecked")
    static TxnOptions parse(Object v) throws Spec.SpecError {
        if (v == null) return null;
        if (!(v instanceof Map)) throw new Spec.SpecError("transactions: expected an object, got " + Json.write(v));
        return new TxnOptions((Map<String, Object>) v);
    }

    boolean consumeTransform() { return consumeTopic != null; }

    /** How transaction k (from 0) ends: plan[k], else aborted when floor((k+1)r) > floor(kr). */
    String endOf(long k) {
        if (k < plan.size()) return plan.get((int) k);
        return Math.floor((k + 1) * abortRatio + 1e-9) > Math.floor(k * abortRatio + 1e-9) ? "abort" : "commit";
    }

    private static String end(Object x, String key) throws Spec.SpecError {
        if (!"commit".equals(x) && !"abort".equals(x)) {
            throw new Spec.SpecError("transactions." + key + ": expected \"commit\" or \"abort\", got " + Json.write(x));
        }
        return (String) x;
    }

    private static String str(Map<String, Object> m, String key) throws Spec.SpecError {
        Object v = m.get(key);
        if (v != null && !(v instanceof String)) throw new Spec.SpecError("transactions." + key + ": expected a string");
        return (String) v;
    }

    private static long integer(Map<String, Object> m, String key, long dflt) throws Spec.SpecError {
        Object v = m.get(key);
        if (v == null) return dflt;
        if (!(v instanceof Long)) throw new Spec.SpecError("transactions." + key + ": expected an integer, got " + Json.write(v));
        return (Long) v;
    }
}
