package io.plexbus.plex.client;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLConnection;
import java.util.Map;

/**
 * Asks the Plex HTTP API which edge to dial: {@code GET <url>} (normally
 * {@code http://api:9579/plex/v1/host}) answers 200
 * {@code {"host":"ip:port","heartbeat":60,"backoff":{"base":1.0,"factor":1.8,"jitter":0.3,"max":300}}}
 * (heartbeat and backoff in seconds, both optional) or an error status with
 * {@code {"error":"..."}} (503 when no edge is available).
 * Uses {@link HttpURLConnection}, so it works on the JVM and on Android.
 * Thread-safe; {@link #abort()} cancels a request in progress from another thread.
 */
public final class HostResolver {
    private static final int MAX_BODY = 64 * 1024;

    private final URL url;
    private final int connectTimeoutMillis;
    private final int readTimeoutMillis;
    private volatile HttpURLConnection current;

    /** The answer of host discovery. */
    public static final class Result {
        private final String host;
        private final int port;
        private final long heartbeatMillis;
        private final Double backoffBase;
        private final Double backoffFactor;
        private final Double backoffJitter;
        private final Double backoffMax;

        Result(String host, int port, long heartbeatMillis, Double base, Double factor, Double jitter, Double max) {
            this.host = host;
            this.port = port;
            this.heartbeatMillis = heartbeatMillis;
            this.backoffBase = base;
            this.backoffFactor = factor;
            this.backoffJitter = jitter;
            this.backoffMax = max;
        }

        /** The edge's host name or IP literal (without brackets for IPv6). */
        public String getHost() {
            return host;
        }

        public int getPort() {
            return port;
        }

        /** The recommended heartbeat interval, or 0 when the server gave none. */
        public long getHeartbeatMillis() {
            return heartbeatMillis;
        }

        /** Whether the server sent any backoff parameter. */
        public boolean hasBackoff() {
            return backoffBase != null || backoffFactor != null || backoffJitter != null || backoffMax != null;
        }

        /** {@code fallback} with the server's backoff parameters applied over it. */
        public Backoff backoffOver(Backoff fallback) {
            return hasBackoff() ? fallback.withServerValues(backoffBase, backoffFactor, backoffJitter, backoffMax)
                    : fallback;
        }

        @Override
        public String toString() {
            return "HostResolver.Result{" + host + ":" + port + ", heartbeat=" + heartbeatMillis + "ms}";
        }
    }

    /**
     * @param url the discovery URL, http or https
     * @param connectTimeoutMillis TCP connect timeout, {@code > 0}
     * @param readTimeoutMillis read timeout, {@code > 0}
     */
    public HostResolver(String url, int connectTimeoutMillis, int readTimeoutMillis) {
        try {
            this.url = new URL(url);
        } catch (MalformedURLException e) {
            throw new IllegalArgumentException("bad host discovery URL " + url + ": " + e.getMessage(), e);
        }
        String p = this.url.getProtocol();
        if (!"http".equals(p) && !"https".equals(p)) {
            throw new IllegalArgumentException("host discovery URL must be http or https: " + url);
        }
        if (connectTimeoutMillis <= 0 || readTimeoutMillis <= 0) {
            throw new IllegalArgumentException("timeouts must be positive");
        }
        this.connectTimeoutMillis = connectTimeoutMillis;
        this.readTimeoutMillis = readTimeoutMillis;
    }

    /** Asks for an edge. Blocking: do not call on Android's main thread. */
    public Result resolve() throws IOException {
        URLConnection uc = url.openConnection();
        if (!(uc instanceof HttpURLConnection)) {
            throw new PlexException(PlexException.Kind.HOST_DISCOVERY, "not an HTTP URL: " + url);
        }
        HttpURLConnection c = (HttpURLConnection) uc;
        current = c;
        try {
            c.setConnectTimeout(connectTimeoutMillis);
            c.setReadTimeout(readTimeoutMillis);
            c.setUseCaches(false);
            c.setInstanceFollowRedirects(false);
            c.setRequestProperty("Accept", "application/json");
            int status = c.getResponseCode();
            InputStream in = status >= 400 ? c.getErrorStream() : c.getInputStream();
            byte[] body = in == null ? new byte[0] : readLimited(in);
            if (status != 200) {
                String msg = errorMessage(body);
                throw new PlexException(PlexException.Kind.HOST_DISCOVERY,
                        "host discovery " + url + ": HTTP " + status + (msg.length() > 0 ? ": " + msg : ""), null,
                        status);
            }
            return parse(body, url.getHost());
        } finally {
            current = null;
            c.disconnect();
        }
    }

    /** Cancels a request in progress, if any (best effort). */
    public void abort() {
        HttpURLConnection c = current;
        if (c != null) {
            c.disconnect();
        }
    }

    private static byte[] readLimited(InputStream in) throws IOException {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] b = new byte[4096];
            int n;
            while ((n = in.read(b)) >= 0) {
                out.write(b, 0, n);
                if (out.size() > MAX_BODY) {
                    throw new PlexException(PlexException.Kind.HOST_DISCOVERY,
                            "host discovery answer larger than " + MAX_BODY + " bytes");
                }
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    private static String errorMessage(byte[] body) {
        try {
            Object doc = Json.parse(body);
            if (doc instanceof Map) {
                Object e = Json.get((Map<?, ?>) doc, "error");
                if (e instanceof String) {
                    return (String) e;
                }
            }
        } catch (Json.SyntaxError e) {
            // not JSON: fall through
        }
        String s = new String(body, Json.UTF8).trim();
        return s.length() > 200 ? s.substring(0, 200) : s;
    }

    /**
     * Parses a 200 answer. {@code defaultHost} replaces an empty host part
     * (an edge advertising {@code ":9578"}).
     */
    static Result parse(byte[] body, String defaultHost) throws PlexException {
        Object doc;
        try {
            doc = Json.parse(body);
        } catch (Json.SyntaxError e) {
            throw new PlexException(PlexException.Kind.HOST_DISCOVERY, "host discovery answer is not JSON: "
                    + e.getMessage());
        }
        if (!(doc instanceof Map)) {
            throw new PlexException(PlexException.Kind.HOST_DISCOVERY, "host discovery answer is not a JSON object");
        }
        Map<?, ?> m = (Map<?, ?>) doc;
        Object h = Json.get(m, "host");
        if (!(h instanceof String) || ((String) h).length() == 0) {
            throw new PlexException(PlexException.Kind.HOST_DISCOVERY, "host discovery answer has no \"host\"");
        }
        String[] hp = splitHostPort((String) h);
        String host = hp[0].length() == 0 ? defaultHost : hp[0];
        int port;
        try {
            port = Integer.parseInt(hp[1]);
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port <= 0 || port > 65535) {
            throw new PlexException(PlexException.Kind.HOST_DISCOVERY, "bad port in host " + h);
        }
        long hb = 0;
        Double hbs = number(Json.get(m, "heartbeat"));
        if (hbs != null && hbs > 0 && hbs < 1e6) {
            hb = Math.max(100, (long) (hbs * 1000));
        }
        Double base = null;
        Double factor = null;
        Double jitter = null;
        Double max = null;
        Object bo = Json.get(m, "backoff");
        if (bo instanceof Map) {
            Map<?, ?> b = (Map<?, ?>) bo;
            base = number(Json.get(b, "base"));
            factor = number(Json.get(b, "factor"));
            jitter = number(Json.get(b, "jitter"));
            max = number(Json.get(b, "max"));
        }
        return new Result(host, port, hb, base, factor, jitter, max);
    }

    private static Double number(Object o) {
        return o instanceof Number ? Double.valueOf(((Number) o).doubleValue()) : null;
    }

    /**
     * Splits {@code host:port}, {@code [v6]:port} or {@code :port}.
     *
     * @throws PlexException when there is no port
     */
    static String[] splitHostPort(String s) throws PlexException {
        if (s.startsWith("[")) {
            int close = s.indexOf(']');
            if (close < 0 || close + 1 >= s.length() || s.charAt(close + 1) != ':') {
                throw new PlexException(PlexException.Kind.HOST_DISCOVERY, "bad host " + s);
            }
            return new String[] {s.substring(1, close), s.substring(close + 2)};
        }
        int colon = s.lastIndexOf(':');
        if (colon < 0 || s.indexOf(':') != colon) {
            throw new PlexException(PlexException.Kind.HOST_DISCOVERY, "host " + s + " is not host:port");
        }
        return new String[] {s.substring(0, colon), s.substring(colon + 1)};
    }
}
