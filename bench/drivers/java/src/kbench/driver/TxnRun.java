package kbench.driver;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * A transactional producer (driver protocol v2, transactional mode; docs/drivers.md "Protocol v2:
 * transactions"): initTransactions, then the schedule's records in transactions of {@code messages}
 * (beginTransaction, send, commitTransaction or abortTransaction as the plan says), one {@code txn} line
 * per transaction; or consume-transform-produce: a read_committed consumer's poll batches, each written
 * in one transaction with sendOffsetsToTransaction, the consumer rewound to its committed offsets after
 * an abort. Acks are kept as in verify mode: every ack and failure, by sequence number.
 */
final class TxnRun {
    private static final long SECOND = 1_000_000_000L;

    private final Spec spec;
    private final TxnOptions opts;
    private final Control control;
    private final Histogram publish = Hist.create();
    private final Map<String, Long> errors = new TreeMap<>();
    private final Rows acks = new Rows(5);
    private final List<Object> failed = new ArrayList<>();
    private final Map<String, Long> outcomes = new TreeMap<>(Map.of("committed", 0L, "aborted", 0L, "unknown", 0L));
    private Hist.Series series;
    private long ackedTotal;
    /** the open transaction's first sequence number, and how many of its records are acked */
    private long curFrom;
    private long curAcked;
    private long tStart;
    private long tEnd;
    private long seq;
    private long txn;
    /** the producer cannot go on (fenced, or another fatal error) */
    private boolean fatal;

    TxnRun(Spec spec, Control control) {
        this.spec = spec;
        this.opts = spec.transactions;
        this.control = control;
    }

    Map<String, Object> run() throws Exception {
        Properties p = ProducerRun.properties(spec);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, opts.transactionalId);
        if (opts.timeoutMs != null) p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, String.valueOf(opts.timeoutMs));
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
        KafkaConsumer<byte[], byte[]> consumer = null;
        try {
            producer.initTransactions();
            int partitions = producer.partitionsFor(spec.topic).size();
            if (opts.consumeTransform()) {
                consumer = new KafkaConsumer<>(consumerProperties(), new ByteArrayDeserializer(), new ByteArrayDeserializer());
                consumer.subscribe(List.of(opts.consumeTopic));
            }
            Out.line(Json.obj("type", "ready", "partitions", partitions, "protocol", spec.protocol));
            long t0 = control.awaitStart();
            if (t0 == 0) return Json.obj("failed", "stopped before the start");
            tStart = t0 + spec.warmupNs;
            tEnd = tStart + spec.durationNs;
            series = new Hist.Series(tStart);
            if (consumer != null) consumeTransform(producer, consumer);
            else schedule(producer, t0);
            return result();
        } finally {
            if (consumer != null) consumer.close(Duration.ofSeconds(3));
            producer.close(Duration.ofSeconds(3));
        }
    }

    private Properties consumerProperties() {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, spec.bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, opts.consumeGroup);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, String.valueOf(opts.messages));
        return c;
    }

    private long due(long t0, long n) {
        if (spec.rate == null) return System.nanoTime();
        long interval = (long) Math.floor(1e9 / spec.rate);
        return t0 + (interval * spec.index) / spec.producers + n * interval;
    }

    /** The schedule's records in transactions of {@code messages}; the last one held open with {@code hold}. */
    private void schedule(KafkaProducer<byte[], byte[]> producer, long t0) throws Exception {
        Payload payload = new Payload(spec);
        Payload.Keys keys = new Payload.Keys(spec);
        long lastStat = System.nanoTime();
        while (!control.stopRequested() && !fatal && due(t0, seq) < tEnd) {
            producer.beginTransaction();
            long begin = System.nanoTime();
            long from = seq;
            begun(from);
            for (long i = 0; i < opts.messages && due(t0, seq) < tEnd && !control.stopRequested(); i++) {
                long intended = due(t0, seq);
                while (System.nanoTime() < intended && !control.stopRequested()) {
                    long wait = intended - System.nanoTime();
                    if (wait > 120_000) LockSupport.parkNanos(Math.min(wait - 70_000, 1_000_000L));
                }
                int size = payload.nextSize();
                send(producer, new ProducerRecord<>(spec.topic, null, keys.next(), payload.value(size, intended, spec.index, seq)),
                        intended);
                if (System.nanoTime() - lastStat >= SECOND) lastStat = stat(t0);
            }
            String end = opts.endOf(txn);
            if (due(t0, seq) >= tEnd && opts.hold != null && !control.stopRequested()) {
                producer.flush();
                Out.line(Json.obj("type", "txn_held", "txn", txn, "seq_from", from, "seq_to", seq,
                        "acked", ackedCurrent(), "t_ns", System.nanoTime()));
                while (!control.stopRequested()) control.sleep(SECOND);
                end = opts.hold;
            }
            endTxn(producer, end, from, begin, null);
        }
    }

    /** One transaction per poll batch of the input; the output value is a new header + the input's header. */
    private void consumeTransform(KafkaProducer<byte[], byte[]> producer, KafkaConsumer<byte[], byte[]> consumer) {
        long committed = 0;
        while (!control.stopRequested() && !fatal && committed < opts.consumeRecords) {
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
            if (records.isEmpty()) continue;
            producer.beginTransaction();
            long begin = System.nanoTime();
            long from = seq;
            begun(from);
            Map<Integer, long[]> input = new TreeMap<>();
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            for (ConsumerRecord<byte[], byte[]> r : records) {
                byte[] v = new byte[2 * Payload.HEADER_SIZE];
                long now = System.nanoTime();
                Payload.writeHeader(v, now, spec.index, seq);
                byte[] in = r.value() == null ? new byte[0] : r.value();
                System.arraycopy(in, 0, v, Payload.HEADER_SIZE, Math.min(in.length, Payload.HEADER_SIZE));
                send(producer, new ProducerRecord<>(spec.topic, r.partition(), null, v), now);
                input.computeIfAbsent(r.partition(), k -> new long[] {r.offset(), r.offset()})[1] = r.offset() + 1;
                offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
            }
            String outcome;
            try {
                producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                outcome = endTxn(producer, opts.endOf(txn), from, begin, input);
            } catch (KafkaException e) {
                outcome = endTxn(producer, "abort", from, begin, input);
            }
            if ("committed".equals(outcome)) {
                committed += records.count();
            } else {
                rewind(consumer);
            }
        }
    }

    /** Back to the group's committed offsets (the beginning where none): the aborted batch is read again. */
    private static void rewind(KafkaConsumer<byte[], byte[]> consumer) {
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(consumer.assignment());
        for (TopicPartition tp : consumer.assignment()) {
            OffsetAndMetadata o = committed.get(tp);
            if (o == null) consumer.seekToBeginning(List.of(tp));
            else consumer.seek(tp, o.offset());
        }
    }

    private void send(KafkaProducer<byte[], byte[]> producer, ProducerRecord<byte[], byte[]> rec, long intended) {
        final long s = seq++;
        final int size = rec.value().length;
        try {
            producer.send(rec, (RecordMetadata md, Exception e) -> ack(md, e, s, intended, size));
        } catch (KafkaException e) {
            ack(null, e, s, intended, size);
        }
    }

    private synchronized void ack(RecordMetadata md, Exception e, long s, long intended, int size) {
        long now = System.nanoTime();
        if (e != null) {
            String name = e.getClass().getSimpleName();
            errors.merge(name, 1L, Long::sum);
            failed.add(List.of((long) spec.index, s, name));
            series.error(now);
            return;
        }
        ackedTotal++;
        if (s >= curFrom) curAcked++;
        acks.add(md.partition(), md.offset(), spec.index, s, now);
        long us = (now - intended) / 1000;
        if (intended >= tStart) {
            if (!Hist.record(publish, us)) series.outOfRange++;
            series.add(now, size);
            series.latency(now, us);
        }
    }

    private synchronized long acked() { return ackedTotal; }

    /** Commit or abort the open transaction; writes its txn line and returns its outcome. */
    private String endTxn(KafkaProducer<byte[], byte[]> producer, String end, long from, long begin,
                          Map<Integer, long[]> input) {
        long endNs = System.nanoTime();
        String outcome;
        String error = null;
        try {
            if ("commit".equals(end)) {
                producer.commitTransaction();
            } else {
                producer.flush(); // the aborted records are written, then hidden by the abort marker
                producer.abortTransaction();
            }
            outcome = "commit".equals(end) ? "committed" : "aborted";
        } catch (ProducerFencedException | InvalidProducerEpochException | OutOfOrderSequenceException
                 | AuthorizationException | UnsupportedVersionException e) {
            fatal = true; // the producer is unusable; a commit may or may not have happened
            error = describe(e);
            outcome = "unknown";
        } catch (KafkaException e) {
            error = describe(e);
            outcome = "unknown";
            if ("commit".equals(end)) {
                try {
                    producer.abortTransaction();
                    outcome = "aborted";
                } catch (KafkaException again) {
                    fatal = true;
                }
            } else {
                fatal = true;
            }
        }
        outcomes.merge(outcome, 1L, Long::sum);
        Map<String, Object> in = new TreeMap<>();
        if (input != null) input.forEach((p, r) -> in.put(String.valueOf(p), List.of(r[0], r[1])));
        Out.line(Json.obj("type", "txn", "txn", txn, "end", end, "outcome", outcome, "error", error,
                "seq_from", from, "seq_to", seq, "acked", Math.min(seq - from, ackedCurrent()),
                "begin_ns", begin, "end_ns", endNs, "t_ns", System.nanoTime(), "input", in));
        txn++;
        return outcome;
    }

    /** The exception and its causes: "Name: message (cause Name: message)". */
    static String describe(Throwable e) {
        StringBuilder b = new StringBuilder(e.getClass().getSimpleName() + ": " + e.getMessage());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            b.append(" (cause ").append(c.getClass().getSimpleName()).append(": ").append(c.getMessage()).append(')');
        }
        return b.toString();
    }

    /** Start counting the acks of a transaction whose first sequence number is {@code from}. */
    private synchronized void begun(long from) {
        curFrom = from;
        curAcked = 0;
    }

    private synchronized long ackedCurrent() { return curAcked; }

    private long stat(long t0) {
        long now = System.nanoTime();
        Out.line(Json.obj("type", "stat", "t_s", (now - t0) / 1e9, "count", 0L, "p99_us", null, "total", acked()));
        return now;
    }

    private synchronized Map<String, Object> result() {
        long ended = Math.min(System.nanoTime(), tEnd);
        return Json.obj("latency_sample", 1, "errors_estimated", false, "sent_total", seq, "sent_measured", seq,
                "acked_total", ackedTotal, "acked_measured", series.totalCount(), "bytes_measured", series.totalBytes(),
                "unacked_at_end", Math.max(0, seq - ackedTotal - failed.size()), "queue_full_events", 0,
                "errors", errors, "window_s", Math.max(0.0, (ended - tStart) / 1e9),
                "stopped_early", control.stopRequested() && ended < tEnd, "window_end_ns", ended,
                "hdr", Json.obj("publish", Hist.encode(publish), "service", Hist.encode(publish), "send_delay", null),
                "series", series.encode(), "transactions", outcomes,
                "verify", Json.obj("acks", acks, "failed", failed, "unacked_seq_from", null, "sent", seq));
    }
}
