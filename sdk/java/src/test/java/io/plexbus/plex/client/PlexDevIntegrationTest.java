package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The client against a real {@code plex dev} on free ports. Skipped (not
 * failed) when the plex binary has not been built.
 */
@Timeout(60)
class PlexDevIntegrationTest {
    private static PlexDev dev;
    private final List<PlexClient> clients = new ArrayList<>();

    @BeforeAll
    static void startServer() throws Exception {
        // CI (make test at the top level) sets plex.requireIntegration: there
        // a missing binary fails the run instead of skipping these tests.
        if (Boolean.getBoolean("plex.requireIntegration")) {
            Assertions.assertTrue(PlexDev.available(), "plex binary not found at " + PlexDev.binary());
        }
        Assumptions.assumeTrue(PlexDev.available(),
                "plex binary not found at " + PlexDev.binary() + " (build it or set PLEX_BIN)");
        dev = PlexDev.start();
    }

    @AfterAll
    static void stopServer() throws Exception {
        if (dev != null) {
            dev.close();
            dev = null;
        }
    }

    @AfterEach
    void stopClients() throws Exception {
        for (PlexClient c : clients) {
            c.stop();
            assertTrue(c.awaitTermination(5, TimeUnit.SECONDS));
        }
        TestUtil.assertNoPlexThreads();
    }

    private PlexClient started(PlexClient.Builder b) {
        PlexClient c = b.build();
        clients.add(c);
        c.start();
        return c;
    }

    private PlexClient.Builder viaDiscovery(String uid, Recorder rec) {
        return PlexClient.builder().hostUrl(dev.hostUrl()).authData(uid).connectTimeout(5, TimeUnit.SECONDS)
                .listener(rec);
    }

    /**
     * Pushes with {@code plex push} until the message arrives: the edge's
     * subscription for a just-connected user may lag its /auth/success.
     */
    private Message pushUntilReceived(Recorder rec, String uid, String body, String uri) throws Exception {
        for (int i = 0; i < 10; i++) {
            dev.push(uid, body, uri);
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(1000);
            while (System.nanoTime() < deadline) {
                for (Recorder.Ev e : rec.ofType("message")) {
                    Message m = (Message) e.a;
                    if (m.getBody().equals(body)) {
                        return m;
                    }
                }
                Thread.sleep(20);
            }
        }
        fail("push " + body + " never arrived; events " + rec.all + "\n" + dev.logTail());
        return null;
    }

    @Test
    void connectsAuthenticatesAndReceivesAPush() throws Exception {
        Recorder rec = new Recorder();
        PlexClient c = started(viaDiscovery("java-it-push", rec));
        assertEquals("java-it-push", rec.await("connected", 10000).a);
        assertEquals("java-it-push", c.getUid());
        assertTrue(c.getHeartbeatIntervalMillis() > 0);
        String body = "hello \"java\" é 🌍 \u2028 " + System.nanoTime();
        Message m = pushUntilReceived(rec, "java-it-push", body, "/notify");
        assertEquals("/notify", m.getUri());
        assertEquals(body, m.getBody());
    }

    @Test
    void heartbeatsAreAnswered() throws Exception {
        Recorder rec = new Recorder();
        PlexClient c = started(viaDiscovery("java-it-hb", rec).heartbeatInterval(150, TimeUnit.MILLISECONDS));
        rec.await("connected", 10000);
        Thread.sleep(1000);
        assertTrue(c.heartbeatReplies.get() >= 4, "heartbeat replies: " + c.heartbeatReplies.get());
        assertTrue(c.isConnected());
        assertTrue(rec.ofType("disconnected").isEmpty(), "events: " + rec.all);
    }

    @Test
    void fixedAddressAndApplicationData() throws Exception {
        Recorder rec = new Recorder();
        PlexClient c = started(PlexClient.builder().server("127.0.0.1", dev.edgePort).authData("java-it-fixed")
                .listener(rec));
        assertEquals("java-it-fixed", rec.await("connected", 10000).a);
        assertTrue(c.send("/app/hello", "data the edge ignores for now"));
        Thread.sleep(300);
        assertTrue(c.isConnected(), "application data does not break the connection");
    }

    @Test
    void authFailureIsReportedAndStopsOnFailure() throws Exception {
        Recorder rec = new Recorder();
        PlexClient c = started(viaDiscovery("not a valid uid!", rec).reconnectStrategy(ReconnectStrategy.ON_FAILURE));
        Recorder.Ev a = rec.await("authFailed", 10000);
        assertFalse(a.will());
        TestUtil.eventually(5000, "stopped", () -> c.getState() == PlexClient.State.STOPPED);
        assertTrue(rec.ofType("connected").isEmpty());
    }

    @Test
    void reconnectsAfterTheServerRestartsAndNeverGivesUp() throws Exception {
        Recorder rec = new Recorder();
        PlexClient always = started(viaDiscovery("java-it-restart", rec)
                .reconnectStrategy(ReconnectStrategy.ALWAYS));
        Recorder never = new Recorder();
        PlexClient once = started(viaDiscovery("java-it-never", never).reconnectStrategy(ReconnectStrategy.NEVER));
        rec.await("connected", 10000);
        never.await("connected", 10000);

        dev.restart();

        Recorder.Ev d = rec.await("disconnected", 15000);
        assertTrue(d.will(), "ALWAYS reconnects: " + d);
        // A draining edge sends /reconnect before closing; a plain close is legal too.
        assertTrue(d.cause() instanceof PlexException, "cause: " + d.cause());
        PlexException.Kind kind = ((PlexException) d.cause()).getKind();
        assertTrue(kind == PlexException.Kind.SERVER_RECONNECT || kind == PlexException.Kind.SERVER_CLOSED,
                "cause: " + d.cause());
        Recorder.Ev n = never.await("disconnected", 15000);
        assertFalse(n.will(), "NEVER gives up: " + n);
        assertEquals("java-it-restart", rec.await("connected", 30000).a);
        assertTrue(always.isConnected());
        TestUtil.eventually(5000, "NEVER client stopped", () -> once.getState() == PlexClient.State.STOPPED);
        String body = "after restart " + System.nanoTime();
        assertEquals(body, pushUntilReceived(rec, "java-it-restart", body, "/push").getBody());
    }
}
