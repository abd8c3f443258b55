package kbench.driver;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import org.HdrHistogram.Histogram;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * One consumer group member: e2e = receipt − the header's intended send time, where receipt is the moment
 * {@code poll} returns (it hands over what is already fetched; it waits only while nothing is).
 */
final class ConsumerRun {
    private static final long SECOND = 1_000_000_000L;
    private static final long FAR = 1L << 62;

    private final Spec spec;
    private final Control control;
    private final Histogram e2e = Hist.create();
    private final Map<String, Long> errors = new TreeMap<>();
    private final Set<TopicPartition> assigned = new HashSet<>();
    private final Rows reads;
    private final GroupEvents group; // protocol v2 group options, or null
    private Hist.Series series = new Hist.Series(FAR);
    private long receivedTotal;
    private long firstNs = -1;
    private long lastNs = -1;
    private long joinedNs = -1;
    private long outOfRange;

    ConsumerRun(Spec spec, Control control) {
        this.spec = spec;
        this.control = control;
        this.reads = spec.verify ? new Rows(4) : null;
        this.group = spec.groupOptions == null ? null : new GroupEvents(spec);
    }

    static Properties properties(Spec spec) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, spec.bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, spec.group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.putAll(spec.clientConfig);
        if (spec.isolationLevel != null) p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, spec.isolationLevel);
        if (spec.groupOptions != null) spec.groupOptions.apply(p);
        return p;
    }

    private final class Listener implements ConsumerRebalanceListener {
        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            assigned.addAll(parts);
            if (joinedNs < 0) {
                joinedNs = System.nanoTime();
                Out.line(GroupEvents.ready(spec, parts.size()));
            }
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> parts) {
            assigned.removeAll(parts);
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> parts) {
            assigned.removeAll(parts);
        }
    }

    Map<String, Object> run() throws InterruptedException {
        if (spec.waitForConsume) control.awaitRelease();
        long released = System.nanoTime();
        long t0 = 0;
        long tStart = FAR;
        long tEnd = FAR;
        List<Object> lag = new ArrayList<>();
        KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(properties(spec), new ByteArrayDeserializer(), new ByteArrayDeserializer());
        try {
            consumer.subscribe(List.of(spec.topic), group == null ? new Listener() : group.listener(consumer, new Listener()));
            long lastStat = System.nanoTime();
            long statCount = 0;
            while (!control.stopRequested() && (group == null || !group.finished())) {
                ConsumerRecords<byte[], byte[]> records;
                try {
                    records = consumer.poll(Duration.ofMillis(100));
                } catch (WakeupException e) {
                    break;
                } catch (KafkaException e) {
                    errors.merge(e.getClass().getSimpleName(), 1L, Long::sum);
                    control.sleep(10_000_000L);
                    continue;
                }
                long now = System.nanoTime();
                if (t0 == 0 && control.t0() != 0) {
                    t0 = control.t0();
                    tStart = t0 + spec.warmupNs;
                    tEnd = tStart + spec.durationNs;
                    series = new Hist.Series(tStart);
                }
                if (!records.isEmpty()) statCount += take(records, now, tStart, tEnd);
                if (group != null) group.afterBatch();
                if (now - lastStat >= SECOND) {
                    Long total = lag(consumer);
                    if (total != null && t0 != 0) lag.add(List.of(Math.round((now - t0) / 1e6) / 1e3, total));
                    int n = series.length();
                    Out.line(Json.obj("type", "stat", "t_s", t0 == 0 ? 0.0 : (now - t0) / 1e9, "count", statCount,
                            "p99_us", n == 0 ? null : series.p99(n - 1), "total", receivedTotal));
                    statCount = 0;
                    lastStat = now;
                }
            }
        } finally {
            if (group != null) group.end();
            close(consumer);
        }
        return result(t0 == 0 ? released : t0, tStart == FAR ? released : tStart, tEnd == FAR ? released : tEnd,
                released, lag);
    }

    @SuppressWarnings("deprecation") // close(CloseOptions) is 4.1+; this driver builds against older clients too
    private static void close(KafkaConsumer<byte[], byte[]> consumer) {
        consumer.close(Duration.ofSeconds(3));
    }

    private int take(ConsumerRecords<byte[], byte[]> records, long now, long tStart, long tEnd) {
        int n = 0;
        boolean inWindow = now >= tStart && now < tEnd;
        for (ConsumerRecord<byte[], byte[]> r : records) {
            if (group != null && !group.admit(r.partition(), r.offset())) break;
            byte[] v = r.value();
            int len = v == null ? 0 : v.length;
            n++;
            if (inWindow) series.add(now, len);
            if (len < Payload.HEADER_SIZE) continue;
            long sent = Payload.headerTime(v);
            if (sent >= tStart && sent < tEnd) {
                long us = (now - sent) / 1000;
                if (!Hist.record(e2e, us)) outOfRange++;
                series.latency(now, us);
            }
            if (reads != null) reads.add(r.partition(), r.offset(), Payload.headerProducer(v), Payload.headerSeq(v));
        }
        receivedTotal += n;
        if (firstNs < 0) firstNs = now;
        lastNs = now;
        return n;
    }

    /** Sum over assigned partitions of high watermark − position, from the client's cached fetch state. */
    private Long lag(KafkaConsumer<byte[], byte[]> consumer) {
        if (assigned.isEmpty()) return null;
        long total = 0;
        try {
            for (TopicPartition tp : assigned) {
                OptionalLong one = consumer.currentLag(tp);
                if (one.isEmpty()) return null;
                total += one.getAsLong();
            }
        } catch (IllegalStateException | KafkaException e) { // best effort: a rebalance mid-call is normal
            return null;
        }
        return total;
    }

    private Map<String, Object> result(long t0, long tStart, long tEnd, long released, List<Object> lag) {
        long end = Math.max(tStart, Math.min(System.nanoTime(), tEnd));
        series.outOfRange += outOfRange;
        return Json.obj("group", spec.group, "received_total", receivedTotal,
                "received_measured", series.totalCount(), "bytes_measured", series.totalBytes(),
                "errors", errors, "window_s", Math.max(0.0, (end - tStart) / 1e9),
                "join_s", joinedNs < 0 ? null : (joinedNs - released) / 1e9,
                "released_s", (released - t0) / 1e9,
                "first_receive_ns", firstNs < 0 ? null : firstNs, "last_receive_ns", lastNs < 0 ? null : lastNs,
                "lag", lag, "hdr", Json.obj("e2e", Hist.encode(e2e)), "series", series.encode(),
                "window_end_ns", end,
                "verify", reads);
    }
}
