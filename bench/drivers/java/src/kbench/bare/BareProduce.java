package kbench.bare;

import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The bare produce loop of benchmarks/bench_java_client.py: one value, sent as fast as send() accepts,
 * one shared callback counting acks. Runs {@code warmup_s} then {@code seconds}; prints one JSON line with
 * the acks counted in the measured window and the window's bounds (System.nanoTime: CLOCK_MONOTONIC).
 *
 * <pre>java -cp CLASSPATH kbench.bare.BareProduce BOOTSTRAP TOPIC SIZE WARMUP_S SECONDS [key=value ...]</pre>
 */
public final class BareProduce {
    private BareProduce() {}

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        for (int i = 5; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            p.put(kv[0], kv[1]);
        }
        String topic = args[1];
        byte[] value = new byte[Integer.parseInt(args[2])];
        long warmup = (long) (Double.parseDouble(args[3]) * 1e9);
        long window = (long) (Double.parseDouble(args[4]) * 1e9);
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        Callback cb = (md, e) -> {
            if (e == null) acked.incrementAndGet();
            else failed.incrementAndGet();
        };
        long sent = 0;
        try (KafkaProducer<byte[], byte[]> producer =
                     new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            producer.partitionsFor(topic);
            long t0 = System.nanoTime();
            long start = t0 + warmup;
            long end = start + window;
            long ackedAtStart = -1;
            while (true) {
                long now = System.nanoTime();
                if (now >= end) break;
                if (ackedAtStart < 0 && now >= start) ackedAtStart = acked.get();
                producer.send(new ProducerRecord<>(topic, value), cb);
                sent++;
            }
            long ackedAtEnd = acked.get();
            long stop = System.nanoTime();
            long elapsed = stop - start;
            producer.flush();
            System.out.println("{\"acked_measured\":" + (ackedAtEnd - ackedAtStart) + ",\"window_s\":" + elapsed / 1e9
                    + ",\"start_ns\":" + start + ",\"end_ns\":" + stop + ",\"sent\":" + sent + ",\"acked_total\":" + acked.get() + ",\"failed\":" + failed.get() + "}");
        }
    }
}
