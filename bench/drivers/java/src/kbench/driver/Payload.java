package kbench.driver;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Message values and keys: the payload pool (64-byte blocks, random or a fixed text block with
 * probability {@code compressibility}, as kbench's own generator), the size distribution, the key
 * stream, and the 16-byte header written at the start of every value.
 */
final class Payload {
    static final int HEADER_SIZE = 16;
    private static final int BLOCK = 64;
    private static final byte[] TEXT = Arrays.copyOf(
            "kbench payload: the quick brown fox jumps over the lazy dog, 0123456789abcdefghijklmnopqrstuv"
                    .getBytes(StandardCharsets.US_ASCII), BLOCK);
    private static final VarHandle LONG_LE = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle INT_LE = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle SHORT_LE =
            MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);

    private final byte[] pool;
    private final int poolSize;
    private int pos;
    private final Spec.Sizes sizes;
    private final SplittableRandom rng;
    private final byte[] fixedValue;

    Payload(Spec spec) throws IOException {
        rng = new SplittableRandom(spec.seed);
        sizes = spec.sizes;
        int maxSize = Math.max(HEADER_SIZE, sizes.distribution.equals("choice") ? max(sizes.values) : sizes.max);
        int total = Math.max(4 << 20, 2 * maxSize) + maxSize;
        pool = new byte[total];
        if (spec.payloadFile != null) {
            byte[] data = Files.readAllBytes(Paths.get(spec.payloadFile));
            if (data.length == 0) data = new byte[1];
            for (int i = 0; i < total; i++) pool[i] = data[i % data.length];
        } else {
            byte[] block = new byte[BLOCK];
            for (int off = 0; off < total; off += BLOCK) {
                int len = Math.min(BLOCK, total - off);
                if (rng.nextDouble() < spec.compressibility) {
                    System.arraycopy(TEXT, 0, pool, off, len);
                } else {
                    for (int i = 0; i < len; i++) block[i] = (byte) rng.nextInt(256);
                    System.arraycopy(block, 0, pool, off, len);
                }
            }
        }
        poolSize = Math.max(1, total - maxSize);
        fixedValue = sizes.distribution.equals("fixed") ? new byte[Math.max(HEADER_SIZE, sizes.value)] : null;
    }

    private static int max(int[] a) {
        int m = 1;
        for (int x : a) m = Math.max(m, x);
        return m;
    }

    /** The next value's size in bytes (at least the header's 16). */
    int nextSize() {
        if (fixedValue != null) return fixedValue.length; // per record: no string switch
        int s;
        switch (sizes.distribution) {
            case "uniform": s = sizes.min + rng.nextInt(sizes.max - sizes.min + 1); break;
            case "normal": {
                double d = Math.rint(sizes.mean + sizes.stddev * gaussian());
                s = (int) Math.max(sizes.min, Math.min(sizes.max, d));
                break;
            }
            default: {
                double u = rng.nextDouble();
                int i = 0;
                while (i < sizes.cumulative.length - 1 && u >= sizes.cumulative[i]) i++;
                s = sizes.values[i];
            }
        }
        return Math.max(HEADER_SIZE, s);
    }

    private double gaussian() {
        double u = rng.nextDouble();
        double v = rng.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
    }

    /**
     * A value of {@code size} bytes: the next slice of the pool under the header. A fixed size reuses one
     * array: KafkaProducer.send copies the value into its batch before it returns.
     */
    byte[] value(int size, long intendedNs, int producer, long seq) {
        byte[] v = fixedValue != null && size == fixedValue.length ? fixedValue : new byte[size];
        if (pos + size > poolSize) pos = 0;
        System.arraycopy(pool, pos + HEADER_SIZE, v, HEADER_SIZE, size - HEADER_SIZE);
        pos += size;
        writeHeader(v, intendedNs, producer, seq);
        return v;
    }

    /** Three little-endian stores (int64 time, uint16 producer, uint16 + uint32 sequence), not 16 byte stores. */
    static void writeHeader(byte[] v, long t, int producer, long seq) {
        LONG_LE.set(v, 0, t);
        SHORT_LE.set(v, 8, (short) producer);
        SHORT_LE.set(v, 10, (short) (seq >>> 32));
        INT_LE.set(v, 12, (int) seq);
    }

    static long headerTime(byte[] v) {
        long t = 0;
        for (int i = 7; i >= 0; i--) t = (t << 8) | (v[i] & 0xFF);
        return t;
    }

    static int headerProducer(byte[] v) {
        return (v[8] & 0xFF) | (v[9] & 0xFF) << 8;
    }

    static long headerSeq(byte[] v) {
        long hi = (v[10] & 0xFF) | (v[11] & 0xFF) << 8;
        long lo = 0;
        for (int i = 3; i >= 0; i--) lo = (lo << 8) | (v[12 + i] & 0xFF);
        return hi << 32 | lo;
    }

    /** Message keys: none, round-robin, uniform or zipf (truncated to count) over "key-0".."key-(count-1)". */
    static final class Keys {
        private final String kind;
        private final boolean none;
        private final byte[][] keys;
        private final SplittableRandom rng;
        private final double[] zipfCumulative;
        private long rr;

        Keys(Spec spec) {
            kind = spec.keysKind;
            none = kind.equals("none");
            rng = new SplittableRandom(spec.seed + 7919L * spec.index);
            rr = spec.index;
            keys = new byte[kind.equals("none") ? 0 : spec.keyCount][];
            for (int i = 0; i < keys.length; i++) keys[i] = ("key-" + i).getBytes(StandardCharsets.US_ASCII);
            if (kind.equals("zipf")) {
                zipfCumulative = new double[keys.length];
                double total = 0;
                for (int i = 0; i < keys.length; i++) zipfCumulative[i] = total += Math.pow(i + 1, -spec.zipfS);
                for (int i = 0; i < keys.length; i++) zipfCumulative[i] /= total;
            } else {
                zipfCumulative = null;
            }
        }

        byte[] next() {
            if (none) return null; // per record: no string switch
            switch (kind) {
                case "round_robin": return keys[(int) (rr++ % keys.length)];
                case "uniform": return keys[rng.nextInt(keys.length)];
                default: {
                    int i = Arrays.binarySearch(zipfCumulative, rng.nextDouble());
                    return keys[Math.min(keys.length - 1, i >= 0 ? i : -i - 1)];
                }
            }
        }
    }
}
