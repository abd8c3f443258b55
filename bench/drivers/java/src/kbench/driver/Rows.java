package kbench.driver;

import java.util.Arrays;

/** Rows of integers with a fixed width, kept unboxed and written as a JSON array of arrays. */
final class Rows implements Json.Writable {
    private final int width;
    private long[] data;
    private int size;

    Rows(int width) {
        this.width = width;
        this.data = new long[width * 1024];
    }

    void add(long a, long b, long c, long d) {
        grow();
        data[size++] = a;
        data[size++] = b;
        data[size++] = c;
        data[size++] = d;
    }

    void add(long a, long b, long c, long d, long e) {
        grow();
        data[size++] = a;
        data[size++] = b;
        data[size++] = c;
        data[size++] = d;
        data[size++] = e;
    }

    private void grow() {
        if (size + width > data.length) data = Arrays.copyOf(data, data.length * 2);
    }

    int count() { return size / width; }

    @Override
    public void writeJson(StringBuilder out) {
        out.append('[');
        for (int i = 0; i < size; i += width) {
            if (i > 0) out.append(',');
            out.append('[');
            for (int j = 0; j < width; j++) {
                if (j > 0) out.append(',');
                out.append(data[i + j]);
            }
            out.append(']');
        }
        out.append(']');
    }
}
