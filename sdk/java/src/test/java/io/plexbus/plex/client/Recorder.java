package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** Records a client's callbacks for assertions. */
final class Recorder implements PlexClient.Listener {
    static final class Ev {
        final String type;
        final Object a;
        final Object b;
        final String thread;
        final long at = System.nanoTime();

        Ev(String type, Object a, Object b) {
            this.type = type;
            this.a = a;
            this.b = b;
            this.thread = Thread.currentThread().getName();
        }

        Throwable cause() {
            return (Throwable) a;
        }

        boolean will() {
            return (Boolean) b;
        }

        @Override
        public String toString() {
            return type + "(" + a + ", " + b + ")@" + thread;
        }
    }

    private final BlockingQueue<Ev> queue = new LinkedBlockingQueue<>();
    final List<Ev> all = new CopyOnWriteArrayList<>();

    private void add(String type, Object a, Object b) {
        Ev e = new Ev(type, a, b);
        all.add(e);
        queue.add(e);
    }

    @Override
    public void onConnected(String uid) {
        add("connected", uid, null);
    }

    @Override
    public void onMessage(Message message) {
        add("message", message, null);
    }

    @Override
    public void onDisconnected(Throwable cause, boolean willReconnect) {
        add("disconnected", cause, willReconnect);
    }

    @Override
    public void onConnectionFailed(Exception error, boolean willRetry) {
        add("failed", error, willRetry);
    }

    @Override
    public void onAuthFailed(String reason, boolean willRetry) {
        add("authFailed", reason, willRetry);
    }

    /** Waits for the next event of this type, skipping others. */
    Ev await(String type, long ms) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ms);
        while (true) {
            long left = deadline - System.nanoTime();
            Ev e = left > 0 ? queue.poll(left, TimeUnit.NANOSECONDS) : null;
            if (e == null) {
                fail("no " + type + " event within " + ms + " ms; events: " + all);
            }
            if (e.type.equals(type)) {
                return e;
            }
        }
    }

    /** Asserts that no event of this type arrives within ms (consuming the queue). */
    void assertNone(String type, long ms) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ms);
        while (true) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return;
            }
            Ev e = queue.poll(left, TimeUnit.NANOSECONDS);
            if (e != null && e.type.equals(type)) {
                fail("unexpected " + e + "; events: " + all);
            }
        }
    }

    List<Ev> ofType(String type) {
        List<Ev> l = new ArrayList<>();
        for (Ev e : all) {
            if (e.type.equals(type)) {
                l.add(e);
            }
        }
        return l;
    }
}
