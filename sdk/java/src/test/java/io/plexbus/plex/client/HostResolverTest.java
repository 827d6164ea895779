package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.SocketTimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(20)
class HostResolverTest {
    private FakeDiscovery d;

    @BeforeEach
    void up() throws Exception {
        d = new FakeDiscovery();
    }

    @AfterEach
    void down() {
        d.close();
    }

    @Test
    void fullAnswer() throws Exception {
        d.answer(200, "{\"host\":\"127.0.0.1:9578\",\"heartbeat\":60,"
                + "\"backoff\":{\"base\":1.0,\"factor\":1.8,\"jitter\":0.3,\"max\":300},\"extra\":[1]}");
        HostResolver.Result r = new HostResolver(d.url(), 2000, 2000).resolve();
        assertEquals("127.0.0.1", r.getHost());
        assertEquals(9578, r.getPort());
        assertEquals(60000, r.getHeartbeatMillis());
        assertTrue(r.hasBackoff());
        Backoff b = r.backoffOver(new Backoff(5, 1, 0, 5));
        assertEquals(1000, b.getBaseMillis());
        assertEquals(1.8, b.getFactor());
        assertEquals(0.3, b.getJitter());
        assertEquals(300000, b.getMaxMillis());
    }

    @Test
    void oldServerAnswer() throws Exception {
        d.answer(200, "{\"host\":\"10.0.0.1:9578\"}");
        HostResolver.Result r = new HostResolver(d.url(), 2000, 2000).resolve();
        assertEquals("10.0.0.1", r.getHost());
        assertEquals(0, r.getHeartbeatMillis());
        assertFalse(r.hasBackoff());
        Backoff mine = new Backoff(5, 1, 0, 5);
        assertEquals(mine, r.backoffOver(mine));
    }

    @Test
    void errorsAreHostDiscoveryExceptions() throws Exception {
        d.answer(503, "{\"error\":\"no edge available\"}");
        PlexException e = assertThrows(PlexException.class, () -> new HostResolver(d.url(), 2000, 2000).resolve());
        assertEquals(PlexException.Kind.HOST_DISCOVERY, e.getKind());
        assertEquals(503, e.getHttpStatus());
        assertTrue(e.getMessage().contains("no edge available"), e.getMessage());
        for (String bad : new String[] {"not json", "[]", "{}", "{\"host\":\"nohostport\"}", "{\"host\":\"a:0\"}",
            "{\"host\":\"a:99999\"}", "{\"host\":5}"}) {
            d.answer(200, bad);
            PlexException pe = assertThrows(PlexException.class,
                    () -> new HostResolver(d.url(), 2000, 2000).resolve(), bad);
            assertEquals(PlexException.Kind.HOST_DISCOVERY, pe.getKind());
        }
    }

    @Test
    void readTimeout() {
        d.answer(200, "{\"host\":\"a:1\"}");
        d.delayMillis = 1500;
        assertThrows(SocketTimeoutException.class, () -> new HostResolver(d.url(), 1000, 200).resolve());
    }

    @Test
    void hostForms() throws Exception {
        assertArrayEquals(new String[] {"::1", "9578"}, HostResolver.splitHostPort("[::1]:9578"));
        assertArrayEquals(new String[] {"", "9578"}, HostResolver.splitHostPort(":9578"));
        assertArrayEquals(new String[] {"edge-1.example.com", "1"}, HostResolver.splitHostPort("edge-1.example.com:1"));
        assertThrows(PlexException.class, () -> HostResolver.splitHostPort("::1:9578"));
        assertThrows(PlexException.class, () -> HostResolver.splitHostPort("[::1]"));
        assertEquals("api.example.com",
                HostResolver.parse("{\"host\":\":9578\"}".getBytes(Json.UTF8), "api.example.com").getHost());
        assertThrows(IllegalArgumentException.class, () -> new HostResolver("ftp://x/", 1, 1));
        assertThrows(IllegalArgumentException.class, () -> new HostResolver("not a url", 1, 1));
    }
}
