package kbench.driver;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * One producer worker: the open-loop schedule (or max rate), one callback per record, whole histograms.
 *
 * <p>The main thread sends; acks arrive on the client's I/O thread, which records them under the
 * {@link Acks} lock (uncontended but for the once-a-second stat and the final read). publish = ack −
 * intended, service = ack − actual send, send_delay = actual send − intended (µs, System.nanoTime, which
 * is CLOCK_MONOTONIC).
 */
final class ProducerRun {
    private static final int CHUNK = 512;
    /** Max rate, auto sampling (as kbench's own producer): time about this many records a second, at most. */
    private static final double AUTO_TIMED_PER_S = 20_000;
    private static final int AUTO_MAX_SAMPLE = 64;
    private static final int AUTO_SAMPLE_NO_WARMUP = 32;
    private static final long SECOND = 1_000_000_000L;

    private final Spec spec;
    private final Control control;
    private final boolean rateLimited;
    private Acks acks;
    /** Untimed records (sampled mode) share this callback: exact counts and errors, no latency. */
    private final Callback counted = this::countedAck;
    /** The window's 1 in N (sampled mode), set once before the window opens; 1 otherwise. */
    private volatile int windowSample = 1;
    private long tStart;
    private long tEnd;

    /** Everything the ack callbacks write; guarded by its own monitor. */
    private static final class Acks {
        final Histogram publish = Hist.create();
        final Histogram service = Hist.create();
        final Hist.Series series;
        final Map<String, Long> errors = new TreeMap<>();
        final Rows verifyAcks;
        final List<Object> verifyFailed;
        long ackedTotal;
        long resolved; // acked or failed, counted by the callbacks
        long statCount;
        long outOfRange;
        boolean closed;

        Acks(long origin, boolean verify) {
            series = new Hist.Series(origin);
            verifyAcks = verify ? new Rows(5) : null;
            verifyFailed = verify ? new ArrayList<>() : null;
        }

        void failed(String name, int producer, long seq, long now) {
            errors.merge(name, 1L, Long::sum);
            series.error(now);
            if (verifyFailed != null) verifyFailed.add(List.of((long) producer, seq, name));
        }
    }

    /** The per-record callback: the record's intended and actual send times, sequence and size. */
    private final class Ack implements Callback {
        final long intended;
        final long sent;
        final long seq;
        final int size;
        /** sent while every record was timed (sampled mode, before N was fixed) */
        final boolean early;

        Ack(long intended, long sent, long seq, int size, boolean early) {
            this.intended = intended;
            this.sent = sent;
            this.seq = seq;
            this.size = size;
            this.early = early;
        }

        @Override
        public void onCompletion(RecordMetadata md, Exception exception) {
            long now = System.nanoTime();
            Acks a = acks;
            synchronized (a) {
                if (!a.closed) {
                    a.resolved++;
                    if (exception == null) acked(a, now, md);
                    else a.failed(exception.getClass().getSimpleName(), spec.index, seq, now);
                }
            }
        }

        private void acked(Acks a, long now, RecordMetadata md) {
            a.ackedTotal++;
            a.statCount++;
            boolean measured = rateLimited ? intended >= tStart : now >= tStart;
            if (measured && early && seq % windowSample != 0) { // keep the window's sample 1 in N throughout
                a.series.add(now, size);
            } else if (measured) {
                long pub = (now - intended) / 1000;
                if (!Hist.record(a.publish, pub)) a.outOfRange++;
                if (!Hist.record(a.service, (now - sent) / 1000)) a.outOfRange++;
                a.series.add(now, size);
                a.series.latency(now, pub);
            }
            if (a.verifyAcks != null) a.verifyAcks.add(md.partition(), md.offset(), spec.index, seq, now);
        }
    }

    private void countedAck(RecordMetadata md, Exception exception) {
        long now = System.nanoTime();
        Acks a = acks;
        synchronized (a) {
            if (a.closed) return;
            a.resolved++;
            if (exception != null) {
                a.failed(exception.getClass().getSimpleName(), spec.index, -1, now);
                return;
            }
            a.ackedTotal++;
            a.statCount++;
            if (now >= tStart) a.series.add(now, Math.max(0, md.serializedValueSize()));
        }
    }

    /** 1 in N timed at max rate: the largest power of two <= rate / 20,000, within 1..64. */
    static int autoSample(double msgsPerS) {
        int n = 1;
        while (n * 2 <= Math.min(AUTO_MAX_SAMPLE, msgsPerS / AUTO_TIMED_PER_S)) n *= 2;
        return n;
    }

    ProducerRun(Spec spec, Control control) {
        this.spec = spec;
        this.control = control;
        this.rateLimited = spec.rate != null;
    }

    static Properties properties(Spec spec) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, spec.bootstrap);
        p.putAll(spec.clientConfig);
        return p;
    }

    Map<String, Object> run() throws Exception {
        Payload payload = new Payload(spec);
        Payload.Keys keys = new Payload.Keys(spec);
        KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(properties(spec), new ByteArraySerializer(), new ByteArraySerializer());
        try {
            int partitions = producer.partitionsFor(spec.topic).size();
            Out.line(Json.obj("type", "ready", "partitions", partitions));
            long t0 = control.awaitStart();
            if (t0 == 0) return Json.obj("failed", "stopped before the start");
            tStart = t0 + spec.warmupNs;
            tEnd = tStart + spec.durationNs;
            acks = new Acks(tStart, spec.verify);
            while (System.nanoTime() < t0 && !control.stopRequested()) control.sleep(Math.min(10_000_000L, t0 - System.nanoTime()));
            Loop loop = new Loop(producer, payload, keys, t0);
            if (rateLimited) loop.rateLimited();
            else loop.maxRate();
            return finish(producer, loop);
        } finally {
            producer.close(Duration.ZERO);
        }
    }

    /** The send loop's state: counters, the send-delay histogram (main thread only), stat timing. */
    private final class Loop {
        final KafkaProducer<byte[], byte[]> producer;
        final Payload payload;
        final Payload.Keys keys;
        final long t0;
        final Histogram delay = Hist.create();
        long seq;
        /** 1 in {@code sample} records carries a timing callback (1 unless sampling at max rate) */
        int sample = 1;
        int sinceTimed;
        boolean early;
        long queued; // accepted by send(): each gets exactly one callback
        long sentTotal;
        long sentMeasured;
        long delayOutOfRange;
        long lastStat;

        Loop(KafkaProducer<byte[], byte[]> producer, Payload payload, Payload.Keys keys, long t0) {
            this.producer = producer;
            this.payload = payload;
            this.keys = keys;
            this.t0 = t0;
            this.lastStat = System.nanoTime();
        }

        void send(long intended, long now) {
            int size = payload.nextSize();
            byte[] value = payload.value(size, intended, spec.index, seq);
            ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(spec.topic, null, keys.next(), value);
            Callback cb = counted;
            if (++sinceTimed >= sample) {
                sinceTimed = 0;
                cb = new Ack(intended, now, seq, size, early);
            }
            try {
                producer.send(rec, cb);
                queued++;
            } catch (KafkaException e) { // refused before it was queued: definitely not written
                synchronized (acks) {
                    acks.failed(e.getClass().getSimpleName(), spec.index, seq, now);
                }
            }
            seq++;
            sentTotal++;
            if (intended >= tStart) sentMeasured++;
        }

        long inflight() {
            synchronized (acks) {
                return queued - acks.resolved;
            }
        }

        /**
         * As fast as send() accepts. Without verify, latencies are sampled as kbench's own producer does:
         * 1 in N timed, N fixed once from the rate of the warm-up's first half (at most its first 0.5 s;
         * 32 with no warm-up), so records still in flight when the window opens carry the same N as the
         * window's own. Counts, bytes and errors stay exact: every record has a callback, the untimed
         * share one.
         */
        void maxRate() {
            boolean auto = !spec.verify;
            long decideAt = t0 + Math.min(500_000_000L, spec.warmupNs / 2);
            boolean decided = !auto;
            if (auto) sample = spec.warmupNs == 0 ? AUTO_SAMPLE_NO_WARMUP : 1;
            early = !decided && spec.warmupNs > 0;
            while (!control.stopRequested()) {
                long now = System.nanoTime();
                if (now >= tEnd) return;
                if (!decided && now >= decideAt) {
                    decided = true;
                    double s = (now - t0) / 1e9;
                    sample = spec.warmupNs == 0 ? AUTO_SAMPLE_NO_WARMUP : autoSample(sentTotal / Math.max(s, 1e-3));
                    windowSample = sample;
                    early = false;
                    sinceTimed = 0;
                }
                send(now, now);
                if (now - lastStat >= SECOND) stat(now);
            }
        }

        void rateLimited() throws InterruptedException {
            long interval = (long) Math.floor(1e9 / spec.rate);
            long next = t0 + (interval * spec.index) / spec.producers;
            while (!control.stopRequested()) {
                long now = System.nanoTime();
                if (next >= tEnd) return; // every message due before the end is sent, however late
                if (now - lastStat >= SECOND) stat(now);
                if (now < next) {
                    long wait = next - now;
                    if (wait > 120_000) LockSupport.parkNanos(Math.min(wait - 70_000, 1_000_000L));
                    else Thread.onSpinWait();
                    continue;
                }
                long due = Math.min(CHUNK, (Math.min(now, tEnd - 1) - next) / interval + 1);
                for (long k = 0; k < due; k++) {
                    long intended = next + k * interval;
                    long sent = System.nanoTime();
                    send(intended, sent);
                    if (intended >= tStart && !Hist.record(delay, (sent - intended) / 1000)) delayOutOfRange++;
                }
                next += due * interval;
            }
        }

        void stat(long now) {
            long count;
            long total;
            Long p99;
            synchronized (acks) {
                count = acks.statCount;
                acks.statCount = 0;
                total = acks.ackedTotal;
                int n = acks.series.length();
                p99 = n == 0 ? null : acks.series.p99(n - 1);
            }
            Out.line(Json.obj("type", "stat", "t_s", (now - t0) / 1e9, "count", count, "p99_us", p99, "total", total));
            lastStat = now;
        }
    }

    private Map<String, Object> finish(KafkaProducer<byte[], byte[]> producer, Loop loop) throws InterruptedException {
        long ended = Math.min(System.nanoTime(), tEnd);
        boolean stoppedEarly = control.stopRequested() && ended < tEnd;
        long deadline = System.nanoTime() + (long) ((control.stopRequested() ? 3.0 : spec.flushTimeoutS) * 1e9);
        Thread flusher = new Thread(producer::flush, "kbench-flush"); // flush() has no timeout: wait beside it
        flusher.setDaemon(true);
        flusher.start();
        while (loop.inflight() > 0 && System.nanoTime() < deadline) {
            if (System.nanoTime() - loop.lastStat >= SECOND) loop.stat(System.nanoTime());
            Thread.sleep(2);
        }
        Map<String, Object> r;
        synchronized (acks) {
            acks.closed = true; // acks after this point (the flush timed out) are not counted
            long unacked = loop.queued - acks.resolved;
            acks.series.outOfRange += acks.outOfRange + loop.delayOutOfRange;
            r = Json.obj("latency_sample", loop.sample, "errors_estimated", false, "sent_total", loop.sentTotal,
                    "sent_measured", loop.sentMeasured, "acked_total", acks.ackedTotal,
                    "acked_measured", acks.series.totalCount(), "bytes_measured", acks.series.totalBytes(),
                    "unacked_at_end", unacked, "queue_full_events", 0, "errors", acks.errors,
                    "window_s", Math.max(0.0, (ended - tStart) / 1e9), "stopped_early", stoppedEarly,
                    "window_end_ns", ended,
                    "hdr", Json.obj("publish", Hist.encode(acks.publish), "service", Hist.encode(acks.service),
                            "send_delay", rateLimited ? Hist.encode(loop.delay) : null),
                    "series", acks.series.encode(),
                    "verify", spec.verify ? Json.obj("acks", acks.verifyAcks, "failed", acks.verifyFailed,
                            "unacked_seq_from", unacked > 0 ? loop.seq - unacked : null, "sent", loop.seq) : null);
        }
        return r;
    }
}
