package io.plexbus.plex.client;

import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The Plex frame codec: a 4-byte unsigned length prefix (big-endian unless both
 * sides agree on little-endian), then a UTF-8 JSON object
 * {@code {"seq": int64, "uri": string, "body": string}}.
 *
 * <p>Encoding is byte-identical to the Go codec in {@code wire/}: fields are
 * omitted when empty or zero, in the order seq, uri, body; only {@code "},
 * {@code \}, control characters (as {@code \n \r \t} or {@code \}{@code u00XX}) and
 * U+2028/U+2029 are escaped; an unpaired surrogate in a Java string is written
 * as {@code \}{@code ufffd}.
 *
 * <p>Decoding accepts what Go's {@code encoding/json} accepts into the message
 * struct, except that the payload must be an object: keys match
 * case-insensitively, later duplicates win, {@code null} leaves a field empty,
 * unknown fields are skipped (nesting limited to 10000), invalid UTF-8 becomes
 * U+FFFD, trailing data is an error.
 */
public final class WireCodec {
    /** Size of the length prefix. */
    public static final int HEADER_SIZE = 4;
    /** Largest payload accepted unless configured otherwise (64 KiB). */
    public static final int DEFAULT_MAX_FRAME_SIZE = 64 * 1024;

    private static final byte[] HEX = "0123456789abcdef".getBytes(Json.UTF8);

    private WireCodec() {
    }

    // ---- encoding ------------------------------------------------------------

    /** Encodes a complete frame: length prefix and JSON payload. */
    public static byte[] encodeFrame(Message m, ByteOrder order) {
        Buf buf = new Buf(HEADER_SIZE + 16 + m.getUri().length() + m.getBody().length() * 3 / 2);
        buf.len = HEADER_SIZE;
        appendJson(buf, m);
        writeLength(buf.b, 0, buf.len - HEADER_SIZE, order);
        return buf.toByteArray();
    }

    /** Encodes the JSON payload only (no length prefix). */
    public static byte[] encodeJson(Message m) {
        Buf buf = new Buf(16 + m.getUri().length() + m.getBody().length() * 3 / 2);
        appendJson(buf, m);
        return buf.toByteArray();
    }

    private static void appendJson(Buf dst, Message m) {
        dst.put('{');
        boolean sep = false;
        if (m.getSeq() != 0) {
            dst.putAscii("\"seq\":");
            dst.putAscii(Long.toString(m.getSeq()));
            sep = true;
        }
        if (m.getUri().length() != 0) {
            if (sep) {
                dst.put(',');
            }
            dst.putAscii("\"uri\":");
            appendString(dst, m.getUri());
            sep = true;
        }
        if (m.getBody().length() != 0) {
            if (sep) {
                dst.put(',');
            }
            dst.putAscii("\"body\":");
            appendString(dst, m.getBody());
        }
        dst.put('}');
    }

    private static void appendString(Buf dst, String s) {
        dst.put('"');
        int n = s.length();
        for (int k = 0; k < n; k++) {
            char c = s.charAt(k);
            if (c < 0x80) {
                if (c >= 0x20 && c != '"' && c != '\\') {
                    dst.put(c);
                    continue;
                }
                switch (c) {
                    case '"':
                    case '\\':
                        dst.put('\\');
                        dst.put(c);
                        break;
                    case '\n':
                        dst.put('\\');
                        dst.put('n');
                        break;
                    case '\r':
                        dst.put('\\');
                        dst.put('r');
                        break;
                    case '\t':
                        dst.put('\\');
                        dst.put('t');
                        break;
                    default:
                        dst.putAscii("\\u00");
                        dst.put(HEX[c >> 4]);
                        dst.put(HEX[c & 0xf]);
                }
            } else if (c < 0x800) {
                dst.put(0xC0 | (c >> 6));
                dst.put(0x80 | (c & 0x3F));
            } else if (c >= 0xD800 && c <= 0xDFFF) {
                if (c <= 0xDBFF && k + 1 < n) {
                    char d = s.charAt(k + 1);
                    if (d >= 0xDC00 && d <= 0xDFFF) {
                        int cp = Character.toCodePoint(c, d);
                        dst.put(0xF0 | (cp >> 18));
                        dst.put(0x80 | ((cp >> 12) & 0x3F));
                        dst.put(0x80 | ((cp >> 6) & 0x3F));
                        dst.put(0x80 | (cp & 0x3F));
                        k++;
                        continue;
                    }
                }
                dst.putAscii("\\ufffd"); // unpaired surrogate
            } else if (c == 0x2028 || c == 0x2029) {
                dst.putAscii(c == 0x2028 ? "\\u2028" : "\\u2029");
            } else {
                dst.put(0xE0 | (c >> 12));
                dst.put(0x80 | ((c >> 6) & 0x3F));
                dst.put(0x80 | (c & 0x3F));
            }
        }
        dst.put('"');
    }

    /** Reads a 4-byte length prefix as an unsigned value. */
    public static long readLength(byte[] b, int off, ByteOrder order) {
        long b0 = b[off] & 0xffL;
        long b1 = b[off + 1] & 0xffL;
        long b2 = b[off + 2] & 0xffL;
        long b3 = b[off + 3] & 0xffL;
        if (order == ByteOrder.LITTLE_ENDIAN) {
            return b0 | (b1 << 8) | (b2 << 16) | (b3 << 24);
        }
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3;
    }

    /** Writes a 4-byte length prefix. */
    public static void writeLength(byte[] b, int off, long n, ByteOrder order) {
        if (order == ByteOrder.LITTLE_ENDIAN) {
            b[off] = (byte) n;
            b[off + 1] = (byte) (n >>> 8);
            b[off + 2] = (byte) (n >>> 16);
            b[off + 3] = (byte) (n >>> 24);
        } else {
            b[off] = (byte) (n >>> 24);
            b[off + 1] = (byte) (n >>> 16);
            b[off + 2] = (byte) (n >>> 8);
            b[off + 3] = (byte) n;
        }
    }

    // ---- decoding ------------------------------------------------------------

    /** Decodes a payload (without its length prefix). */
    public static Message decodeJson(byte[] payload) throws WireException {
        return decodeJson(payload, 0, payload.length);
    }

    /** Decodes {@code len} payload bytes at {@code off}. */
    public static Message decodeJson(byte[] payload, int off, int len) throws WireException {
        Json d = new Json(payload, off, len);
        try {
            return object(d);
        } catch (Json.SyntaxError e) {
            throw new WireException(WireException.Kind.BAD_PAYLOAD, "bad payload: " + e.getMessage());
        }
    }

    private static final int OTHER = 0;
    private static final int SEQ = 1;
    private static final int URI = 2;
    private static final int BODY = 3;

    private static Message object(Json d) throws Json.SyntaxError {
        long seq = 0;
        String uri = null;
        String body = null;
        d.ws();
        if (d.i >= d.end || d.b[d.i] != '{') {
            throw d.fail("payload is not a JSON object");
        }
        d.i++;
        d.ws();
        if (d.i < d.end && d.b[d.i] == '}') {
            d.i++;
            end(d);
            return new Message(0, "", "");
        }
        while (true) {
            d.ws();
            if (d.i >= d.end || d.b[d.i] != '"') {
                throw d.fail("expected string key");
            }
            int field = classify(d.string());
            d.ws();
            if (d.i >= d.end || d.b[d.i] != ':') {
                throw d.fail("expected ':' after object key");
            }
            d.i++;
            d.ws();
            switch (field) {
                case SEQ:
                    if (d.i < d.end && d.b[d.i] == 'n') {
                        d.literal("null");
                    } else {
                        seq = seq(d);
                    }
                    break;
                case URI: {
                    String s = stringOrNull(d);
                    if (s != null) {
                        uri = s;
                    }
                    break;
                }
                case BODY: {
                    String s = stringOrNull(d);
                    if (s != null) {
                        body = s;
                    }
                    break;
                }
                default:
                    d.skipValue();
            }
            d.ws();
            if (d.i >= d.end) {
                throw d.fail("unexpected end of object");
            }
            byte c = d.b[d.i];
            if (c == ',') {
                d.i++;
            } else if (c == '}') {
                d.i++;
                end(d);
                return new Message(seq, uri, body);
            } else {
                throw d.fail("expected ',' or '}' in object");
            }
        }
    }

    private static void end(Json d) throws Json.SyntaxError {
        d.ws();
        if (d.i != d.end) {
            throw d.fail("data after the JSON object");
        }
    }

    private static String stringOrNull(Json d) throws Json.SyntaxError {
        if (d.i < d.end && d.b[d.i] == 'n') {
            d.literal("null");
            return null;
        }
        if (d.i >= d.end || d.b[d.i] != '"') {
            throw d.fail("expected a string");
        }
        return d.string();
    }

    private static long seq(Json d) throws Json.SyntaxError {
        int s = d.i;
        boolean isInt = d.number();
        if (!isInt) {
            d.i = s;
            throw d.fail("seq is not an integer");
        }
        try {
            return Long.parseLong(new String(d.b, s, d.i - s, Json.UTF8));
        } catch (NumberFormatException e) {
            d.i = s;
            throw d.fail("seq out of int64 range");
        }
    }

    /**
     * Matches a key as encoding/json does: exactly, or under simple Unicode
     * folding (upper(lower(c)) per code point), so "URI", "Seq" and "\u017feq" match.
     */
    private static int classify(String k) {
        if (foldEq(k, "SEQ")) {
            return SEQ;
        }
        if (foldEq(k, "URI")) {
            return URI;
        }
        if (foldEq(k, "BODY")) {
            return BODY;
        }
        return OTHER;
    }

    private static boolean foldEq(String k, String upper) {
        int j = 0;
        for (int p = 0; p < k.length(); ) {
            if (j >= upper.length()) {
                return false;
            }
            int cp = k.codePointAt(p);
            p += Character.charCount(cp);
            int f;
            if (cp < 0x80) {
                f = cp >= 'a' && cp <= 'z' ? cp - ('a' - 'A') : cp;
            } else {
                f = Character.toUpperCase(Character.toLowerCase(cp));
            }
            if (f != upper.charAt(j)) {
                return false;
            }
            j++;
        }
        return j == upper.length();
    }

    /** A minimal growable byte buffer (ByteArrayOutputStream is synchronized). */
    private static final class Buf {
        byte[] b;
        int len;

        Buf(int cap) {
            b = new byte[Math.max(cap, 16)];
        }

        void put(int c) {
            if (len == b.length) {
                b = Arrays.copyOf(b, b.length * 2);
            }
            b[len++] = (byte) c;
        }

        void putAscii(String s) {
            for (int k = 0; k < s.length(); k++) {
                put(s.charAt(k));
            }
        }

        byte[] toByteArray() {
            return Arrays.copyOf(b, len);
        }
    }
}
