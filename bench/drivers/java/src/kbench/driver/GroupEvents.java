package kbench.driver;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;

/**
 * A protocol v2 group consumer's events and policy (docs/drivers.md, "Protocol v2"): the rebalance
 * callbacks as {@code assigned} / {@code revoked} lines (verify mode), a synchronous commit after each poll
 * batch ({@code commit: "batch"}) as a {@code committed} line, and the stop after {@code max_records} or at
 * {@code stop_at_ns}. kafka-clients runs the callbacks inside {@code poll} on the polling thread, so
 * {@code reads} (records handed over so far) is exact for every event.
 */
final class GroupEvents {
    private final Spec spec;
    private final GroupOptions opts;
    private final Map<TopicPartition, Long> batch = new HashMap<>();
    private KafkaConsumer<byte[], byte[]> consumer;
    private long reads;
    private boolean done;

    GroupEvents(Spec spec) {
        this.spec = spec;
        this.opts = spec.groupOptions;
    }

    /** The consumer's ready line: protocol v2 repeats the version and says group events follow. */
    static Map<String, Object> ready(Spec spec, int partitions) {
        Map<String, Object> line = Json.obj("type", "ready", "partitions", partitions);
        if (spec.protocol >= Spec.PROTOCOL_V2) {
            line.put("protocol", spec.protocol);
            line.put("group_events", spec.verify && spec.groupOptions != null); // isolation_level alone: no events
        }
        return line;
    }

    /** {@code inner} (the run's own bookkeeping) wrapped so each callback also writes its event. */
    ConsumerRebalanceListener listener(KafkaConsumer<byte[], byte[]> c, ConsumerRebalanceListener inner) {
        consumer = c;
        return new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                event("assigned", parts, null);
                inner.onPartitionsAssigned(parts);
            }

            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                if (!parts.isEmpty()) event("revoked", parts, false);
                inner.onPartitionsRevoked(parts);
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> parts) {
                if (!parts.isEmpty()) event("revoked", parts, true);
                inner.onPartitionsLost(parts);
            }
        };
    }

    private void event(String type, Collection<TopicPartition> parts, Boolean lost) {
        if (!spec.verify || done) return;
        List<Integer> ps = new ArrayList<>();
        for (TopicPartition tp : parts) ps.add(tp.partition());
        ps.sort(null);
        Integer generation = null;
        try {
            int g = consumer.groupMetadata().generationId();
            if (g >= 0) generation = g;
        } catch (KafkaException | IllegalStateException e) {
            // no generation known: null
        }
        Map<String, Object> line = Json.obj("type", type, "partitions", ps, "generation", generation);
        if (lost != null) line.put("lost", lost);
        line.put("reads", reads);
        line.put("t_ns", System.nanoTime());
        Out.line(line);
    }

    /** Whether the record may be handed to the application (false once max_records were). */
    boolean admit(int partition, long offset) {
        if (opts.maxRecords != null && reads >= opts.maxRecords) return false;
        reads++;
        batch.put(new TopicPartition(spec.topic, partition), offset + 1);
        return true;
    }

    /** After a poll batch was handed over: commit it synchronously (commit "batch"), write the result. */
    void afterBatch() {
        if (batch.isEmpty()) return;
        Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
        Map<String, Object> offsets = new TreeMap<>();
        for (Map.Entry<TopicPartition, Long> e : batch.entrySet()) {
            next.put(e.getKey(), opts.commitMetadata == null ? new OffsetAndMetadata(e.getValue())
                    : new OffsetAndMetadata(e.getValue(), opts.commitMetadata));
            offsets.put(String.valueOf(e.getKey().partition()), e.getValue());
        }
        batch.clear();
        if (!opts.commitBatch) return;
        String error = null;
        try {
            consumer.commitSync(next, Duration.ofSeconds(10));
        } catch (KafkaException e) {
            error = e.getClass().getSimpleName();
        }
        if (spec.verify && !done) {
            Out.line(Json.obj("type", "committed", "offsets", offsets, "ok", error == null, "error", error,
                    "reads", reads, "t_ns", System.nanoTime()));
        }
    }

    /** The member stops on its own: max_records handed over, or stop_at_ns passed. */
    boolean finished() {
        return (opts.maxRecords != null && reads >= opts.maxRecords)
                || (opts.stopAtNs != null && System.nanoTime() >= opts.stopAtNs);
    }

    /** The poll loop ended: the revocation at close is not reported. */
    void end() {
        done = true;
    }
}
