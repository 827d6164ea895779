package io.plexbus.plex.client;

import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Runs a real {@code plex dev} (edge, API, dev auth, embedded NATS in one
 * process) on free ports for the integration tests, and kills it at the end,
 * also when a test fails or the JVM exits.
 *
 * <p>The binary is {@code -Dplex.bin}, else {@code $PLEX_BIN}, else
 * {@code ../../bin/plex} (relative to sdk/java).
 */
final class PlexDev implements AutoCloseable {
    final Path bin;
    final int edgePort;
    final int httpPort;
    final int natsPort;
    final Path dir;
    final Path log;
    private Process process;
    private final Thread hook = new Thread(this::kill, "plex-dev-kill");

    static Path binary() {
        String p = System.getProperty("plex.bin");
        if (p == null || p.isEmpty()) {
            p = System.getenv("PLEX_BIN");
        }
        if (p == null || p.isEmpty()) {
            p = "../../bin/plex";
        }
        return Paths.get(p).toAbsolutePath().normalize();
    }

    static boolean available() {
        Path b = binary();
        return Files.isRegularFile(b) && Files.isExecutable(b);
    }

    private PlexDev(Path bin, int[] ports, Path dir) {
        this.bin = bin;
        this.edgePort = ports[0];
        this.httpPort = ports[1];
        this.natsPort = ports[2];
        this.dir = dir;
        this.log = dir.resolve("plex-dev.log");
    }

    /** Starts plex dev on three free ports and waits until it serves. */
    static PlexDev start() throws Exception {
        PlexDev d = new PlexDev(binary(), freePorts(3), Files.createTempDirectory("plex-java-it-"));
        Runtime.getRuntime().addShutdownHook(d.hook);
        try {
            d.launch();
        } catch (Exception | AssertionError e) {
            d.close();
            throw e;
        }
        return d;
    }

    /**
     * Picks n free ports below the kernel's ephemeral range. plex dev binds
     * them after its own parts have connected to its NATS, and a restart
     * binds them again: a port from the ephemeral range could meanwhile be
     * the local end of some connection (plex dev's own, or any other
     * process's), and the bind would fail with "address already in use".
     * Falls back to ports the system hands out where the range is unknown
     * or leaves no room below it.
     */
    static int[] freePorts(int n) throws IOException {
        int low = ephemeralLow();
        if (low >= 3072) {
            java.util.Random rnd = new java.util.Random();
            int[] ports = new int[n];
            int found = 0;
            for (int tries = 0; tries < 1000 && found < n; tries++) {
                int p = low - 2048 + rnd.nextInt(2048);
                boolean dup = false;
                for (int i = 0; i < found; i++) {
                    dup |= ports[i] == p;
                }
                if (!dup && bindable(p)) {
                    ports[found++] = p;
                }
            }
            if (found == n) {
                return ports;
            }
        }
        List<ServerSocket> held = new ArrayList<>();
        try {
            int[] ports = new int[n];
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket();
                held.add(s);
                s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                ports[i] = s.getLocalPort();
            }
            return ports;
        } finally {
            for (ServerSocket s : held) {
                s.close();
            }
        }
    }

    /** The first port of Linux's ephemeral range, or -1 if unknown. */
    static int ephemeralLow() {
        try {
            String r = new String(Files.readAllBytes(Paths.get("/proc/sys/net/ipv4/ip_local_port_range")),
                    StandardCharsets.US_ASCII).trim();
            return Integer.parseInt(r.split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** Whether port can be bound on every address, as plex dev binds it. */
    static boolean bindable(int port) {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress(port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    String hostUrl() {
        return "http://127.0.0.1:" + httpPort + "/plex/v1/host";
    }

    void launch() throws Exception {
        Files.createDirectories(dir.resolve("data"));
        ProcessBuilder pb = new ProcessBuilder(bin.toString(), "dev", "--port", Integer.toString(edgePort),
                "--http-port", Integer.toString(httpPort), "--nats-port", Integer.toString(natsPort),
                "--data-dir", dir.resolve("data").toString());
        pb.redirectErrorStream(true);
        pb.redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        process = pb.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        boolean edgeUp = false;
        while (true) {
            if (!process.isAlive()) {
                throw new AssertionError("plex dev exited with " + process.exitValue() + "\n" + logTail());
            }
            if (!edgeUp) {
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress("127.0.0.1", edgePort), 200);
                    edgeUp = true;
                } catch (IOException e) {
                    // not yet
                }
            }
            if (edgeUp && discoveryStatus() == 200) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("plex dev not ready within 20 s (edge port up: " + edgeUp + ")\n"
                        + logTail());
            }
            Thread.sleep(50);
        }
    }

    private int discoveryStatus() {
        try {
            HttpURLConnection c = (HttpURLConnection) new URL(hostUrl()).openConnection();
            c.setConnectTimeout(300);
            c.setReadTimeout(1000);
            try {
                return c.getResponseCode();
            } finally {
                c.disconnect();
            }
        } catch (IOException e) {
            return -1;
        }
    }

    /** Stops the server (SIGTERM, then SIGKILL after 10 s). */
    void stopProcess() throws InterruptedException {
        Process p = process;
        if (p == null) {
            return;
        }
        p.destroy();
        if (!p.waitFor(10, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor(5, TimeUnit.SECONDS);
        }
        process = null;
    }

    void restart() throws Exception {
        stopProcess();
        launch();
    }

    /** Publishes a push with {@code plex push}; fails the test if it does not exit 0. */
    void push(String uid, String body, String uri) throws Exception {
        Process p = new ProcessBuilder(bin.toString(), "push", uid, body, "--uri", uri, "--nats",
                "nats://127.0.0.1:" + natsPort).redirectErrorStream(true).start();
        boolean done = p.waitFor(15, TimeUnit.SECONDS);
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!done) {
            p.destroyForcibly();
            throw new AssertionError("plex push did not finish: " + out);
        }
        if (p.exitValue() != 0) {
            throw new AssertionError("plex push exited " + p.exitValue() + ": " + out);
        }
    }

    String logTail() {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    private void kill() {
        Process p = process;
        if (p != null && p.isAlive()) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
    }

    @Override
    public void close() throws Exception {
        try {
            stopProcess();
        } finally {
            kill();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // shutting down already
            }
            try (Stream<Path> s = Files.walk(dir)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }
}
