package io.plexbus.plex.client;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteOrder;

/**
 * Reads frames from a byte stream such as a socket's input stream.
 *
 * <p>Zero-length frames are skipped. A length above the maximum is reported
 * from the header alone, before anything is allocated. The reader keeps its
 * state when the underlying stream throws (for instance a
 * {@link java.net.SocketTimeoutException} from a read timeout), so the call can
 * simply be repeated. Not thread-safe: use it from one reader thread.
 */
public final class FrameReader {
    private static final int MIN_BUF = 4096;

    private final InputStream in;
    private final ByteOrder order;
    private final int maxFrameSize;
    private byte[] buf = new byte[MIN_BUF];
    private int start; // first unconsumed byte
    private int end; // end of buffered data

    /**
     * @param maxFrameSize the largest payload accepted; {@code <= 0} means
     *     {@link WireCodec#DEFAULT_MAX_FRAME_SIZE}
     */
    public FrameReader(InputStream in, ByteOrder order, int maxFrameSize) {
        if (in == null || order == null) {
            throw new NullPointerException();
        }
        this.in = in;
        this.order = order;
        this.maxFrameSize = maxFrameSize <= 0 ? WireCodec.DEFAULT_MAX_FRAME_SIZE : maxFrameSize;
    }

    /**
     * Returns the next non-empty payload, or null at a clean end of stream.
     *
     * @throws WireException {@code FRAME_TOO_LARGE} for an oversized length prefix,
     *     {@code TRUNCATED} when the stream ends inside a frame
     * @throws IOException from the stream
     */
    public byte[] readFrame() throws IOException {
        while (true) {
            int avail = end - start;
            int need;
            if (avail >= WireCodec.HEADER_SIZE) {
                long n = WireCodec.readLength(buf, start, order);
                if (n > maxFrameSize) {
                    throw new WireException(WireException.Kind.FRAME_TOO_LARGE,
                            "frame too large: " + n + " bytes > max " + maxFrameSize);
                }
                if (n == 0) {
                    start += WireCodec.HEADER_SIZE; // no-op frame
                    continue;
                }
                int total = WireCodec.HEADER_SIZE + (int) n;
                if (avail >= total) {
                    byte[] payload = new byte[(int) n];
                    System.arraycopy(buf, start + WireCodec.HEADER_SIZE, payload, 0, (int) n);
                    start += total;
                    return payload;
                }
                need = total;
            } else {
                need = WireCodec.HEADER_SIZE;
            }
            if (!fill(need)) {
                if (end > start) {
                    throw new WireException(WireException.Kind.TRUNCATED,
                            "stream ended inside a frame (" + (end - start) + " bytes buffered)");
                }
                return null;
            }
        }
    }

    /** Reads and decodes the next message; null at a clean end of stream. */
    public Message readMessage() throws IOException {
        byte[] p = readFrame();
        return p == null ? null : WireCodec.decodeJson(p);
    }

    /** Reads more bytes, with room for a frame of {@code need} bytes; false at EOF. */
    private boolean fill(int need) throws IOException {
        if (start == end) {
            start = 0;
            end = 0;
        }
        int want = Math.max(need, MIN_BUF);
        if (buf.length - start < want) {
            if (buf.length < want) {
                byte[] nb = new byte[want];
                System.arraycopy(buf, start, nb, 0, end - start);
                buf = nb;
            } else {
                System.arraycopy(buf, start, buf, 0, end - start);
            }
            end -= start;
            start = 0;
        }
        while (true) {
            int n = in.read(buf, end, buf.length - end);
            if (n < 0) {
                return false;
            }
            if (n > 0) {
                end += n;
                return true;
            }
        }
    }
}
