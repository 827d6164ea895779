package io.plexbus.plex.client;

import java.util.Random;

/**
 * Exponential reconnect backoff with jitter: attempt {@code n} (from 0) waits
 * {@code min(max, base * factor^n)} scaled by a random factor in
 * {@code [1 - jitter, 1 + jitter]}, and never more than {@code max}.
 * Immutable.
 */
public final class Backoff {
    /** 1 s base, factor 1.8, jitter 0.3, at most 300 s: the server's defaults. */
    public static final Backoff DEFAULT = new Backoff(1000, 1.8, 0.3, 300000);

    private final long baseMillis;
    private final double factor;
    private final double jitter;
    private final long maxMillis;

    /**
     * @param baseMillis first delay, {@code > 0}
     * @param factor growth per attempt, {@code >= 1}
     * @param jitter relative randomization, {@code 0..1}
     * @param maxMillis cap, {@code >= baseMillis}
     */
    public Backoff(long baseMillis, double factor, double jitter, long maxMillis) {
        if (!valid(baseMillis, factor, jitter, maxMillis)) {
            throw new IllegalArgumentException("invalid backoff: base=" + baseMillis + "ms factor=" + factor
                    + " jitter=" + jitter + " max=" + maxMillis + "ms");
        }
        this.baseMillis = baseMillis;
        this.factor = factor;
        this.jitter = jitter;
        this.maxMillis = maxMillis;
    }

    static boolean valid(long baseMillis, double factor, double jitter, long maxMillis) {
        return baseMillis > 0 && factor >= 1 && !Double.isInfinite(factor) && jitter >= 0 && jitter <= 1
                && maxMillis >= baseMillis;
    }

    public long getBaseMillis() {
        return baseMillis;
    }

    public double getFactor() {
        return factor;
    }

    public double getJitter() {
        return jitter;
    }

    public long getMaxMillis() {
        return maxMillis;
    }

    /** The delay before attempt {@code attempt} (0-based), randomized with {@code rnd}. */
    public long delayMillis(int attempt, Random rnd) {
        double d = baseMillis * Math.pow(factor, Math.max(0, attempt));
        if (d > maxMillis || Double.isNaN(d)) {
            d = maxMillis;
        }
        if (jitter > 0) {
            d *= 1 + jitter * (2 * rnd.nextDouble() - 1);
        }
        if (d > maxMillis) {
            d = maxMillis;
        }
        return Math.max(0, (long) d);
    }

    /**
     * Overrides fields with the server's values (seconds, from host discovery);
     * a missing (null) or invalid value keeps this one's.
     */
    Backoff withServerValues(Double baseSec, Double factorV, Double jitterV, Double maxSec) {
        long b = baseSec != null && baseSec > 0 && baseSec < 1e6 ? (long) (baseSec * 1000) : baseMillis;
        double f = factorV != null && factorV >= 1 && factorV < 1e3 ? factorV : factor;
        double j = jitterV != null && jitterV >= 0 && jitterV <= 1 ? jitterV : jitter;
        long m = maxSec != null && maxSec > 0 && maxSec < 1e7 ? (long) (maxSec * 1000) : maxMillis;
        if (b <= 0) {
            b = baseMillis;
        }
        if (m < b) {
            m = Math.max(b, maxMillis);
        }
        return new Backoff(b, f, j, m);
    }

    @Override
    public String toString() {
        return "Backoff{base=" + baseMillis + "ms, factor=" + factor + ", jitter=" + jitter + ", max=" + maxMillis
                + "ms}";
    }
}
