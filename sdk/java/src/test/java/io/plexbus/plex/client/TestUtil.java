package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;

final class TestUtil {
    private TestUtil() {
    }

    /** Waits up to 5 s for every thread named plex-* to end. */
    static void assertNoPlexThreads() throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        List<String> live;
        do {
            live = new ArrayList<>();
            for (Thread t : Thread.getAllStackTraces().keySet()) {
                if (t.isAlive() && t.getName().startsWith("plex-")) {
                    live.add(t.getName() + " " + t.getState());
                }
            }
            if (live.isEmpty()) {
                return;
            }
            Thread.sleep(20);
        } while (System.nanoTime() < deadline);
        fail("leaked client threads: " + live);
    }

    /** Polls cond every 10 ms for up to ms. */
    static void eventually(long ms, String what, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + ms * 1_000_000L;
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + ms + " ms waiting for " + what);
            }
            Thread.sleep(10);
        }
    }

    /** The repository's wire vectors: -Dplex.vectors, else ../../wire/testdata/vectors.json. */
    static byte[] vectorsFile() throws IOException {
        String p = System.getProperty("plex.vectors");
        Path path = p != null ? Paths.get(p) : Paths.get("..", "..", "wire", "testdata", "vectors.json");
        if (!Files.exists(path)) {
            fail("wire vectors not found at " + path.toAbsolutePath() + " (run from sdk/java or set -Dplex.vectors)");
        }
        return Files.readAllBytes(path);
    }

    static byte[] hex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return b;
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x & 0xff));
        }
        return sb.toString();
    }
}
