package kbench.driver;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Protocol v2, explicit-records mode (docs/drivers.md): a producer spec with {@code records} sends exactly
 * those records, in order, each {@code send(...).get()} before the next. kafka-clients sends every feature:
 * a null key/value/header value is written as null and an empty array as empty (DefaultRecord.writeTo),
 * {@code ProducerRecord.partition()} wins over the partitioner, {@code timestamp()} is the CreateTime.
 */
final class RecordsRun {
    /** One decoded spec record: null key/value are null, empty arrays empty; partition/timestamp may be null. */
    static final class Rec {
        final Integer partition;
        final byte[] key;
        final byte[] value;
        final List<Header> headers;
        final Long timestampMs;

        Rec(Integer partition, byte[] key, byte[] value, List<Header> headers, Long timestampMs) {
            this.partition = partition;
            this.key = key;
            this.value = value;
            this.headers = headers;
            this.timestampMs = timestampMs;
        }
    }

    private final Spec spec;
    private final Control control;

    RecordsRun(Spec spec, Control control) {
        this.spec = spec;
        this.control = control;
    }

    /** spec.records, or null if the spec has none. */
    @SuppressWarnings("unchecked")
    static List<Rec> parse(Object v) throws Spec.SpecError {
        if (v == null) return null;
        if (!(v instanceof List) || ((List<Object>) v).isEmpty()) {
            throw new Spec.SpecError("records: expected a non-empty list of records");
        }
        List<Rec> out = new ArrayList<>();
        int i = 0;
        for (Object o : (List<Object>) v) {
            String at = "records[" + i++ + "]";
            if (!(o instanceof Map)) throw new Spec.SpecError(at + ": expected an object");
            Map<String, Object> m = (Map<String, Object>) o;
            Long part = whole(m.get("partition"), at + ".partition");
            Long ts = whole(m.get("timestamp_ms"), at + ".timestamp_ms");
            List<Header> headers = new ArrayList<>();
            Object hs = m.get("headers");
            if (hs != null) {
                if (!(hs instanceof List)) throw new Spec.SpecError(at + ".headers: expected a list");
                int j = 0;
                for (Object h : (List<Object>) hs) {
                    String hat = at + ".headers[" + j++ + "]";
                    if (!(h instanceof List) || ((List<Object>) h).size() != 2 || !(((List<Object>) h).get(0) instanceof String)) {
                        throw new Spec.SpecError(hat + ": expected [name, base64 or null]");
                    }
                    List<Object> pair = (List<Object>) h;
                    headers.add(new RecordHeader((String) pair.get(0), bytes(pair.get(1), hat)));
                }
            }
            out.add(new Rec(part == null ? null : (int) (long) part, bytes(m.get("key"), at + ".key"),
                    bytes(m.get("value"), at + ".value"), headers, ts));
        }
        return out;
    }

    private static Long whole(Object v, String what) throws Spec.SpecError {
        if (v == null) return null;
        if (!(v instanceof Long) || (Long) v < 0) throw new Spec.SpecError(what + ": expected an integer >= 0 or null");
        return (Long) v;
    }

    private static byte[] bytes(Object v, String what) throws Spec.SpecError {
        if (v == null) return null;
        if (!(v instanceof String)) throw new Spec.SpecError(what + ": expected base64 text or null");
        try {
            return Base64.getDecoder().decode(((String) v).getBytes(StandardCharsets.US_ASCII));
        } catch (IllegalArgumentException e) {
            throw new Spec.SpecError(what + ": not base64 (" + e.getMessage() + ")");
        }
    }

    Map<String, Object> run() throws Exception {
        KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(ProducerRun.properties(spec), new ByteArraySerializer(), new ByteArraySerializer());
        List<Object> acks = new ArrayList<>();
        try {
            int partitions = producer.partitionsFor(spec.topic).size();
            Out.line(Json.obj("type", "ready", "partitions", partitions, "protocol", spec.protocol));
            long t0 = control.awaitStart();
            if (t0 == 0) return Json.obj("failed", "stopped before the start");
            long timeoutMs = (long) (spec.flushTimeoutS * 1000);
            for (Rec r : spec.records) {
                if (control.stopRequested()) {
                    acks.add(Arrays.asList(-1L, -1L, "stopped"));
                    continue;
                }
                ProducerRecord<byte[], byte[]> pr =
                        new ProducerRecord<>(spec.topic, r.partition, r.timestampMs, r.key, r.value, r.headers);
                try {
                    RecordMetadata md = producer.send(pr).get(timeoutMs, TimeUnit.MILLISECONDS);
                    acks.add(Arrays.asList((long) md.partition(), md.offset(), null));
                } catch (ExecutionException e) {
                    Throwable c = e.getCause() == null ? e : e.getCause();
                    acks.add(Arrays.asList(-1L, -1L, c.getClass().getSimpleName() + ": " + c.getMessage()));
                } catch (java.util.concurrent.TimeoutException e) {
                    acks.add(Arrays.asList(-1L, -1L, "TimeoutException: no ack within " + timeoutMs + " ms"));
                }
            }
        } finally {
            producer.close(Duration.ofSeconds(3));
        }
        return Json.obj("role", "producer", "index", (long) spec.index, "records", acks, "sent", (long) spec.records.size());
    }
}
