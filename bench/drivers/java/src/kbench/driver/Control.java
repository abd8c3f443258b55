package kbench.driver;

import java.io.BufferedReader;
import java.io.IOException;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The coordinator's lines after the spec ({@code start}, {@code consume}, {@code stop}), read by a daemon
 * thread. EOF on stdin, or a line that is not understood, is a stop: the driver never outlives the
 * coordinator.
 */
final class Control {
    private final CountDownLatch started = new CountDownLatch(1);
    private final CountDownLatch released = new CountDownLatch(1);
    private final CountDownLatch stopped = new CountDownLatch(1);
    private volatile long t0Ns;
    private volatile boolean stop;

    Control(BufferedReader in) {
        Thread t = new Thread(() -> read(in), "kbench-stdin");
        t.setDaemon(true);
        t.start();
    }

    private void read(BufferedReader in) {
        try {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isBlank()) continue;
                if (!handle(line)) break;
            }
        } catch (IOException e) {
            // same as EOF
        }
        requestStop();
    }

    private boolean handle(String line) {
        Object v;
        try {
            v = Json.parse(line);
        } catch (Json.ParseError e) {
            Out.error("stdin: not JSON (" + e.getMessage() + "): stopping");
            return false;
        }
        @SuppressWarnings("unchecked")
        Object type = v instanceof Map ? ((Map<String, Object>) v).get("type") : null;
        if ("start".equals(type)) {
            @SuppressWarnings("unchecked")
            Object t0 = ((Map<String, Object>) v).get("t0_ns");
            if (!(t0 instanceof Long) || (Long) t0 <= 0) {
                Out.error("start: t0_ns: expected a positive integer (CLOCK_MONOTONIC ns), got " + Json.write(t0));
                return false;
            }
            t0Ns = (Long) t0;
            started.countDown();
            return true;
        }
        if ("consume".equals(type)) {
            released.countDown();
            return true;
        }
        if (!"stop".equals(type)) Out.error("stdin: unknown line type " + Json.write(type) + ": stopping");
        return false;
    }

    void requestStop() {
        stop = true;
        started.countDown();
        released.countDown();
        stopped.countDown();
    }

    boolean stopRequested() { return stop; }

    /** t0 (CLOCK_MONOTONIC ns) once {@code start} arrived; 0 if stopped first. */
    long awaitStart() throws InterruptedException {
        started.await();
        return stop && t0Ns == 0 ? 0 : t0Ns;
    }

    long t0() { return t0Ns; }

    /** Wait for {@code consume} (or a stop); true if released. */
    boolean awaitRelease() throws InterruptedException {
        released.await();
        return !stop;
    }

    /** Sleep up to {@code nanos}, waking at once on a stop. */
    void sleep(long nanos) throws InterruptedException {
        if (nanos > 0) stopped.await(nanos, TimeUnit.NANOSECONDS);
    }
}
