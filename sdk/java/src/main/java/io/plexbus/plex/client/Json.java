package io.plexbus.plex.client;

import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict JSON scanner over UTF-8 bytes, shared by the wire codec and the small
 * generic parser used for host discovery and {@code /auth/success} bodies.
 *
 * <p>It follows Go's {@code encoding/json}, which the Plex edge uses: RFC 8259
 * syntax, whitespace limited to space, tab, CR and LF, invalid UTF-8 bytes and
 * unpaired surrogate escapes decoded as U+FFFD (one per bad byte, as Go does),
 * no trailing data. Not part of the public API.
 */
final class Json {
    static final Charset UTF8 = Charset.forName("UTF-8");

    /** Maximum nesting of skipped values, as in the Go codec and encoding/json. */
    static final int MAX_DEPTH = 10000;

    /** Maximum nesting for {@link #parse}: config documents are shallow. */
    static final int MAX_PARSE_DEPTH = 512;

    final byte[] b;
    final int start;
    final int end;
    int i;

    Json(byte[] b, int off, int len) {
        this.b = b;
        this.start = off;
        this.end = off + len;
        this.i = off;
    }

    /** Thrown for any syntax or type error; the wire codec wraps it. */
    static final class SyntaxError extends Exception {
        private static final long serialVersionUID = 1L;
        final int offset;

        SyntaxError(String msg, int offset) {
            super(msg + " at offset " + offset);
            this.offset = offset;
        }
    }

    SyntaxError fail(String msg) {
        return new SyntaxError(msg, i - start);
    }

    // ---- generic parsing ---------------------------------------------------

    /**
     * Parses a whole JSON document. Objects become {@code LinkedHashMap<String,Object>}
     * (later duplicates win), arrays {@code ArrayList<Object>}, strings {@code String},
     * integers that fit {@code Long}, other numbers {@code Double}, booleans
     * {@code Boolean}, null {@code null}.
     */
    static Object parse(byte[] doc) throws SyntaxError {
        Json j = new Json(doc, 0, doc.length);
        j.ws();
        Object v = j.value(0);
        j.ws();
        if (j.i != j.end) {
            throw j.fail("data after the JSON value");
        }
        return v;
    }

    static Object parse(String doc) throws SyntaxError {
        return parse(doc.getBytes(UTF8));
    }

    private Object value(int depth) throws SyntaxError {
        if (i >= end) {
            throw fail("unexpected end of input");
        }
        byte c = b[i];
        switch (c) {
            case '{': {
                if (depth >= MAX_PARSE_DEPTH) {
                    throw fail("nesting too deep");
                }
                i++;
                Map<String, Object> m = new LinkedHashMap<String, Object>();
                ws();
                if (i < end && b[i] == '}') {
                    i++;
                    return m;
                }
                while (true) {
                    ws();
                    if (i >= end || b[i] != '"') {
                        throw fail("expected string key");
                    }
                    String k = string();
                    ws();
                    if (i >= end || b[i] != ':') {
                        throw fail("expected ':' after object key");
                    }
                    i++;
                    ws();
                    m.put(k, value(depth + 1));
                    ws();
                    if (i >= end) {
                        throw fail("unexpected end of object");
                    }
                    if (b[i] == ',') {
                        i++;
                    } else if (b[i] == '}') {
                        i++;
                        return m;
                    } else {
                        throw fail("expected ',' or '}' in object");
                    }
                }
            }
            case '[': {
                if (depth >= MAX_PARSE_DEPTH) {
                    throw fail("nesting too deep");
                }
                i++;
                List<Object> l = new ArrayList<Object>();
                ws();
                if (i < end && b[i] == ']') {
                    i++;
                    return l;
                }
                while (true) {
                    ws();
                    l.add(value(depth + 1));
                    ws();
                    if (i >= end) {
                        throw fail("unexpected end of array");
                    }
                    if (b[i] == ',') {
                        i++;
                    } else if (b[i] == ']') {
                        i++;
                        return l;
                    } else {
                        throw fail("expected ',' or ']' in array");
                    }
                }
            }
            case '"':
                return string();
            case 't':
                literal("true");
                return Boolean.TRUE;
            case 'f':
                literal("false");
                return Boolean.FALSE;
            case 'n':
                literal("null");
                return null;
            default:
                if (c == '-' || isDigit(c)) {
                    int s = i;
                    boolean isInt = number();
                    String text = new String(b, s, i - s, UTF8);
                    if (isInt) {
                        try {
                            return Long.valueOf(Long.parseLong(text));
                        } catch (NumberFormatException e) {
                            // too large for a long: fall through to double
                        }
                    }
                    return Double.valueOf(Double.parseDouble(text));
                }
                throw fail("invalid value");
        }
    }

    // ---- scanning primitives (shared with WireCodec) -----------------------

    void ws() {
        while (i < end) {
            byte c = b[i];
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                i++;
            } else {
                return;
            }
        }
    }

    void literal(String lit) throws SyntaxError {
        int n = lit.length();
        if (end - i < n) {
            throw fail("invalid literal");
        }
        for (int k = 0; k < n; k++) {
            if (b[i + k] != lit.charAt(k)) {
                throw fail("invalid literal");
            }
        }
        i += n;
    }

    /** Scans a JSON number and reports whether it is a plain integer. */
    boolean number() throws SyntaxError {
        boolean isInt = true;
        if (i < end && b[i] == '-') {
            i++;
        }
        if (i < end && b[i] == '0') {
            i++;
        } else if (i < end && b[i] >= '1' && b[i] <= '9') {
            while (i < end && isDigit(b[i])) {
                i++;
            }
        } else {
            throw fail("invalid number");
        }
        if (i < end && b[i] == '.') {
            isInt = false;
            i++;
            if (i >= end || !isDigit(b[i])) {
                throw fail("invalid number");
            }
            while (i < end && isDigit(b[i])) {
                i++;
            }
        }
        if (i < end && (b[i] == 'e' || b[i] == 'E')) {
            isInt = false;
            i++;
            if (i < end && (b[i] == '+' || b[i] == '-')) {
                i++;
            }
            if (i >= end || !isDigit(b[i])) {
                throw fail("invalid number");
            }
            while (i < end && isDigit(b[i])) {
                i++;
            }
        }
        return isInt;
    }

    /**
     * Validates the string starting at the opening quote at {@code i} and leaves
     * {@code i} after the closing quote. Returns the index of the closing quote;
     * contents are {@code [openQuote+1, closeQuote)}.
     */
    int scanString() throws SyntaxError {
        i++; // opening quote
        while (i < end) {
            int c = b[i] & 0xff;
            if (c == '"') {
                int close = i;
                i++;
                return close;
            } else if (c == '\\') {
                if (i + 1 >= end) {
                    throw fail("unterminated string");
                }
                switch (b[i + 1]) {
                    case '"':
                    case '\\':
                    case '/':
                    case 'b':
                    case 'f':
                    case 'n':
                    case 'r':
                    case 't':
                        i += 2;
                        break;
                    case 'u':
                        if (i + 6 > end || !isHex4(b, i + 2)) {
                            throw fail("invalid \\u escape");
                        }
                        i += 6;
                        break;
                    default:
                        throw fail("invalid escape in string");
                }
            } else if (c < 0x20) {
                throw fail("control character in string");
            } else {
                i++;
            }
        }
        throw fail("unterminated string");
    }

    /** Reads a string at {@code i} (which must be a quote) and decodes it. */
    String string() throws SyntaxError {
        int open = i;
        int close = scanString();
        return unquote(b, open + 1, close);
    }

    /** Validates and skips any JSON value without recursion. */
    void skipValue() throws SyntaxError {
        byte[] stack = new byte[16];
        int depth = 0;
        while (true) {
            // Expect a value.
            ws();
            if (i >= end) {
                throw fail("unexpected end of value");
            }
            byte c = b[i];
            if (c == '{' || c == '[') {
                if (depth >= MAX_DEPTH) {
                    throw fail("nesting too deep");
                }
                i++;
                ws();
                byte closer = c == '{' ? (byte) '}' : (byte) ']';
                if (i < end && b[i] == closer) {
                    i++; // empty container: a complete value
                } else {
                    if (depth == stack.length) {
                        byte[] grown = new byte[stack.length * 2];
                        System.arraycopy(stack, 0, grown, 0, depth);
                        stack = grown;
                    }
                    stack[depth++] = c;
                    if (c == '{') {
                        skipKeyColon();
                    }
                    continue;
                }
            } else if (c == '"') {
                scanString();
            } else if (c == '-' || isDigit(c)) {
                number();
            } else if (c == 't') {
                literal("true");
            } else if (c == 'f') {
                literal("false");
            } else if (c == 'n') {
                literal("null");
            } else {
                throw fail("invalid value");
            }
            // A value is complete: close containers or move to the next element.
            boolean next = false;
            while (!next) {
                if (depth == 0) {
                    return;
                }
                ws();
                if (i >= end) {
                    throw fail("unexpected end of value");
                }
                byte top = stack[depth - 1];
                byte d = b[i];
                if (d == ',') {
                    i++;
                    if (top == '{') {
                        ws();
                        skipKeyColon();
                    }
                    next = true;
                } else if ((top == '{' && d == '}') || (top == '[' && d == ']')) {
                    i++;
                    depth--;
                } else {
                    throw fail("expected ',' or a closing bracket");
                }
            }
        }
    }

    private void skipKeyColon() throws SyntaxError {
        if (i >= end || b[i] != '"') {
            throw fail("expected string key");
        }
        scanString();
        ws();
        if (i >= end || b[i] != ':') {
            throw fail("expected ':' after object key");
        }
        i++;
    }

    static boolean isDigit(byte c) {
        return c >= '0' && c <= '9';
    }

    static boolean isHex4(byte[] b, int off) {
        for (int k = off; k < off + 4; k++) {
            int c = b[k];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
                return false;
            }
        }
        return true;
    }

    static int hex4(byte[] b, int off) {
        int r = 0;
        for (int k = off; k < off + 4; k++) {
            int c = b[k];
            int v;
            if (c >= '0' && c <= '9') {
                v = c - '0';
            } else if (c >= 'a' && c <= 'f') {
                v = c - 'a' + 10;
            } else {
                v = c - 'A' + 10;
            }
            r = (r << 4) | v;
        }
        return r;
    }

    /**
     * Decodes the contents of a syntax-checked JSON string with Go's rules:
     * a surrogate escape pairs only with an immediately following escape of
     * the other half, otherwise it becomes U+FFFD; each invalid UTF-8 byte
     * becomes one U+FFFD.
     */
    static String unquote(byte[] b, int from, int to) {
        // Fast path: plain ASCII without escapes.
        boolean plain = true;
        for (int k = from; k < to; k++) {
            int c = b[k];
            if (c < 0x20 || c == '\\') { // negative bytes (>= 0x80) included
                plain = false;
                break;
            }
        }
        if (plain) {
            return new String(b, from, to - from, UTF8);
        }
        StringBuilder sb = new StringBuilder(to - from);
        int k = from;
        while (k < to) {
            int c = b[k] & 0xff;
            if (c == '\\') {
                byte e = b[k + 1];
                switch (e) {
                    case '"':
                    case '\\':
                    case '/':
                        sb.append((char) e);
                        k += 2;
                        break;
                    case 'b':
                        sb.append('\b');
                        k += 2;
                        break;
                    case 'f':
                        sb.append('\f');
                        k += 2;
                        break;
                    case 'n':
                        sb.append('\n');
                        k += 2;
                        break;
                    case 'r':
                        sb.append('\r');
                        k += 2;
                        break;
                    case 't':
                        sb.append('\t');
                        k += 2;
                        break;
                    default: { // 'u', already validated
                        int r = hex4(b, k + 2);
                        k += 6;
                        if (r >= 0xD800 && r <= 0xDFFF) {
                            int r2 = -1;
                            if (k + 6 <= to && b[k] == '\\' && b[k + 1] == 'u' && isHex4(b, k + 2)) {
                                r2 = hex4(b, k + 2);
                            }
                            if (r <= 0xDBFF && r2 >= 0xDC00 && r2 <= 0xDFFF) {
                                k += 6;
                                sb.append((char) r).append((char) r2);
                            } else {
                                sb.append('\uFFFD');
                            }
                        } else {
                            sb.append((char) r);
                        }
                        break;
                    }
                }
            } else if (c < 0x80) {
                sb.append((char) c);
                k++;
            } else {
                k = appendUtf8Rune(b, k, to, sb);
            }
        }
        return sb.toString();
    }

    /**
     * Decodes one UTF-8 sequence at {@code k} like Go's utf8.DecodeRune and
     * appends it; an invalid or incomplete sequence appends U+FFFD and consumes
     * one byte. Returns the index after what was consumed.
     */
    static int appendUtf8Rune(byte[] b, int k, int to, StringBuilder sb) {
        int c0 = b[k] & 0xff;
        int need;
        int lo = 0x80;
        int hi = 0xBF;
        int cp;
        if (c0 < 0xC2) {
            sb.append('\uFFFD');
            return k + 1;
        } else if (c0 < 0xE0) {
            need = 1;
            cp = c0 & 0x1F;
        } else if (c0 < 0xF0) {
            need = 2;
            cp = c0 & 0x0F;
            if (c0 == 0xE0) {
                lo = 0xA0;
            } else if (c0 == 0xED) {
                hi = 0x9F;
            }
        } else if (c0 < 0xF5) {
            need = 3;
            cp = c0 & 0x07;
            if (c0 == 0xF0) {
                lo = 0x90;
            } else if (c0 == 0xF4) {
                hi = 0x8F;
            }
        } else {
            sb.append('\uFFFD');
            return k + 1;
        }
        for (int n = 1; n <= need; n++) {
            if (k + n >= to) { // sequence cut short
                sb.append('\uFFFD');
                return k + 1;
            }
            int cn = b[k + n] & 0xff;
            int l = n == 1 ? lo : 0x80;
            int h = n == 1 ? hi : 0xBF;
            if (cn < l || cn > h) {
                sb.append('\uFFFD');
                return k + 1;
            }
            cp = (cp << 6) | (cn & 0x3F);
        }
        sb.appendCodePoint(cp);
        return k + need + 1;
    }

    // ---- helpers for generic documents --------------------------------------

    /**
     * Looks a key up in a parsed object: exact match first, else the first key
     * equal ignoring case (as Go's encoding/json matches struct fields).
     */
    static Object get(Map<?, ?> m, String key) {
        if (m.containsKey(key)) {
            return m.get(key);
        }
        for (Map.Entry<?, ?> e : m.entrySet()) {
            Object k = e.getKey();
            if (k instanceof String && ((String) k).equalsIgnoreCase(key)) {
                return e.getValue();
            }
        }
        return null;
    }
}
