package kbench.driver;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.HdrHistogram.Histogram;

/**
 * Histograms in kbench's layout (1 µs .. 1 h, 3 significant figures) and the per-second series.
 *
 * <p>A value the histogram cannot hold (negative, or past its last bucket: the same bound as Python's
 * {@code record_array}) is left out and counted, never clamped.
 */
final class Hist {
    static final long LOWEST_US = 1;
    static final long HIGHEST_US = 3_600_000_000L;
    static final int SIGNIFICANT_FIGURES = 3;

    private Hist() {}

    static Histogram create() {
        return new Histogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES);
    }

    /** Record one value; false (not recorded) if out of the histogram's range. */
    static boolean record(Histogram h, long valueUs) {
        if (valueUs < 0) return false;
        try {
            h.recordValue(valueUs);
            return true;
        } catch (ArrayIndexOutOfBoundsException e) {
            return false;
        }
    }

    /** HdrHistogram V2 compressed, base64: what {@code hdrh.HdrHistogram.decode} reads. */
    static String encode(Histogram h) {
        ByteBuffer buf = ByteBuffer.allocate(h.getNeededByteBufferCapacity() + 64);
        int n = h.encodeIntoCompressedByteBuffer(buf);
        return Base64.getEncoder().encodeToString(Arrays.copyOf(buf.array(), n));
    }

    /**
     * Per-interval counts, bytes, errors and latency histograms: interval k covers
     * [origin + k s, origin + (k+1) s). Times before the origin are not added (returns false).
     */
    static final class Series {
        final long originNs;
        private long[] count = new long[64];
        private long[] bytes = new long[64];
        private long[] errors = new long[64];
        private final Map<Integer, Histogram> hists = new TreeMap<>();
        private int n;
        private int lastIndex = -1;
        private Histogram last;
        /** the last slot's interval [curStart, curEnd): times come in order, so most need no division */
        private long curStart = Long.MAX_VALUE;
        private long curEnd = Long.MIN_VALUE;
        private int cur;
        long outOfRange;

        Series(long originNs) { this.originNs = originNs; }

        private int slot(long tNs) {
            if (tNs >= curStart && tNs < curEnd) return cur;
            if (tNs < originNs) return -1;
            long k = (tNs - originNs) / 1_000_000_000L;
            int i = (int) Math.min(k, 1 << 24);
            if (i == k) {
                cur = i;
                curStart = originNs + k * 1_000_000_000L;
                curEnd = curStart + 1_000_000_000L;
            }
            if (i >= count.length) {
                int cap = Math.max(i + 1, 2 * count.length);
                count = Arrays.copyOf(count, cap);
                bytes = Arrays.copyOf(bytes, cap);
                errors = Arrays.copyOf(errors, cap);
            }
            if (i + 1 > n) n = i + 1;
            return i;
        }

        boolean add(long tNs, long nbytes) {
            int i = slot(tNs);
            if (i < 0) return false;
            count[i]++;
            bytes[i] += nbytes;
            return true;
        }

        void error(long tNs) {
            int i = slot(tNs);
            if (i >= 0) errors[i]++;
        }

        void latency(long tNs, long us) {
            int i = slot(tNs);
            if (i < 0) return;
            Histogram h = i == lastIndex ? last : null; // acks come in time order: one lookup a second
            if (h == null) {
                h = hists.get(i);
                if (h == null) hists.put(i, h = create());
                lastIndex = i;
                last = h;
            }
            if (!record(h, us)) outOfRange++;
        }

        long totalCount() {
            long s = 0;
            for (int i = 0; i < n; i++) s += count[i];
            return s;
        }

        long totalBytes() {
            long s = 0;
            for (int i = 0; i < n; i++) s += bytes[i];
            return s;
        }

        /** p99 of interval i, or null. */
        Long p99(int i) {
            Histogram h = hists.get(i);
            return h == null || h.getTotalCount() == 0 ? null : h.getValueAtPercentile(99.0);
        }

        int length() { return n; }

        Map<String, Object> encode() {
            Map<String, Object> h = new LinkedHashMap<>();
            for (Map.Entry<Integer, Histogram> e : hists.entrySet()) {
                if (e.getValue().getTotalCount() > 0) h.put(String.valueOf(e.getKey()), Hist.encode(e.getValue()));
            }
            return Json.obj("origin_ns", originNs, "interval_s", 1.0, "count", Arrays.copyOf(count, n),
                    "bytes", Arrays.copyOf(bytes, n), "errors", Arrays.copyOf(errors, n), "out_of_range", outOfRange,
                    "hists", h);
        }
    }
}
