package io.plexbus.plex.client;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import javax.net.SocketFactory;

/**
 * A Plex push client: holds one TCP connection to an edge, authenticates,
 * heartbeats, reconnects with backoff, and hands pushed messages to listeners.
 *
 * <pre>{@code
 * PlexClient client = PlexClient.builder()
 *         .hostUrl("https://push.example.com/plex/v1/host")
 *         .authDataProvider(() -> session.token())
 *         .listener(new PlexClient.Listener() {
 *             public void onMessage(Message m) { handle(m.getUri(), m.getBody()); }
 *         })
 *         .build();
 * client.start();
 * ...
 * client.stop();
 * }</pre>
 *
 * <p>Threads: while started, a client owns one I/O thread ({@code plex-io-N}:
 * discovery, connect, auth, reading) and one scheduler thread
 * ({@code plex-scheduler-N}: heartbeats and writes), plus a callback thread
 * ({@code plex-callback-N}) unless a callback executor is given. All are daemon
 * threads and all end after {@link #stop()} (or when the reconnect strategy
 * gives up). No method blocks on the network, so every method may be called
 * from Android's main thread. All methods are thread-safe.
 *
 * <p>Callbacks run on the callback executor, in order. After {@link #stop()}
 * returns, no callback starts except the final
 * {@link Listener#onDisconnected onDisconnected(null, false)} when a connection
 * had been reported.
 */
public final class PlexClient {

    /** What the client is doing. */
    public enum State {
        /** Not started, stopped, or given up by the reconnect strategy. */
        STOPPED,
        /** Resolving, connecting or authenticating. */
        CONNECTING,
        /** Authenticated: pushes arrive. */
        CONNECTED,
        /** Waiting for the backoff delay before the next attempt. */
        WAITING
    }

    /**
     * Receives the client's events, on the callback executor. Every method has
     * an empty default; override what you need. A listener must not block for
     * long: with a serial executor it holds up the following events.
     */
    public interface Listener {
        /** The connection is authenticated. {@code uid} is null for servers that do not say. */
        default void onConnected(String uid) {
        }

        /** A pushed message (any uri but the protocol's own). */
        default void onMessage(Message message) {
        }

        /**
         * An authenticated connection ended. {@code cause} is null after
         * {@link #stop()}, else why (a {@link PlexException}, {@link WireException}
         * or I/O error).
         */
        default void onDisconnected(Throwable cause, boolean willReconnect) {
        }

        /** An attempt failed before authentication completed (discovery, connect, timeout, protocol error). */
        default void onConnectionFailed(Exception error, boolean willRetry) {
        }

        /** The edge answered {@code /auth/failed}; {@code reason} is its body. */
        default void onAuthFailed(String reason, boolean willRetry) {
        }
    }

    /**
     * Supplies auth data (a token, or whatever the server's verifier expects).
     * Called on the I/O thread before every connection attempt, so it may block
     * briefly (e.g. to refresh a token). Returning null or throwing fails the
     * attempt, which is retried with backoff as a connection failure.
     */
    public interface AuthDataProvider {
        String getAuthData() throws Exception;
    }

    /** Optional diagnostics sink (e.g. {@code android.util.Log.d}). Called from the client's threads. */
    public interface Logger {
        void log(String message, Throwable error);
    }

    static final String URI_AUTH = "/auth/server";
    static final String URI_AUTH_SUCCESS = "/auth/success";
    static final String URI_AUTH_FAILED = "/auth/failed";

    /**
     * The {@code /auth/failed} reasons the edge sends when it could not decide
     * a login; they say nothing about the credentials (wire/testdata/reasons.json).
     */
    static final String[] TEMPORARY_FAILURES = {
        "auth unavailable",
        "auth timed out",
        "auth timeout",
        "server busy, retry later",
        "server full",
        "too many logins from this address, retry later",
    };

    /** Whether an {@code /auth/failed} reason is worth retrying with the same auth data. */
    public static boolean isTemporaryFailure(String reason) {
        String r = reason == null ? "" : reason.trim();
        for (String t : TEMPORARY_FAILURES) {
            if (t.equals(r)) {
                return true;
            }
        }
        return false;
    }
    static final String URI_HEARTBEAT = "/heartbeat";
    static final String URI_RECONNECT = "/reconnect";

    static final long DEFAULT_HEARTBEAT_MILLIS = 60000;
    static final long BACKOFF_RESET_CAP_MILLIS = 30000;
    static final long MAX_INTERVAL_MILLIS = 86400000L;
    /** send() refuses more frames than this waiting to be written on one connection. */
    static final int MAX_PENDING_SENDS = 1024;
    /** Floor for heartbeat intervals announced by a server, against a misconfigured one. */
    static final long MIN_SERVER_HEARTBEAT_MILLIS = 100;
    private static final AtomicInteger IDS = new AtomicInteger();

    // Configuration (immutable).
    private final String hostUrl;
    private final String fixedHost;
    private final int fixedPort;
    private final AuthDataProvider auth;
    private final boolean authStatic;
    private final long heartbeatMillis;
    private final long backgroundHeartbeatMillis;
    private final int connectTimeoutMillis;
    private final Backoff backoff;
    private final ReconnectStrategy strategy;
    private final ByteOrder order;
    private final int maxFrameSize;
    private final Executor callbackExecutor;
    private final SocketFactory socketFactory;
    private final Logger logger;
    private final byte[] heartbeatFrame;
    private final int id = IDS.incrementAndGet();
    private final CopyOnWriteArrayList<Listener> listeners = new CopyOnWriteArrayList<Listener>();
    private final Random random = new Random();

    private final Object lock = new Object();
    private Runner runner; // guarded by lock
    private volatile boolean background;

    // Counters for tests and diagnostics.
    final AtomicLong heartbeatsSent = new AtomicLong();
    final AtomicLong heartbeatReplies = new AtomicLong();
    final AtomicLong attempts = new AtomicLong();

    private PlexClient(Builder b) {
        this.hostUrl = b.hostUrl;
        this.fixedHost = b.host;
        this.fixedPort = b.port;
        this.auth = b.authProvider;
        this.authStatic = b.authStatic;
        this.heartbeatMillis = b.heartbeatMillis;
        this.backgroundHeartbeatMillis = b.backgroundHeartbeatMillis;
        this.connectTimeoutMillis = b.connectTimeoutMillis;
        this.backoff = b.backoff;
        this.strategy = b.strategy;
        this.order = b.order;
        this.maxFrameSize = b.maxFrameSize;
        this.callbackExecutor = b.callbackExecutor;
        this.socketFactory = b.socketFactory != null ? b.socketFactory : SocketFactory.getDefault();
        this.logger = b.logger;
        this.listeners.addAll(b.listeners);
        this.heartbeatFrame = WireCodec.encodeFrame(new Message(0, URI_HEARTBEAT, ""), order);
        if (hostUrl != null) {
            new HostResolver(hostUrl, connectTimeoutMillis, connectTimeoutMillis); // validates the URL now
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    // ---- public API --------------------------------------------------------------

    /**
     * Starts connecting in the background. Does nothing when already started;
     * after {@link #stop()} (or after the reconnect strategy gave up) it starts
     * afresh.
     */
    public void start() {
        synchronized (lock) {
            if (runner != null && !runner.isFinished()) {
                return;
            }
            runner = new Runner();
            runner.begin();
        }
    }

    /**
     * Stops: closes the connection, cancels heartbeats and reconnects, and ends
     * the client's threads. Reports {@code onDisconnected(null, false)} if a
     * connection had been reported. Waits up to one second for the I/O thread,
     * which normally ends at once (use {@link #awaitTermination} to be sure all
     * threads are gone).
     */
    public void stop() {
        Runner r;
        synchronized (lock) {
            r = runner;
        }
        if (r == null) {
            return;
        }
        r.stop();
        if (Thread.currentThread() != r.io) {
            try {
                r.io.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Waits until the threads of the last start have ended; true if they have. */
    public boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
        Runner r;
        synchronized (lock) {
            r = runner;
        }
        if (r == null) {
            return true;
        }
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        if (Thread.currentThread() != r.io) {
            r.io.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
            if (r.io.isAlive()) {
                return false;
            }
        }
        if (!r.scheduler.awaitTermination(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
            return false;
        }
        return r.ownCallbacks == null
                || r.ownCallbacks.awaitTermination(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
    }

    /**
     * Sends application data to the edge ({@code {"uri":uri,"body":body}}).
     * Asynchronous: the frame is written by the scheduler thread.
     *
     * @return false when not connected (nothing is queued for later) or when
     *     {@value #MAX_PENDING_SENDS} frames are already waiting to be written
     * @throws IllegalArgumentException when uri is empty or the frame exceeds the maximum frame size
     */
    public boolean send(String uri, String body) {
        if (uri == null || uri.length() == 0) {
            throw new IllegalArgumentException("uri is empty");
        }
        byte[] frame = WireCodec.encodeFrame(new Message(0, uri, body), order);
        if (frame.length - WireCodec.HEADER_SIZE > maxFrameSize) {
            throw new IllegalArgumentException("message of " + (frame.length - WireCodec.HEADER_SIZE)
                    + " bytes exceeds the maximum frame size " + maxFrameSize);
        }
        Runner r = current();
        return r != null && r.send(frame);
    }

    /**
     * Call when the app goes to the background (e.g. from
     * {@code ProcessLifecycleOwner}'s {@code onStop}). Switches to the
     * background heartbeat interval if one is configured.
     */
    public void onAppBackgrounded() {
        background = true;
        Runner r = current();
        if (r != null) {
            r.applyInterval(false);
        }
    }

    /**
     * Call when the app comes to the foreground. Restores the normal heartbeat
     * interval, checks a live connection with an immediate heartbeat, and
     * reconnects at once if the client was waiting to reconnect.
     */
    public void onAppForegrounded() {
        background = false;
        Runner r = current();
        if (r != null) {
            r.applyInterval(true);
            r.wakeUp(false);
        }
    }

    /**
     * Call when the network becomes available (e.g. from
     * {@code ConnectivityManager.NetworkCallback.onAvailable}). If the client
     * is waiting to reconnect it reconnects at once with the backoff reset; if
     * connected it checks the connection with an immediate heartbeat (the old
     * socket may be bound to a network that is gone).
     */
    public void onNetworkAvailable() {
        Runner r = current();
        if (r != null) {
            r.probe();
            r.wakeUp(false);
        }
    }

    /**
     * If the client is waiting to reconnect, tries at once, also sending auth
     * data that was refused before (use after the user logged in again, say).
     */
    public void retryNow() {
        Runner r = current();
        if (r != null) {
            r.wakeUp(true);
        }
    }

    public void addListener(Listener l) {
        if (l == null) {
            throw new NullPointerException("listener");
        }
        listeners.add(l);
    }

    public void removeListener(Listener l) {
        listeners.remove(l);
    }

    public State getState() {
        Runner r = current();
        if (r == null || r.isFinished()) {
            return State.STOPPED;
        }
        return r.state;
    }

    public boolean isConnected() {
        return getState() == State.CONNECTED;
    }

    /** The uid from the last {@code /auth/success} of the current connection, or null. */
    public String getUid() {
        Runner r = current();
        Connection c = r == null ? null : r.conn;
        return c != null && c.authenticated ? c.uid : null;
    }

    /** The heartbeat interval in effect on the current connection, or 0 when not connected. */
    public long getHeartbeatIntervalMillis() {
        Runner r = current();
        Connection c = r == null ? null : r.conn;
        return c != null && c.authenticated ? c.interval : 0;
    }

    // ---- internals ------------------------------------------------------------------

    private Runner current() {
        synchronized (lock) {
            return runner;
        }
    }

    void log(String msg, Throwable t) {
        Logger l = logger;
        if (l != null) {
            try {
                l.log("plex-" + id + ": " + msg, t);
            } catch (RuntimeException e) {
                // a logger must not break the client
            }
        }
    }

    private static ThreadFactory daemonFactory(final String name) {
        return new ThreadFactory() {
            @Override
            public Thread newThread(Runnable r) {
                Thread t = new Thread(r, name);
                t.setDaemon(true);
                return t;
            }
        };
    }

    /** One connection; its fields are shared between the I/O and scheduler threads. */
    private static final class Connection {
        final Socket socket;
        OutputStream out; // set once before authenticated
        FrameReader reader; // I/O thread only
        final Object writeLock = new Object();
        final AtomicReference<IOException> failure = new AtomicReference<IOException>();
        volatile boolean authenticated;
        volatile boolean closed;
        volatile String uid;
        volatile long connectedAt;
        volatile long lastInbound;
        /** Current heartbeat interval (ms). */
        volatile long interval;
        /** Foreground heartbeat interval (ms). */
        volatile long foregroundInterval;
        /** Interval the dead-connection deadline is based on; max of recent intervals until a frame arrives. */
        volatile long timeoutBase;
        volatile boolean probing;
        volatile long probeDeadline;
        /** Frames handed to the scheduler by send() and not yet written. */
        final AtomicInteger pendingSends = new AtomicInteger();
        ScheduledFuture<?> heartbeatTask; // guarded by this

        Connection(Socket s) {
            this.socket = s;
        }

        void write(byte[] frame) throws IOException {
            synchronized (writeLock) {
                if (closed) {
                    throw new SocketException("connection closed");
                }
                out.write(frame);
                out.flush();
            }
        }

        void fail(IOException cause) {
            failure.compareAndSet(null, cause);
            close();
        }

        void close() {
            closed = true;
            try {
                socket.close();
            } catch (IOException e) {
                // nothing to do
            }
            synchronized (this) {
                if (heartbeatTask != null) {
                    heartbeatTask.cancel(false);
                }
            }
        }

        /** The nanoTime by which a frame must arrive. */
        long deadline() {
            long d = lastInbound + TimeUnit.MILLISECONDS.toNanos(2 * timeoutBase);
            if (probing && probeDeadline - d < 0) {
                d = probeDeadline;
            }
            return d;
        }

        PlexException timeout() {
            if (probing && System.nanoTime() - probeDeadline >= 0) {
                return new PlexException(PlexException.Kind.HEARTBEAT_TIMEOUT,
                        "no answer to a probe heartbeat; the connection is dead");
            }
            return new PlexException(PlexException.Kind.HEARTBEAT_TIMEOUT,
                    "no frame from the server for " + (2 * timeoutBase) + " ms (2 heartbeat intervals)");
        }
    }

    /** How one attempt ended. */
    private static final class Outcome {
        static final int FAILED = 0;
        static final int AUTH_FAILED = 1;
        static final int AUTH_UNCHANGED = 2;
        static final int RECONNECT = 3;
        static final int STOPPED = 4;

        final int kind;
        final Exception error;
        final String reason;
        final String authData;
        final boolean wasUp;
        final long upMillis;
        final long interval;

        Outcome(int kind, Exception error, String reason, String authData, boolean wasUp, long upMillis,
                long interval) {
            this.kind = kind;
            this.error = error;
            this.reason = reason;
            this.authData = authData;
            this.wasUp = wasUp;
            this.upMillis = upMillis;
            this.interval = interval;
        }

        static Outcome failed(Exception e) {
            return new Outcome(FAILED, e, null, null, false, 0, 0);
        }

        static Outcome simple(int kind) {
            return new Outcome(kind, null, null, null, false, 0, 0);
        }
    }

    private interface Event {
        void deliver(Listener l);
    }

    private static final int EV_OTHER = 0;
    private static final int EV_CONNECTED = 1;
    private static final int EV_DISCONNECTED = 2;

    /** One start..stop cycle: its threads and state. */
    private final class Runner implements Runnable {
        final Thread io;
        final ScheduledThreadPoolExecutor scheduler;
        final ExecutorService ownCallbacks;
        final Executor callbacks;
        final HostResolver resolver;

        // Lifecycle; guarded by this.
        private boolean stopping;
        private boolean ioDone;
        private int holds;
        private boolean callbacksShut;
        volatile boolean stopRequested;

        // Callback gate.
        private final Object gate = new Object();
        private boolean enabled = true;
        private boolean connectedShown;

        // Waiting between attempts.
        private final Object waitLock = new Object();
        private boolean waiting;
        private boolean wake;
        private boolean force;
        /** The network came back during an attempt: do not wait after it fails. */
        private boolean wakeAfterAttempt;

        volatile Connection conn;
        volatile State state = State.CONNECTING;

        // I/O thread only.
        private int attempt;
        private Backoff effectiveBackoff = backoff;
        private long discoveryHeartbeatMillis;
        private String lastFailedAuth;

        Runner() {
            io = new Thread(this, "plex-io-" + id);
            io.setDaemon(true);
            scheduler = new ScheduledThreadPoolExecutor(1, daemonFactory("plex-scheduler-" + id));
            scheduler.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
            if (callbackExecutor != null) {
                ownCallbacks = null;
                callbacks = callbackExecutor;
            } else {
                ownCallbacks = Executors.newSingleThreadExecutor(daemonFactory("plex-callback-" + id));
                callbacks = ownCallbacks;
            }
            resolver = hostUrl == null ? null
                    : new HostResolver(hostUrl, connectTimeoutMillis, connectTimeoutMillis);
        }

        void begin() {
            io.start();
        }

        synchronized boolean isFinished() {
            return stopping || ioDone;
        }

        // ---- the I/O thread -----------------------------------------------------

        @Override
        public void run() {
            try {
                while (!stopRequested) {
                    Outcome o = attemptOnce();
                    if (stopRequested || o.kind == Outcome.STOPPED) {
                        break;
                    }
                    long delay = decide(o);
                    if (delay < 0 || !pause(delay)) {
                        break;
                    }
                }
            } catch (RuntimeException e) {
                log("I/O thread failed", e);
                dispatch(EV_OTHER, failedEvent(new IOException("internal error: " + e, e), false));
            } finally {
                finish();
            }
        }

        private Outcome attemptOnce() {
            state = State.CONNECTING;
            attempts.incrementAndGet();
            boolean forced;
            synchronized (waitLock) {
                forced = force;
                force = false;
            }
            String data;
            try {
                data = auth.getAuthData();
            } catch (Exception e) {
                if (stopRequested) {
                    return Outcome.simple(Outcome.STOPPED);
                }
                return Outcome.failed(new PlexException(PlexException.Kind.AUTH_DATA_UNAVAILABLE,
                        "auth data provider failed: " + e, e, 0));
            }
            if (data == null) {
                return Outcome.failed(new PlexException(PlexException.Kind.AUTH_DATA_UNAVAILABLE,
                        "auth data provider returned null"));
            }
            if (lastFailedAuth != null && !forced && data.equals(lastFailedAuth)) {
                return Outcome.simple(Outcome.AUTH_UNCHANGED);
            }

            InetSocketAddress addr;
            try {
                addr = resolveAddress();
            } catch (IOException e) {
                return stopRequested ? Outcome.simple(Outcome.STOPPED) : Outcome.failed(e);
            }
            if (stopRequested) {
                return Outcome.simple(Outcome.STOPPED);
            }

            Socket s;
            try {
                s = socketFactory.createSocket();
            } catch (IOException e) {
                return Outcome.failed(e);
            }
            Connection c = new Connection(s);
            conn = c;
            if (stopRequested) { // stop() may have looked before conn was set
                c.close();
                return Outcome.simple(Outcome.STOPPED);
            }
            Message reply;
            try {
                s.connect(addr, connectTimeoutMillis);
                s.setTcpNoDelay(true);
                s.setKeepAlive(true);
                c.out = s.getOutputStream();
                c.reader = new FrameReader(s.getInputStream(), order, maxFrameSize);
                c.write(WireCodec.encodeFrame(new Message(0, URI_AUTH, data), order));
                long authDeadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(connectTimeoutMillis);
                while (true) {
                    long left = authDeadline - System.nanoTime();
                    if (left <= 0) {
                        throw new PlexException(PlexException.Kind.AUTH_TIMEOUT,
                                "no auth reply within " + connectTimeoutMillis + " ms");
                    }
                    s.setSoTimeout((int) Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
                    try {
                        reply = c.reader.readMessage();
                    } catch (SocketTimeoutException e) {
                        throw new PlexException(PlexException.Kind.AUTH_TIMEOUT,
                                "no auth reply within " + connectTimeoutMillis + " ms");
                    }
                    if (reply == null) {
                        throw new PlexException(PlexException.Kind.SERVER_CLOSED,
                                "server closed the connection before answering auth");
                    }
                    String uri = reply.getUri();
                    if (URI_AUTH_SUCCESS.equals(uri)) {
                        break;
                    }
                    if (URI_AUTH_FAILED.equals(uri)) {
                        c.close();
                        if (isTemporaryFailure(reply.getBody())) {
                            // The edge could not decide (auth service down, edge
                            // full or busy): retry with backoff, same auth data.
                            return Outcome.failed(new PlexException(PlexException.Kind.AUTH_UNAVAILABLE,
                                    "login not decided: " + reply.getBody()));
                        }
                        return new Outcome(Outcome.AUTH_FAILED, null, reply.getBody(), data, false, 0, 0);
                    }
                    if (URI_RECONNECT.equals(uri)) {
                        c.close();
                        return Outcome.simple(Outcome.RECONNECT);
                    }
                    // anything else before auth completes is ignored
                }
            } catch (IOException e) {
                IOException cause = c.failure.get() != null ? c.failure.get() : e;
                c.close();
                if (stopRequested) {
                    return Outcome.simple(Outcome.STOPPED);
                }
                return Outcome.failed(cause);
            }

            // Authenticated.
            String uid = null;
            long serverHeartbeat = 0;
            if (reply.getBody().length() > 0) {
                try {
                    Object doc = Json.parse(reply.getBody());
                    if (doc instanceof Map) {
                        Object u = Json.get((Map<?, ?>) doc, "uid");
                        if (u instanceof String) {
                            uid = (String) u;
                        } else if (u instanceof Long) {
                            uid = u.toString();
                        }
                        Object h = Json.get((Map<?, ?>) doc, "heartbeat");
                        if (h instanceof Number) {
                            double sec = ((Number) h).doubleValue();
                            if (sec > 0 && sec < 1e6) {
                                serverHeartbeat = Math.max(MIN_SERVER_HEARTBEAT_MILLIS, (long) (sec * 1000));
                            }
                        }
                    }
                } catch (Json.SyntaxError e) {
                    log("ignoring /auth/success body that is not JSON", e);
                }
            }
            long fg = heartbeatMillis > 0 ? heartbeatMillis
                    : serverHeartbeat > 0 ? serverHeartbeat
                    : discoveryHeartbeatMillis > 0 ? discoveryHeartbeatMillis : DEFAULT_HEARTBEAT_MILLIS;
            boolean bg = background;
            c.foregroundInterval = fg;
            c.interval = bg && backgroundHeartbeatMillis > 0 ? backgroundHeartbeatMillis : fg;
            c.timeoutBase = c.interval;
            c.uid = uid;
            long now = System.nanoTime();
            c.connectedAt = now;
            c.lastInbound = now;
            lastFailedAuth = null;
            c.authenticated = true;
            state = State.CONNECTED;
            synchronized (waitLock) {
                wakeAfterAttempt = false;
            }
            final String shownUid = uid;
            dispatch(EV_CONNECTED, new Event() {
                @Override
                public void deliver(Listener l) {
                    l.onConnected(shownUid);
                }
            });
            scheduleHeartbeats(c); // the first heartbeat goes after one interval
            if (background != bg) {
                applyInterval(!background); // the app changed state meanwhile
            }
            Outcome o = readLoop(c);
            c.close();
            return o;
        }

        private InetSocketAddress resolveAddress() throws IOException {
            if (resolver != null) {
                try {
                    HostResolver.Result r = resolver.resolve();
                    effectiveBackoff = r.backoffOver(backoff);
                    if (r.getHeartbeatMillis() > 0) {
                        discoveryHeartbeatMillis = r.getHeartbeatMillis();
                    }
                    return address(r.getHost(), r.getPort());
                } catch (IOException e) {
                    if (fixedHost == null || stopRequested) {
                        throw e;
                    }
                    log("host discovery failed, using the fixed server " + fixedHost + ":" + fixedPort, e);
                }
            }
            return address(fixedHost, fixedPort);
        }

        private InetSocketAddress address(String host, int port) throws UnknownHostException {
            InetSocketAddress a = new InetSocketAddress(host, port);
            if (a.isUnresolved()) {
                throw new UnknownHostException(host);
            }
            return a;
        }

        private Outcome readLoop(Connection c) {
            try {
                while (true) {
                    long now = System.nanoTime();
                    long left = c.deadline() - now;
                    if (left <= 0) {
                        throw c.timeout();
                    }
                    long ms = TimeUnit.NANOSECONDS.toMillis(left) + 1;
                    c.socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, ms));
                    Message m;
                    try {
                        m = c.reader.readMessage();
                    } catch (SocketTimeoutException e) {
                        continue; // the loop checks the deadline
                    }
                    if (m == null) {
                        throw new PlexException(PlexException.Kind.SERVER_CLOSED, "server closed the connection");
                    }
                    c.lastInbound = System.nanoTime();
                    c.timeoutBase = c.interval;
                    c.probing = false;
                    String uri = m.getUri();
                    if (URI_HEARTBEAT.equals(uri)) {
                        heartbeatReplies.incrementAndGet();
                    } else if (URI_RECONNECT.equals(uri)) {
                        return new Outcome(Outcome.RECONNECT, null, null, null, true, upMillis(c), c.interval);
                    } else if (uri.startsWith("/auth/")) {
                        log("ignoring " + uri + " on an authenticated connection", null);
                    } else {
                        final Message msg = m;
                        dispatch(EV_OTHER, new Event() {
                            @Override
                            public void deliver(Listener l) {
                                l.onMessage(msg);
                            }
                        });
                    }
                }
            } catch (IOException e) {
                IOException cause = c.failure.get() != null ? c.failure.get() : e;
                if (stopRequested) {
                    return Outcome.simple(Outcome.STOPPED);
                }
                return new Outcome(Outcome.FAILED, cause, null, null, true, upMillis(c), c.interval);
            }
        }

        private long upMillis(Connection c) {
            return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - c.connectedAt);
        }

        /** Reports an outcome; returns the delay before the next attempt, or -1 to give up. */
        private long decide(Outcome o) {
            if (o.wasUp && o.upMillis >= Math.min(o.interval, BACKOFF_RESET_CAP_MILLIS)) {
                attempt = 0; // the connection had been healthy
            }
            switch (o.kind) {
                case Outcome.AUTH_FAILED: {
                    lastFailedAuth = o.authData;
                    final boolean retry = strategy == ReconnectStrategy.ALWAYS && !authStatic;
                    final String reason = o.reason;
                    dispatch(EV_OTHER, new Event() {
                        @Override
                        public void deliver(Listener l) {
                            l.onAuthFailed(reason, retry);
                        }
                    });
                    return retry ? nextDelay() : -1;
                }
                case Outcome.AUTH_UNCHANGED:
                    log("auth data unchanged since /auth/failed; asking again after a backoff", null);
                    return nextDelay();
                case Outcome.RECONNECT: {
                    boolean retry = strategy != ReconnectStrategy.NEVER;
                    PlexException cause = new PlexException(PlexException.Kind.SERVER_RECONNECT,
                            "the server asked clients to reconnect");
                    report(o.wasUp, cause, retry);
                    if (!retry) {
                        return -1;
                    }
                    if (o.wasUp && attempt == 0) {
                        attempt = 1; // at once, but a second quick /reconnect backs off
                        return 0;
                    }
                    return nextDelay();
                }
                default: {
                    boolean retry = strategy != ReconnectStrategy.NEVER;
                    report(o.wasUp, o.error, retry);
                    return retry ? nextDelay() : -1;
                }
            }
        }

        private void report(boolean wasUp, final Exception cause, final boolean retry) {
            if (wasUp) {
                dispatch(EV_DISCONNECTED, new Event() {
                    @Override
                    public void deliver(Listener l) {
                        l.onDisconnected(cause, retry);
                    }
                });
            } else {
                dispatch(EV_OTHER, failedEvent(cause, retry));
            }
        }

        private Event failedEvent(final Exception cause, final boolean retry) {
            return new Event() {
                @Override
                public void deliver(Listener l) {
                    l.onConnectionFailed(cause, retry);
                }
            };
        }

        private long nextDelay() {
            long d = effectiveBackoff.delayMillis(attempt, random);
            if (attempt < 10000) {
                attempt++;
            }
            return d;
        }

        /** Waits before the next attempt; false when stopping. */
        private boolean pause(long delayMillis) {
            synchronized (waitLock) {
                if (wakeAfterAttempt) {
                    wakeAfterAttempt = false;
                    attempt = 0;
                    delayMillis = 0;
                }
            }
            if (delayMillis <= 0) {
                return !stopRequested;
            }
            state = State.WAITING;
            log("reconnecting in " + delayMillis + " ms", null);
            synchronized (waitLock) {
                waiting = true;
                try {
                    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(delayMillis);
                    while (!stopRequested && !wake) {
                        long left = deadline - System.nanoTime();
                        if (left <= 0) {
                            break;
                        }
                        waitLock.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
                    }
                    if (wake) {
                        wake = false;
                        attempt = 0;
                    }
                } catch (InterruptedException e) {
                    return false;
                } finally {
                    waiting = false;
                }
            }
            return !stopRequested;
        }

        private void finish() {
            state = State.STOPPED;
            Connection c = conn;
            if (c != null) {
                c.close();
            }
            scheduler.shutdownNow();
            synchronized (this) {
                ioDone = true;
                maybeShutCallbacksLocked();
            }
        }

        private void maybeShutCallbacksLocked() {
            if (ioDone && holds == 0 && !callbacksShut) {
                callbacksShut = true;
                if (ownCallbacks != null) {
                    ownCallbacks.shutdown(); // queued events still run
                }
            }
        }

        // ---- other threads ---------------------------------------------------------

        void stop() {
            synchronized (this) {
                if (stopping || ioDone) {
                    return;
                }
                stopping = true;
                holds++;
            }
            stopRequested = true;
            try {
                boolean show;
                synchronized (gate) {
                    enabled = false;
                    show = connectedShown;
                    connectedShown = false;
                }
                if (show) {
                    execute(new Runnable() {
                        @Override
                        public void run() {
                            deliver(new Event() {
                                @Override
                                public void deliver(Listener l) {
                                    l.onDisconnected(null, false);
                                }
                            });
                        }
                    });
                }
            } finally {
                synchronized (this) {
                    holds--;
                    maybeShutCallbacksLocked();
                }
            }
            Connection c = conn;
            if (c != null) {
                c.close();
            }
            if (resolver != null) {
                resolver.abort();
            }
            scheduler.shutdownNow();
            synchronized (waitLock) {
                waitLock.notifyAll();
            }
            if (Thread.currentThread() != io) {
                io.interrupt(); // for an auth data provider that blocks
            }
        }

        boolean send(final byte[] frame) {
            final Connection c = conn;
            if (stopRequested || c == null || !c.authenticated || c.closed) {
                return false;
            }
            if (c.pendingSends.incrementAndGet() > MAX_PENDING_SENDS) {
                c.pendingSends.decrementAndGet();
                log("send queue full (" + MAX_PENDING_SENDS + " frames): the connection is not draining", null);
                return false;
            }
            try {
                scheduler.execute(new Runnable() {
                    @Override
                    public void run() {
                        try {
                            c.write(frame);
                        } catch (IOException e) {
                            c.fail(e);
                        } finally {
                            c.pendingSends.decrementAndGet();
                        }
                    }
                });
                return true;
            } catch (RejectedExecutionException e) {
                c.pendingSends.decrementAndGet();
                return false;
            }
        }

        private void scheduleHeartbeats(final Connection c) {
            synchronized (c) {
                if (c.closed) {
                    return;
                }
                if (c.heartbeatTask != null) {
                    c.heartbeatTask.cancel(false);
                }
                long i = c.interval;
                try {
                    c.heartbeatTask = scheduler.scheduleWithFixedDelay(new Runnable() {
                        @Override
                        public void run() {
                            heartbeat(c);
                        }
                    }, i, i, TimeUnit.MILLISECONDS);
                } catch (RejectedExecutionException e) {
                    // stopping
                }
            }
        }

        private void heartbeat(Connection c) {
            if (c.closed) {
                return;
            }
            if (System.nanoTime() - c.deadline() >= 0) {
                c.fail(c.timeout());
                return;
            }
            try {
                c.write(heartbeatFrame);
                heartbeatsSent.incrementAndGet();
            } catch (IOException e) {
                c.fail(e);
            }
        }

        /** Re-evaluates the heartbeat interval after a background/foreground change. */
        void applyInterval(boolean foreground) {
            Connection c = conn;
            if (c == null || !c.authenticated || c.closed) {
                return;
            }
            long want = !foreground && backgroundHeartbeatMillis > 0 ? backgroundHeartbeatMillis
                    : c.foregroundInterval;
            if (want != c.interval) {
                synchronized (c) {
                    c.timeoutBase = Math.max(c.timeoutBase, want);
                    c.interval = want;
                }
                scheduleHeartbeats(c);
            }
            if (foreground) {
                probe();
            }
        }

        /** Sends a heartbeat now and expects a frame back within the connect timeout. */
        void probe() {
            final Connection c = conn;
            if (stopRequested || c == null || !c.authenticated || c.closed) {
                return;
            }
            c.probeDeadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(connectTimeoutMillis);
            c.probing = true;
            try {
                scheduler.execute(new Runnable() {
                    @Override
                    public void run() {
                        heartbeat(c);
                    }
                });
                scheduler.schedule(new Runnable() {
                    @Override
                    public void run() {
                        if (!c.closed && System.nanoTime() - c.deadline() >= 0) {
                            c.fail(c.timeout());
                        }
                    }
                }, connectTimeoutMillis + 1, TimeUnit.MILLISECONDS);
            } catch (RejectedExecutionException e) {
                // stopping
            }
        }

        void wakeUp(boolean forceAuth) {
            synchronized (waitLock) {
                if (forceAuth) {
                    force = true;
                }
                if (waiting) {
                    wake = true;
                    waitLock.notifyAll();
                } else if (state == State.CONNECTING) {
                    wakeAfterAttempt = true;
                }
            }
        }

        // ---- callbacks -----------------------------------------------------------------

        private void dispatch(final int type, final Event ev) {
            execute(new Runnable() {
                @Override
                public void run() {
                    synchronized (gate) {
                        if (!enabled) {
                            return;
                        }
                        if (type == EV_CONNECTED) {
                            connectedShown = true;
                        } else if (type == EV_DISCONNECTED) {
                            connectedShown = false;
                        }
                    }
                    deliver(ev);
                }
            });
        }

        private void execute(Runnable task) {
            try {
                callbacks.execute(task);
            } catch (RejectedExecutionException e) {
                log("callback executor rejected an event", e);
            }
        }

        private void deliver(Event ev) {
            for (Listener l : listeners) {
                try {
                    ev.deliver(l);
                } catch (RuntimeException e) {
                    log("listener threw", e);
                }
            }
        }
    }

    /** Configures a {@link PlexClient}. */
    public static final class Builder {
        private String hostUrl;
        private String host;
        private int port;
        private AuthDataProvider authProvider;
        private boolean authStatic;
        private long heartbeatMillis;
        private long backgroundHeartbeatMillis;
        private int connectTimeoutMillis = 10000;
        private Backoff backoff = Backoff.DEFAULT;
        private ReconnectStrategy strategy = ReconnectStrategy.ALWAYS;
        private ByteOrder order = ByteOrder.BIG_ENDIAN;
        private int maxFrameSize = WireCodec.DEFAULT_MAX_FRAME_SIZE;
        private Executor callbackExecutor;
        private SocketFactory socketFactory;
        private Logger logger;
        private final java.util.List<Listener> listeners = new java.util.ArrayList<Listener>();

        Builder() {
        }

        /**
         * Host discovery URL, e.g. {@code https://push.example.com/plex/v1/host};
         * asked before every connection attempt. Its heartbeat and backoff
         * parameters, when present, override the configured defaults.
         */
        public Builder hostUrl(String url) {
            this.hostUrl = url;
            return this;
        }

        /**
         * A fixed edge address. With {@link #hostUrl} as well, it is the
         * fallback when discovery fails.
         */
        public Builder server(String host, int port) {
            if (host == null || host.length() == 0 || port <= 0 || port > 65535) {
                throw new IllegalArgumentException("bad server " + host + ":" + port);
            }
            this.host = host;
            this.port = port;
            return this;
        }

        /** Static auth data, sent in {@code /auth/server} on every connect. */
        public Builder authData(final String data) {
            if (data == null) {
                throw new NullPointerException("auth data");
            }
            this.authProvider = new AuthDataProvider() {
                @Override
                public String getAuthData() {
                    return data;
                }
            };
            this.authStatic = true;
            return this;
        }

        /** Auth data asked for before every connection attempt (e.g. a fresh token). */
        public Builder authDataProvider(AuthDataProvider provider) {
            if (provider == null) {
                throw new NullPointerException("auth data provider");
            }
            this.authProvider = provider;
            this.authStatic = false;
            return this;
        }

        /**
         * Heartbeat interval. When not set, the server's (from
         * {@code /auth/success}, else host discovery) is used, else 60 s. Keep it
         * below half the edge's HeartbeatTimeout (120 s by default).
         */
        public Builder heartbeatInterval(long duration, TimeUnit unit) {
            this.heartbeatMillis = positiveMillis(duration, unit, "heartbeat interval");
            return this;
        }

        /**
         * Heartbeat interval while the app is in the background (see
         * {@link PlexClient#onAppBackgrounded()}); unset = same as foreground.
         * Must stay below the edge's HeartbeatTimeout or the edge will close
         * the connection.
         */
        public Builder backgroundHeartbeatInterval(long duration, TimeUnit unit) {
            this.backgroundHeartbeatMillis = positiveMillis(duration, unit, "background heartbeat interval");
            return this;
        }

        /** TCP connect, auth reply and host discovery timeout; default 10 s. */
        public Builder connectTimeout(long duration, TimeUnit unit) {
            long ms = positiveMillis(duration, unit, "connect timeout");
            this.connectTimeoutMillis = (int) Math.min(Integer.MAX_VALUE, ms);
            return this;
        }

        /**
         * Reconnect backoff; default {@link Backoff#DEFAULT}. Parameters sent by
         * host discovery override it.
         */
        public Builder backoff(Backoff backoff) {
            if (backoff == null) {
                throw new NullPointerException("backoff");
            }
            this.backoff = backoff;
            return this;
        }

        /** Default {@link ReconnectStrategy#ALWAYS}. */
        public Builder reconnectStrategy(ReconnectStrategy strategy) {
            if (strategy == null) {
                throw new NullPointerException("strategy");
            }
            this.strategy = strategy;
            return this;
        }

        /** Byte order of the length prefix; must match the edge's. Default big-endian. */
        public Builder byteOrder(ByteOrder order) {
            if (order == null) {
                throw new NullPointerException("order");
            }
            this.order = order;
            return this;
        }

        /** Largest payload accepted or sent; default 65536. Must match the edge's. */
        public Builder maxFrameSize(int bytes) {
            if (bytes < 64) {
                throw new IllegalArgumentException("max frame size " + bytes + " is too small");
            }
            this.maxFrameSize = bytes;
            return this;
        }

        /**
         * Where listeners run; on Android pass the main thread's executor (e.g.
         * {@code ContextCompat.getMainExecutor(context)} or
         * {@code new Handler(Looper.getMainLooper())::post}). It should run tasks
         * in order. Default: a dedicated daemon thread per client.
         */
        public Builder callbackExecutor(Executor executor) {
            this.callbackExecutor = executor;
            return this;
        }

        /** Adds a listener (more can be added with {@link PlexClient#addListener}). */
        public Builder listener(Listener listener) {
            if (listener == null) {
                throw new NullPointerException("listener");
            }
            listeners.add(listener);
            return this;
        }

        /**
         * Socket factory for edge connections: an {@code SSLSocketFactory} for an
         * edge with TLS, or Android's {@code Network.getSocketFactory()} to bind a
         * network. It must support unconnected sockets ({@code createSocket()}).
         */
        public Builder socketFactory(SocketFactory factory) {
            this.socketFactory = factory;
            return this;
        }

        public Builder logger(Logger logger) {
            this.logger = logger;
            return this;
        }

        public PlexClient build() {
            if (hostUrl == null && host == null) {
                throw new IllegalStateException("set hostUrl(...) or server(host, port)");
            }
            if (authProvider == null) {
                throw new IllegalStateException("set authData(...) or authDataProvider(...)");
            }
            return new PlexClient(this);
        }

        private static long positiveMillis(long d, TimeUnit unit, String what) {
            long ms = unit.toMillis(d);
            if (ms <= 0 || ms > MAX_INTERVAL_MILLIS) {
                throw new IllegalArgumentException(what + " must be between 1 ms and 1 day");
            }
            return ms;
        }
    }
}
