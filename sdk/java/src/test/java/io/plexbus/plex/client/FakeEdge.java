package io.plexbus.plex.client;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.ByteOrder;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A tiny scripted edge for tests: accepts on 127.0.0.1 on a free port and runs
 * a script per connection on its own thread. The standard script speaks the
 * protocol; tests write their own for malformed frames, silence and so on.
 */
final class FakeEdge implements AutoCloseable {
    interface Script {
        /** Runs one connection; {@code n} counts accepted connections from 1. */
        void run(Conn c, int n) throws Exception;
    }

    final ServerSocket server;
    final ByteOrder order;
    final AtomicInteger accepts = new AtomicInteger();
    final BlockingQueue<Conn> conns = new LinkedBlockingQueue<>();
    private final List<Conn> all = new CopyOnWriteArrayList<>();
    private final List<Thread> threads = new CopyOnWriteArrayList<>();
    private final Thread acceptor;
    private volatile Script script;
    private volatile boolean closed;

    FakeEdge(Script script) throws IOException {
        this(ByteOrder.BIG_ENDIAN, script);
    }

    FakeEdge(ByteOrder order, Script script) throws IOException {
        this.order = order;
        this.script = script;
        this.server = new ServerSocket();
        server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        acceptor = new Thread(this::acceptLoop, "fake-edge-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    int port() {
        return server.getLocalPort();
    }

    String hostPort() {
        return "127.0.0.1:" + port();
    }

    void setScript(Script s) {
        this.script = s;
    }

    /** The next accepted connection (in accept order). */
    Conn nextConn(long ms) throws InterruptedException {
        Conn c = conns.poll(ms, TimeUnit.MILLISECONDS);
        if (c == null) {
            throw new AssertionError("no connection within " + ms + " ms");
        }
        return c;
    }

    private void acceptLoop() {
        while (!closed) {
            Socket s;
            try {
                s = server.accept();
            } catch (IOException e) {
                return;
            }
            final int n = accepts.incrementAndGet();
            final Conn c;
            try {
                c = new Conn(s);
            } catch (IOException e) {
                continue;
            }
            all.add(c);
            conns.add(c);
            Thread t = new Thread(() -> {
                try {
                    script.run(c, n);
                } catch (Exception e) {
                    // the client went away or the script ended early: fine in tests
                } finally {
                    c.close();
                }
            }, "fake-edge-conn-" + n);
            t.setDaemon(true);
            threads.add(t);
            t.start();
        }
    }

    @Override
    public void close() throws Exception {
        closed = true;
        server.close();
        for (Conn c : all) {
            c.close();
        }
        acceptor.join(2000);
        for (Thread t : threads) {
            t.join(2000);
        }
    }

    /** One accepted connection. */
    final class Conn {
        final Socket socket;
        final FrameReader reader;
        final OutputStream out;
        final BlockingQueue<Message> received = new LinkedBlockingQueue<>();
        final List<Long> heartbeats = new CopyOnWriteArrayList<>();
        final AtomicBoolean answerHeartbeats = new AtomicBoolean(true);
        volatile String auth;

        Conn(Socket s) throws IOException {
            this.socket = s;
            this.reader = new FrameReader(s.getInputStream(), order, WireCodec.DEFAULT_MAX_FRAME_SIZE);
            this.out = s.getOutputStream();
        }

        Message read() throws IOException {
            return reader.readMessage();
        }

        void send(Message m) throws IOException {
            sendRaw(WireCodec.encodeFrame(m, order));
        }

        void send(String uri, String body) throws IOException {
            send(new Message(0, uri, body));
        }

        void sendRaw(byte[] b) throws IOException {
            synchronized (out) {
                out.write(b);
                out.flush();
            }
        }

        /** Sends a frame with the given payload bytes (any content). */
        void sendPayload(byte[] payload) throws IOException {
            byte[] f = new byte[4 + payload.length];
            WireCodec.writeLength(f, 0, payload.length, order);
            System.arraycopy(payload, 0, f, 4, payload.length);
            sendRaw(f);
        }

        /** Reads the auth frame and records its body. */
        String readAuth() throws IOException {
            Message m = read();
            if (m == null || !"/auth/server".equals(m.getUri())) {
                throw new IOException("expected /auth/server, got " + m);
            }
            auth = m.getBody();
            return auth;
        }

        /** Answers /auth/success with the given body. */
        void authOk(String body) throws IOException {
            send("/auth/success", body);
        }

        /** Reads frames until EOF: answers heartbeats (while enabled) and queues the rest. */
        void serve() throws IOException {
            while (true) {
                Message m;
                try {
                    m = read();
                } catch (SocketException e) {
                    return;
                }
                if (m == null) {
                    return;
                }
                if ("/heartbeat".equals(m.getUri())) {
                    heartbeats.add(System.nanoTime());
                    if (answerHeartbeats.get()) {
                        send("/heartbeat", "");
                    }
                } else {
                    received.add(m);
                }
            }
        }

        void close() {
            try {
                socket.close();
            } catch (IOException e) {
                // ignore
            }
        }
    }

    /**
     * The usual edge: auth data starting with "bad" is refused with
     * "invalid token"; anything else is the uid; heartbeats are answered.
     */
    static Script standard(String heartbeatSeconds) {
        return (c, n) -> {
            String a = c.readAuth();
            if (a.startsWith("bad")) {
                c.send("/auth/failed", "invalid token");
                return;
            }
            c.authOk("{\"uid\":\"" + a + "\",\"heartbeat\":" + heartbeatSeconds + "}");
            c.serve();
        };
    }
}
