package kbench.driver;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * The protocol's stdout: one JSON object a line, flushed at once, from any thread.
 *
 * <p>It writes to file descriptor 1 directly, and {@link #claim()} points {@code System.out} at stderr, so
 * nothing else in the process (a logging back end's console appender, a stray print) can put a line on
 * the protocol's channel.
 */
final class Out {
    private static final OutputStream STDOUT = new FileOutputStream(FileDescriptor.out);

    private Out() {}

    static void claim() {
        System.setOut(System.err);
    }

    static synchronized void line(Map<String, Object> message) {
        byte[] bytes = (Json.write(message) + "\n").getBytes(StandardCharsets.UTF_8);
        try {
            STDOUT.write(bytes);
            STDOUT.flush();
        } catch (IOException e) {
            // the coordinator is gone: nothing left to tell anyone
            Runtime.getRuntime().halt(3);
        }
    }

    static void error(String message) {
        line(Json.obj("type", "error", "message", message));
    }
}
