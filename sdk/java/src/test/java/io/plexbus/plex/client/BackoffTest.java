package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class BackoffTest {
    @Test
    void growsWithJitterAndCaps() {
        Random rnd = new Random(7);
        Backoff b = Backoff.DEFAULT;
        for (int attempt = 0; attempt < 40; attempt++) {
            double nominal = Math.min(300000, 1000 * Math.pow(1.8, attempt));
            for (int k = 0; k < 50; k++) {
                long d = b.delayMillis(attempt, rnd);
                assertTrue(d >= nominal * 0.7 - 1 && d <= Math.min(300000, nominal * 1.3) + 1,
                        "attempt " + attempt + ": " + d);
            }
        }
        Backoff exact = new Backoff(100, 2, 0, 1000);
        assertEquals(100, exact.delayMillis(0, rnd));
        assertEquals(400, exact.delayMillis(2, rnd));
        assertEquals(1000, exact.delayMillis(10, rnd));
        assertEquals(1000, exact.delayMillis(100000, rnd));
    }

    @Test
    void validatesAndMergesServerValues() {
        assertThrows(IllegalArgumentException.class, () -> new Backoff(0, 2, 0, 10));
        assertThrows(IllegalArgumentException.class, () -> new Backoff(10, 0.5, 0, 10));
        assertThrows(IllegalArgumentException.class, () -> new Backoff(10, 2, 1.5, 10));
        assertThrows(IllegalArgumentException.class, () -> new Backoff(10, 2, 0, 5));
        Backoff m = Backoff.DEFAULT.withServerValues(0.5, 2.0, null, 60.0);
        assertEquals(500, m.getBaseMillis());
        assertEquals(2.0, m.getFactor());
        assertEquals(0.3, m.getJitter());
        assertEquals(60000, m.getMaxMillis());
        Backoff ignored = Backoff.DEFAULT.withServerValues(-1.0, 0.1, 7.0, null);
        assertEquals(1000, ignored.getBaseMillis());
        assertEquals(1.8, ignored.getFactor());
        assertEquals(0.3, ignored.getJitter());
    }
}
