package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The client against scripted fake edges (and a fake discovery endpoint). */
@Timeout(30)
class PlexClientTest {
    private final List<AutoCloseable> cleanup = new ArrayList<>();
    private final List<PlexClient> clients = new ArrayList<>();

    private static final Backoff FAST = new Backoff(50, 1.5, 0, 300);

    private FakeEdge edge(FakeEdge.Script s) throws IOException {
        FakeEdge e = new FakeEdge(s);
        cleanup.add(e);
        return e;
    }

    private PlexClient.Builder to(FakeEdge e, Recorder rec) {
        return PlexClient.builder().server("127.0.0.1", e.port()).authData("42").backoff(FAST)
                .connectTimeout(2, TimeUnit.SECONDS).listener(rec);
    }

    private PlexClient started(PlexClient.Builder b) {
        PlexClient c = b.build();
        clients.add(c);
        c.start();
        return c;
    }

    @AfterEach
    void tearDown() throws Exception {
        for (PlexClient c : clients) {
            c.stop();
            assertTrue(c.awaitTermination(5, TimeUnit.SECONDS), "client threads ended");
        }
        for (AutoCloseable a : cleanup) {
            a.close();
        }
        TestUtil.assertNoPlexThreads();
    }

    @Test
    void connectsAuthenticatesReceivesAndSends() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec));
        assertEquals("42", rec.await("connected", 5000).a);
        FakeEdge.Conn conn = e.nextConn(1000);
        assertEquals("42", conn.auth);
        assertEquals(PlexClient.State.CONNECTED, c.getState());
        assertTrue(c.isConnected());
        assertEquals("42", c.getUid());
        assertEquals(60000, c.getHeartbeatIntervalMillis(), "interval from /auth/success");

        conn.send(new Message(7, "/notify", "hello \u2028 \"world\" 🌍"));
        conn.send(new Message(8, "/push", ""));
        assertEquals(new Message(7, "/notify", "hello \u2028 \"world\" 🌍"), rec.await("message", 2000).a);
        assertEquals(new Message(8, "/push", ""), rec.await("message", 2000).a);

        assertTrue(c.send("/app/echo", "ping"));
        assertEquals(new Message(0, "/app/echo", "ping"), conn.received.poll(2, TimeUnit.SECONDS));

        c.stop();
        Recorder.Ev d = rec.await("disconnected", 2000);
        assertNull(d.a, "stop() reports a null cause");
        assertFalse(d.will());
        assertEquals(PlexClient.State.STOPPED, c.getState());
        assertFalse(c.send("/app/echo", "late"));
        assertTrue(c.awaitTermination(2, TimeUnit.SECONDS));
        TestUtil.assertNoPlexThreads();
        assertEquals(1, e.accepts.get());
    }

    @Test
    void callbacksRunOnTheGivenExecutor() throws Exception {
        ExecutorService main = Executors.newSingleThreadExecutor(r -> new Thread(r, "app-main"));
        cleanup.add(main::shutdownNow);
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        started(to(e, rec).callbackExecutor(main));
        assertEquals("app-main", rec.await("connected", 5000).thread);
        e.nextConn(1000).send("/push", "x");
        assertEquals("app-main", rec.await("message", 2000).thread);
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            assertFalse(t.getName().startsWith("plex-callback"), "no own callback thread");
        }
    }

    @Test
    void heartbeatsAtTheConfiguredInterval() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).heartbeatInterval(100, TimeUnit.MILLISECONDS));
        rec.await("connected", 5000);
        FakeEdge.Conn conn = e.nextConn(1000);
        assertEquals(100, c.getHeartbeatIntervalMillis(), "configured interval wins");
        Thread.sleep(750);
        int n = conn.heartbeats.size();
        assertTrue(n >= 4 && n <= 9, "heartbeats in 750 ms at 100 ms: " + n);
        assertTrue(c.heartbeatReplies.get() >= 3);
        assertTrue(rec.ofType("disconnected").isEmpty());
        // heartbeats never reach the listener
        assertTrue(rec.ofType("message").isEmpty());
    }

    @Test
    void heartbeatIntervalComesFromAuthSuccess() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("0.15"));
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec));
        rec.await("connected", 5000);
        assertEquals(150, c.getHeartbeatIntervalMillis());
        FakeEdge.Conn conn = e.nextConn(1000);
        TestUtil.eventually(2000, "3 heartbeats", () -> conn.heartbeats.size() >= 3);
    }

    @Test
    void silentServerIsDeadAfterTwoIntervals() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk("{\"uid\":\"42\",\"heartbeat\":0.1}");
            c.answerHeartbeats.set(n > 1); // the first connection never answers
            c.serve();
        });
        Recorder rec = new Recorder();
        started(to(e, rec));
        Recorder.Ev first = rec.await("connected", 5000);
        Recorder.Ev d = rec.await("disconnected", 3000);
        long after = TimeUnit.NANOSECONDS.toMillis(d.at - first.at);
        assertTrue(d.cause() instanceof PlexException, String.valueOf(d.cause()));
        assertEquals(PlexException.Kind.HEARTBEAT_TIMEOUT, ((PlexException) d.cause()).getKind());
        assertTrue(d.will());
        assertTrue(after >= 180 && after < 1500, "dead after " + after + " ms");
        rec.await("connected", 3000);
        assertEquals(2, e.accepts.get());
    }

    @Test
    void hugeLengthPrefixDisconnectsAndReconnects() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk("{\"uid\":\"42\",\"heartbeat\":60}");
            if (n == 1) {
                c.sendRaw(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, '{', '}'});
                c.socket.shutdownOutput();
            }
            c.serve();
        });
        Recorder rec = new Recorder();
        started(to(e, rec));
        rec.await("connected", 5000);
        Recorder.Ev d = rec.await("disconnected", 3000);
        assertTrue(d.cause() instanceof WireException, String.valueOf(d.cause()));
        assertEquals(WireException.Kind.FRAME_TOO_LARGE, ((WireException) d.cause()).getKind());
        assertTrue(d.will());
        rec.await("connected", 3000);
        e.nextConn(100);
        e.nextConn(1000).send("/push", "after");
        assertEquals("after", ((Message) rec.await("message", 2000).a).getBody());
    }

    @Test
    void frameAboveConfiguredMaxIsRejected() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk("");
            c.send("/push", "0123456789012345678901234567890123456789012345678901234567890123456789");
            c.serve();
        });
        Recorder rec = new Recorder();
        started(to(e, rec).maxFrameSize(64).reconnectStrategy(ReconnectStrategy.NEVER));
        rec.await("connected", 5000);
        Recorder.Ev d = rec.await("disconnected", 3000);
        assertEquals(WireException.Kind.FRAME_TOO_LARGE, ((WireException) d.cause()).getKind());
        assertFalse(d.will());
    }

    @Test
    void badPayloadsDisconnectWithoutCrashing() throws Exception {
        String[] bad = {"{bad json", "[1,2]", "null", "{\"seq\":\"5\"}", "{\"uri\":\"/x\"} trailing", "\"str\""};
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk("{\"uid\":\"42\"}");
            if (n <= bad.length) {
                c.sendPayload(bad[n - 1].getBytes(Json.UTF8));
            }
            c.serve();
        });
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).backoff(new Backoff(10, 1, 0, 10)));
        for (String b : bad) {
            rec.await("connected", 5000);
            Recorder.Ev d = rec.await("disconnected", 3000);
            assertTrue(d.cause() instanceof WireException, b + ": " + d.cause());
            assertEquals(WireException.Kind.BAD_PAYLOAD, ((WireException) d.cause()).getKind(), b);
            assertTrue(d.will());
        }
        rec.await("connected", 5000);
        TestUtil.eventually(2000, "connected", c::isConnected);
        assertTrue(rec.ofType("message").isEmpty());
    }

    @Test
    void protocolErrorsDuringAuthAreConnectionFailures() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            switch (n) {
                case 1:
                    c.sendPayload("[1]".getBytes(Json.UTF8));
                    break;
                case 2:
                    c.sendRaw(new byte[] {0x7f, 0, 0, 0});
                    break;
                case 3:
                    c.sendRaw(new byte[] {0, 0, 0, 10, '{'}); // then close: truncated
                    return;
                case 4:
                    return; // close without answering
                default:
                    c.authOk("{\"uid\":\"42\"}");
                    c.serve();
            }
            Thread.sleep(2000); // keep the socket open; the client must close it
        });
        Recorder rec = new Recorder();
        started(to(e, rec).backoff(new Backoff(10, 1, 0, 10)));
        Recorder.Ev f1 = rec.await("failed", 3000);
        assertEquals(WireException.Kind.BAD_PAYLOAD, ((WireException) f1.cause()).getKind());
        assertTrue(f1.will());
        assertEquals(WireException.Kind.FRAME_TOO_LARGE, ((WireException) rec.await("failed", 3000).cause()).getKind());
        assertEquals(WireException.Kind.TRUNCATED, ((WireException) rec.await("failed", 3000).cause()).getKind());
        assertEquals(PlexException.Kind.SERVER_CLOSED, ((PlexException) rec.await("failed", 3000).cause()).getKind());
        rec.await("connected", 3000);
        assertTrue(rec.ofType("disconnected").isEmpty(), "never reported connected before");
    }

    @Test
    void authTimeout() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.send("/heartbeat", ""); // not an auth reply: ignored
            Thread.sleep(3000);
        });
        Recorder rec = new Recorder();
        started(to(e, rec).connectTimeout(300, TimeUnit.MILLISECONDS).reconnectStrategy(ReconnectStrategy.NEVER));
        Recorder.Ev f = rec.await("failed", 3000);
        assertEquals(PlexException.Kind.AUTH_TIMEOUT, ((PlexException) f.cause()).getKind());
        assertFalse(f.will());
    }

    @Test
    void connectionRefusedRetriesWithBackoffAndStopEndsIt() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        Recorder rec = new Recorder();
        PlexClient c = started(PlexClient.builder().server("127.0.0.1", port).authData("42")
                .backoff(new Backoff(100, 2, 0, 400)).listener(rec));
        Recorder.Ev f1 = rec.await("failed", 3000);
        assertTrue(f1.cause() instanceof ConnectException, String.valueOf(f1.cause()));
        assertTrue(f1.will());
        Recorder.Ev f2 = rec.await("failed", 3000);
        Recorder.Ev f3 = rec.await("failed", 3000);
        long gap1 = TimeUnit.NANOSECONDS.toMillis(f2.at - f1.at);
        long gap2 = TimeUnit.NANOSECONDS.toMillis(f3.at - f2.at);
        assertTrue(gap1 >= 90 && gap1 < 1000, "first backoff " + gap1);
        assertTrue(gap2 >= 190 && gap2 < 1100, "second backoff " + gap2);
        TestUtil.eventually(1000, "waiting", () -> c.getState() == PlexClient.State.WAITING);
        c.stop();
        assertEquals(PlexClient.State.STOPPED, c.getState());
        assertTrue(c.awaitTermination(2, TimeUnit.SECONDS));
        int n = rec.all.size();
        Thread.sleep(600);
        assertEquals(n, rec.all.size(), "no events after stop");
        assertTrue(rec.ofType("disconnected").isEmpty());
    }

    @Test
    void authFailedStopsOnFailureStrategy() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).authData("bad-token").reconnectStrategy(ReconnectStrategy.ON_FAILURE));
        Recorder.Ev a = rec.await("authFailed", 3000);
        assertEquals("invalid token", a.a);
        assertFalse(a.will());
        TestUtil.eventually(2000, "stopped", () -> c.getState() == PlexClient.State.STOPPED);
        assertTrue(c.awaitTermination(2, TimeUnit.SECONDS));
        TestUtil.assertNoPlexThreads();
        Thread.sleep(300);
        assertEquals(1, e.accepts.get());
        assertTrue(rec.ofType("failed").isEmpty());
        // start() again after the client gave up
        c.start();
        rec.await("authFailed", 3000);
        assertEquals(2, e.accepts.get());
    }

    @Test
    void authFailedWithStaticDataStopsEvenWithAlways() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).authData("bad").reconnectStrategy(ReconnectStrategy.ALWAYS));
        assertFalse(rec.await("authFailed", 3000).will());
        TestUtil.eventually(2000, "stopped", () -> c.getState() == PlexClient.State.STOPPED);
        Thread.sleep(300);
        assertEquals(1, e.accepts.get());
    }

    @Test
    void alwaysRetriesAuthOnlyWithNewData() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        AtomicReference<String> token = new AtomicReference<>("bad-1");
        AtomicInteger asked = new AtomicInteger();
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).authDataProvider(() -> {
            asked.incrementAndGet();
            return token.get();
        }).backoff(new Backoff(40, 1, 0, 40)));
        Recorder.Ev a = rec.await("authFailed", 3000);
        assertTrue(a.will());
        Thread.sleep(400);
        assertEquals(1, e.accepts.get(), "the refused data is not sent again");
        assertTrue(asked.get() >= 4, "the provider is asked again at each backoff step: " + asked.get());
        assertTrue(rec.ofType("failed").isEmpty());
        token.set("77");
        assertEquals("77", rec.await("connected", 3000).a);
        assertEquals(2, e.accepts.get());
        assertEquals("77", c.getUid());
    }

    @Test
    void retryNowResendsRefusedData() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            if (n == 1) {
                c.send("/auth/failed", "auth service unavailable");
                return;
            }
            c.authOk("{\"uid\":\"42\"}");
            c.serve();
        });
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).authDataProvider(() -> "42").backoff(new Backoff(40, 1, 0, 40)));
        assertEquals("auth service unavailable", rec.await("authFailed", 3000).a);
        Thread.sleep(300);
        assertEquals(1, e.accepts.get());
        c.retryNow();
        rec.await("connected", 3000);
    }

    @Test
    void onFailureReconnectsAfterServerClose() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk("{\"uid\":\"42\"}");
            if (n == 1) {
                Thread.sleep(100);
                return; // close
            }
            c.serve();
        });
        Recorder rec = new Recorder();
        started(to(e, rec).reconnectStrategy(ReconnectStrategy.ON_FAILURE));
        rec.await("connected", 3000);
        Recorder.Ev d = rec.await("disconnected", 3000);
        assertEquals(PlexException.Kind.SERVER_CLOSED, ((PlexException) d.cause()).getKind());
        assertTrue(d.will());
        rec.await("connected", 3000);
    }

    @Test
    void neverStrategyGivesUpAndEndsItsThreads() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk("{\"uid\":\"42\"}");
            Thread.sleep(100);
        });
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).reconnectStrategy(ReconnectStrategy.NEVER));
        rec.await("connected", 3000);
        Recorder.Ev d = rec.await("disconnected", 3000);
        assertFalse(d.will());
        TestUtil.eventually(2000, "stopped", () -> c.getState() == PlexClient.State.STOPPED);
        assertTrue(c.awaitTermination(2, TimeUnit.SECONDS));
        TestUtil.assertNoPlexThreads();
        Thread.sleep(200);
        assertEquals(1, e.accepts.get());
    }

    @Test
    void serverReconnectMeansAtOnceViaDiscovery() throws Exception {
        FakeEdge a = edge((c, n) -> {
            c.readAuth();
            c.authOk("{\"uid\":\"42\",\"heartbeat\":60}");
            Thread.sleep(50);
            c.send("/reconnect", "");
            Thread.sleep(200);
        });
        FakeEdge b = edge(FakeEdge.standard("60"));
        FakeDiscovery d = new FakeDiscovery();
        cleanup.add(d);
        d.answer(200, "{\"host\":\"" + a.hostPort() + "\"}");
        Recorder rec = new Recorder();
        PlexClient c = started(PlexClient.builder().hostUrl(d.url()).authData("42")
                .backoff(new Backoff(5000, 2, 0, 5000)).reconnectStrategy(ReconnectStrategy.ON_FAILURE)
                .listener(rec));
        rec.await("connected", 3000);
        d.answer(200, "{\"host\":\"" + b.hostPort() + "\"}");
        Recorder.Ev dis = rec.await("disconnected", 3000);
        assertEquals(PlexException.Kind.SERVER_RECONNECT, ((PlexException) dis.cause()).getKind());
        assertTrue(dis.will());
        Recorder.Ev again = rec.await("connected", 2000);
        assertTrue(TimeUnit.NANOSECONDS.toMillis(again.at - dis.at) < 1500, "reconnected at once, not after 5 s");
        assertEquals(1, b.accepts.get());
        assertEquals(2, d.requests.get(), "host discovery asked again");
        assertTrue(c.isConnected());
    }

    @Test
    void discoveryParametersOverrideDefaults() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk(""); // an old edge: empty /auth/success body
            if (n == 1) {
                Thread.sleep(50);
                return;
            }
            c.serve();
        });
        FakeDiscovery d = new FakeDiscovery();
        cleanup.add(d);
        d.answer(200, "{\"host\":\"" + e.hostPort() + "\",\"heartbeat\":0.2,"
                + "\"backoff\":{\"base\":0.05,\"factor\":1,\"jitter\":0,\"max\":0.05}}");
        Recorder rec = new Recorder();
        PlexClient c = started(PlexClient.builder().hostUrl(d.url()).authData("42")
                .backoff(new Backoff(10000, 2, 0, 10000)).listener(rec));
        assertNull(rec.await("connected", 3000).a, "no uid from an old edge");
        assertEquals(200, c.getHeartbeatIntervalMillis(), "heartbeat from discovery");
        Recorder.Ev dis = rec.await("disconnected", 3000);
        Recorder.Ev again = rec.await("connected", 3000);
        long gap = TimeUnit.NANOSECONDS.toMillis(again.at - dis.at);
        assertTrue(gap < 2000, "server backoff (50 ms) used, not the configured 10 s: " + gap);
    }

    @Test
    void discoveryErrorsAndFixedFallback() throws Exception {
        FakeDiscovery d = new FakeDiscovery();
        cleanup.add(d);
        d.answer(503, "{\"error\":\"no edge available\"}");
        Recorder rec = new Recorder();
        started(PlexClient.builder().hostUrl(d.url()).authData("42").backoff(FAST)
                .reconnectStrategy(ReconnectStrategy.NEVER).listener(rec));
        Recorder.Ev f = rec.await("failed", 3000);
        PlexException pe = (PlexException) f.cause();
        assertEquals(PlexException.Kind.HOST_DISCOVERY, pe.getKind());
        assertEquals(503, pe.getHttpStatus());
        assertFalse(f.will());

        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec2 = new Recorder();
        started(PlexClient.builder().hostUrl(d.url()).server("127.0.0.1", e.port()).authData("42").listener(rec2));
        rec2.await("connected", 3000);
    }

    @Test
    void networkAvailableReconnectsAtOnce() throws Exception {
        FakeEdge e = edge((c, n) -> {
            if (n == 1) {
                return; // first attempt: closed at once
            }
            c.readAuth();
            c.authOk("{\"uid\":\"42\"}");
            c.serve();
        });
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).backoff(new Backoff(30000, 2, 0, 30000)));
        rec.await("failed", 3000);
        TestUtil.eventually(1000, "waiting", () -> c.getState() == PlexClient.State.WAITING);
        Thread.sleep(100);
        assertEquals(1, e.accepts.get());
        c.onNetworkAvailable();
        rec.await("connected", 2000);
    }

    @Test
    void networkAvailableDuringAnAttemptSkipsTheNextWait() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            if (n == 1) {
                Thread.sleep(2000); // never answers: the attempt times out
                return;
            }
            c.authOk("{\"uid\":\"42\"}");
            c.serve();
        });
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).connectTimeout(400, TimeUnit.MILLISECONDS)
                .backoff(new Backoff(30000, 2, 0, 30000)));
        e.nextConn(2000);
        assertEquals(PlexClient.State.CONNECTING, c.getState());
        c.onNetworkAvailable();
        assertEquals(PlexException.Kind.AUTH_TIMEOUT, ((PlexException) rec.await("failed", 3000).cause()).getKind());
        rec.await("connected", 2000);
    }

    @Test
    void foregroundReconnectsAtOnce() throws Exception {
        FakeEdge e = edge((c, n) -> {
            if (n == 1) {
                return;
            }
            c.readAuth();
            c.authOk("{\"uid\":\"42\"}");
            c.serve();
        });
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).backoff(new Backoff(30000, 2, 0, 30000)));
        rec.await("failed", 3000);
        TestUtil.eventually(1000, "waiting", () -> c.getState() == PlexClient.State.WAITING);
        c.onAppForegrounded();
        rec.await("connected", 2000);
    }

    @Test
    void backgroundUsesSlowerHeartbeatsAndForegroundProbes() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).heartbeatInterval(100, TimeUnit.MILLISECONDS)
                .backgroundHeartbeatInterval(500, TimeUnit.MILLISECONDS));
        rec.await("connected", 3000);
        FakeEdge.Conn conn = e.nextConn(1000);
        c.onAppBackgrounded();
        assertEquals(500, c.getHeartbeatIntervalMillis());
        int before = conn.heartbeats.size();
        Thread.sleep(800);
        int inBackground = conn.heartbeats.size() - before;
        assertTrue(inBackground >= 1 && inBackground <= 3, "background heartbeats in 800 ms: " + inBackground);
        int n = conn.heartbeats.size();
        c.onAppForegrounded();
        assertEquals(100, c.getHeartbeatIntervalMillis());
        TestUtil.eventually(90, "an immediate probe heartbeat", () -> conn.heartbeats.size() > n);
        assertTrue(c.isConnected());
        // a client started in the background begins with the background interval
        Recorder rec2 = new Recorder();
        PlexClient c2 = to(e, rec2).heartbeatInterval(100, TimeUnit.MILLISECONDS)
                .backgroundHeartbeatInterval(400, TimeUnit.MILLISECONDS).build();
        clients.add(c2);
        c2.onAppBackgrounded();
        c2.start();
        rec2.await("connected", 3000);
        assertEquals(400, c2.getHeartbeatIntervalMillis());
    }

    @Test
    void probeDetectsADeadConnection() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).connectTimeout(300, TimeUnit.MILLISECONDS));
        rec.await("connected", 3000);
        FakeEdge.Conn conn = e.nextConn(1000);
        c.onNetworkAvailable(); // answered: still connected
        TestUtil.eventually(1000, "probe answered", () -> c.heartbeatReplies.get() >= 1);
        Thread.sleep(400);
        assertTrue(c.isConnected());
        conn.answerHeartbeats.set(false);
        c.onNetworkAvailable();
        Recorder.Ev d = rec.await("disconnected", 2000);
        assertEquals(PlexException.Kind.HEARTBEAT_TIMEOUT, ((PlexException) d.cause()).getKind());
        assertTrue(d.will());
        rec.await("connected", 3000);
    }

    @Test
    void littleEndian() throws Exception {
        FakeEdge e = new FakeEdge(ByteOrder.LITTLE_ENDIAN, FakeEdge.standard("60"));
        cleanup.add(e);
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec).byteOrder(ByteOrder.LITTLE_ENDIAN));
        assertEquals("42", rec.await("connected", 3000).a);
        FakeEdge.Conn conn = e.nextConn(1000);
        conn.send(new Message(1, "/push", "le"));
        assertEquals("le", ((Message) rec.await("message", 2000).a).getBody());
        assertTrue(c.send("/x", "y"));
        assertEquals(new Message(0, "/x", "y"), conn.received.poll(2, TimeUnit.SECONDS));
    }

    @Test
    void sendValidation() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        PlexClient c = to(e, rec).maxFrameSize(100).build();
        clients.add(c);
        assertFalse(c.send("/x", "not started"));
        assertThrows(IllegalArgumentException.class, () -> c.send("", "x"));
        assertThrows(IllegalArgumentException.class, () -> c.send(null, "x"));
        StringBuilder big = new StringBuilder();
        for (int i = 0; i < 100; i++) {
            big.append('x');
        }
        assertThrows(IllegalArgumentException.class, () -> c.send("/x", big.toString()));
        c.start();
        rec.await("connected", 3000);
        assertTrue(c.send("/x", null));
        assertEquals(new Message(0, "/x", ""), e.nextConn(1000).received.poll(2, TimeUnit.SECONDS));
    }

    @Test
    void sendQueueIsBoundedWhenTheServerStopsReading() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk("{\"uid\":\"42\"}");
            Thread.sleep(5000); // never reads again
        });
        Recorder rec = new Recorder();
        PlexClient c = started(to(e, rec));
        rec.await("connected", 3000);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 8000; i++) {
            sb.append('x');
        }
        String body = sb.toString();
        int sent = 0;
        while (sent < 20000 && c.send("/bulk", body)) {
            sent++;
        }
        assertTrue(sent >= PlexClient.MAX_PENDING_SENDS && sent < 20000, "accepted before refusing: " + sent);
        c.stop(); // unblocks the stuck write
        assertTrue(c.awaitTermination(3, TimeUnit.SECONDS));
    }

    @Test
    void stopFromACallbackAndRestart() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        AtomicReference<PlexClient> self = new AtomicReference<>();
        AtomicInteger connects = new AtomicInteger();
        PlexClient c = to(e, rec).listener(new PlexClient.Listener() {
            @Override
            public void onConnected(String uid) {
                if (connects.incrementAndGet() == 1) {
                    self.get().stop();
                }
            }
        }).build();
        self.set(c);
        clients.add(c);
        c.start();
        c.start(); // no-op while running
        rec.await("connected", 3000);
        rec.await("disconnected", 3000);
        TestUtil.eventually(2000, "stopped", () -> c.getState() == PlexClient.State.STOPPED);
        assertTrue(c.awaitTermination(3, TimeUnit.SECONDS));
        TestUtil.assertNoPlexThreads();
        assertEquals(1, e.accepts.get());
        c.start();
        rec.await("connected", 3000);
        assertEquals(2, e.accepts.get());
    }

    @Test
    void stopFromACallbackOnADirectExecutor() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        AtomicReference<PlexClient> self = new AtomicReference<>();
        PlexClient c = to(e, rec).callbackExecutor(Runnable::run).listener(new PlexClient.Listener() {
            @Override
            public void onMessage(Message m) {
                self.get().stop(); // runs on the I/O thread itself
            }
        }).build();
        self.set(c);
        clients.add(c);
        c.start();
        rec.await("connected", 3000);
        e.nextConn(1000).send("/push", "stop please");
        rec.await("message", 2000);
        Recorder.Ev d = rec.await("disconnected", 2000);
        assertNull(d.a);
        assertTrue(c.awaitTermination(3, TimeUnit.SECONDS));
    }

    @Test
    void aThrowingListenerDoesNotBreakDelivery() throws Exception {
        FakeEdge e = edge(FakeEdge.standard("60"));
        Recorder rec = new Recorder();
        List<String> logs = new java.util.concurrent.CopyOnWriteArrayList<>();
        PlexClient c = started(to(e, rec).logger((m, t) -> logs.add(m)).listener(new PlexClient.Listener() {
            @Override
            public void onMessage(Message m) {
                throw new IllegalStateException("app bug");
            }
        }));
        rec.await("connected", 3000);
        FakeEdge.Conn conn = e.nextConn(1000);
        conn.send("/push", "1");
        conn.send("/push", "2");
        rec.await("message", 2000);
        assertEquals("2", ((Message) rec.await("message", 2000).a).getBody());
        assertTrue(c.isConnected());
        TestUtil.eventually(1000, "logged", () -> logs.stream().anyMatch(s -> s.contains("listener threw")));
    }

    @Test
    void noCallbacksAfterStopReturns() throws Exception {
        FakeEdge e = edge((c, n) -> {
            c.readAuth();
            c.authOk("{\"uid\":\"42\"}");
            for (int i = 0; i < 2000; i++) {
                c.send(new Message(i + 1, "/push", "flood " + i));
            }
            c.serve();
        });
        Recorder rec = new Recorder();
        ExecutorService slow = Executors.newSingleThreadExecutor();
        cleanup.add(slow::shutdownNow);
        PlexClient c = started(to(e, rec).callbackExecutor(r -> slow.execute(() -> {
            try {
                Thread.sleep(1);
            } catch (InterruptedException x) {
                Thread.currentThread().interrupt();
            }
            r.run();
        })));
        rec.await("message", 3000);
        c.stop();
        int atStop = rec.all.size();
        assertNull(rec.await("disconnected", 10000).a);
        Thread.sleep(100);
        int late = 0;
        for (Recorder.Ev ev : rec.all.subList(atStop, rec.all.size())) {
            if (!ev.type.equals("disconnected")) {
                late++; // at most one that had passed the gate when stop() was called
            }
        }
        assertTrue(late <= 1, "events after stop: " + late);
        assertEquals(1, rec.ofType("disconnected").size());
        assertTrue(rec.ofType("message").size() < 2000, "queued messages were dropped");
    }

    @Test
    void builderValidation() {
        assertThrows(IllegalStateException.class, () -> PlexClient.builder().authData("x").build());
        assertThrows(IllegalStateException.class, () -> PlexClient.builder().server("h", 1).build());
        assertThrows(IllegalArgumentException.class, () -> PlexClient.builder().server("h", 0));
        assertThrows(IllegalArgumentException.class,
                () -> PlexClient.builder().hostUrl("gopher://x").authData("x").build());
        assertThrows(IllegalArgumentException.class,
                () -> PlexClient.builder().heartbeatInterval(0, TimeUnit.SECONDS));
        PlexClient idle = PlexClient.builder().server("h", 1).authData("x").build();
        assertEquals(PlexClient.State.STOPPED, idle.getState());
        idle.stop(); // not started: nothing happens
        idle.onNetworkAvailable();
        idle.onAppBackgrounded();
        idle.onAppForegrounded();
        assertNull(idle.getUid());
    }
}
