package kbench.driver;

import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerConfig;

/**
 * The spec's {@code group_options} (driver protocol v2, docs/drivers.md "Protocol v2"): what a group check
 * sets on a consumer. A null field keeps the client's default; the options override {@code client_config}.
 */
final class GroupOptions {
    private static final Map<String, String> ASSIGNORS = Map.of(
            "range", "org.apache.kafka.clients.consumer.RangeAssignor",
            "roundrobin", "org.apache.kafka.clients.consumer.RoundRobinAssignor",
            "sticky", "org.apache.kafka.clients.consumer.StickyAssignor",
            "cooperative-sticky", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");

    final String assignor;
    final Boolean autoCommit;
    /** commit "batch": commitSync, after each poll batch, the next offsets of the records handed over */
    final boolean commitBatch;
    final Integer sessionTimeoutMs;
    final Long maxRecords;
    final Long stopAtNs;
    /** static membership: group.instance.id */
    final String instanceId;
    /** auto.offset.reset: earliest, latest or none */
    final String autoOffsetReset;
    /** group.protocol: classic or consumer (KIP-848; kafka-clients 3.7+, GA in 4.0) */
    final String groupProtocol;
    final Integer heartbeatIntervalMs;
    /** the metadata string of every commit (OffsetAndMetadata(offset, metadata)); null: kafka-clients' "" */
    final String commitMetadata;

    private GroupOptions(Map<String, Object> m) throws Spec.SpecError {
        assignor = (String) typed(m, "assignor", String.class);
        if (assignor != null && !ASSIGNORS.containsKey(assignor)) {
            throw new Spec.SpecError("group_options.assignor: expected one of " + ASSIGNORS.keySet() + ", got "
                    + Json.write(assignor));
        }
        autoCommit = (Boolean) typed(m, "auto_commit", Boolean.class);
        Object commit = typed(m, "commit", String.class);
        if (commit != null && !"none".equals(commit) && !"batch".equals(commit)) {
            throw new Spec.SpecError("group_options.commit: expected \"none\" or \"batch\", got " + Json.write(commit));
        }
        commitBatch = "batch".equals(commit);
        if (commitBatch && Boolean.TRUE.equals(autoCommit)) {
            throw new Spec.SpecError("group_options: commit \"batch\" with auto_commit true");
        }
        Long session = (Long) typed(m, "session_timeout_ms", Long.class);
        sessionTimeoutMs = session == null ? null : Math.toIntExact(session);
        maxRecords = (Long) typed(m, "max_records", Long.class);
        if (maxRecords != null && maxRecords <= 0) throw new Spec.SpecError("group_options.max_records: expected > 0");
        stopAtNs = (Long) typed(m, "stop_at_ns", Long.class);
        instanceId = (String) typed(m, "instance_id", String.class);
        if (instanceId != null && instanceId.isEmpty()) throw new Spec.SpecError("group_options.instance_id: expected a non-empty id");
        autoOffsetReset = oneOf(m, "auto_offset_reset", Set.of("earliest", "latest", "none"));
        groupProtocol = oneOf(m, "group_protocol", Set.of("classic", "consumer"));
        if (groupProtocol != null && !ConsumerConfig.configNames().contains("group.protocol")) {
            throw new Spec.SpecError("group_options.group_protocol: this kafka-clients has no group.protocol (3.7+)");
        }
        Long heartbeat = (Long) typed(m, "heartbeat_interval_ms", Long.class);
        if (heartbeat != null && heartbeat <= 0) throw new Spec.SpecError("group_options.heartbeat_interval_ms: expected > 0");
        heartbeatIntervalMs = heartbeat == null ? null : Math.toIntExact(heartbeat);
        commitMetadata = (String) typed(m, "commit_metadata", String.class);
        if ("consumer".equals(groupProtocol) && (assignor != null || sessionTimeoutMs != null || heartbeat != null)) {
            throw new Spec.SpecError("group_options: group_protocol \"consumer\" takes no assignor, session_timeout_ms or "
                    + "heartbeat_interval_ms (the broker assigns and times sessions)");
        }
    }

    private static String oneOf(Map<String, Object> m, String key, Set<String> values) throws Spec.SpecError {
        String v = (String) typed(m, key, String.class);
        if (v != null && !values.contains(v)) {
            throw new Spec.SpecError("group_options." + key + ": expected one of " + values + ", got " + Json.write(v));
        }
        return v;
    }

    /** The options of a v2 spec ({@code null} if it has none). */
    @SuppressWarnings("unchecked")
    static GroupOptions parse(Object v) throws Spec.SpecError {
        if (v == null) return null;
        if (!(v instanceof Map)) throw new Spec.SpecError("group_options: expected an object, got " + Json.write(v));
        return new GroupOptions((Map<String, Object>) v);
    }

    private static Object typed(Map<String, Object> m, String key, Class<?> type) throws Spec.SpecError {
        Object v = m.get(key);
        if (v != null && !type.isInstance(v)) {
            throw new Spec.SpecError("group_options." + key + ": expected " + type.getSimpleName() + ", got "
                    + Json.write(v));
        }
        return v;
    }

    /** The consumer properties these options set (after client_config, so they win). */
    void apply(Properties p) {
        if (assignor != null) p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, ASSIGNORS.get(assignor));
        if (commitBatch || autoCommit != null) {
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, String.valueOf(!commitBatch && autoCommit));
        }
        if (sessionTimeoutMs != null) p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, String.valueOf(sessionTimeoutMs));
        if (heartbeatIntervalMs != null) p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, String.valueOf(heartbeatIntervalMs));
        if (instanceId != null) p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
        if (autoOffsetReset != null) p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, autoOffsetReset);
        if (groupProtocol != null) {
            p.put("group.protocol", groupProtocol); // the constant is 3.7+: this driver builds against older clients
            if ("consumer".equals(groupProtocol)) p.remove(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG);
        }
    }
}
