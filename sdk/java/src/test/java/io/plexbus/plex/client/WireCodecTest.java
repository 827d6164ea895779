package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.ByteArrayInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.jupiter.api.Test;

class WireCodecTest {

    private static Message decode(String json) throws WireException {
        return WireCodec.decodeJson(json.getBytes(Json.UTF8));
    }

    private static Message decodeBytes(int... bytes) throws WireException {
        byte[] b = new byte[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            b[i] = (byte) bytes[i];
        }
        return WireCodec.decodeJson(b);
    }

    private static void bad(String json) {
        WireException e = assertThrows(WireException.class, () -> decode(json), json);
        assertEquals(WireException.Kind.BAD_PAYLOAD, e.getKind());
    }

    private static String json(Message m) {
        return new String(WireCodec.encodeJson(m), Json.UTF8);
    }

    @Test
    void encodesLikeGo() {
        assertEquals("{}", json(new Message(0, "", "")));
        assertEquals("{\"seq\":-5}", json(new Message(-5, null, null)));
        assertEquals("{\"body\":\"\\u0000\\u0008\\u000b\\u000c\\u001f\\u007f\"}".replace("\\u007f", "\u007f"),
                json(new Message(0, "", "\u0000\b\u000b\f\u001f\u007f")));
        assertEquals("{\"body\":\"<>&'\"}", json(new Message(0, "", "<>&'")));
        assertEquals("{\"body\":\"\\u2028\\u2029\"}", json(new Message(0, "", "\u2028\u2029")));
    }

    @Test
    void encodesSurrogates() {
        // a valid pair is UTF-8, 4 bytes
        byte[] b = WireCodec.encodeJson(new Message(0, "", "\uD83C\uDF0D"));
        assertEquals("7b22626f6479223a22f09f8c8d227d", TestUtil.hex(b));
        // unpaired halves become \ufffd
        assertEquals("{\"body\":\"a\\ufffdb\"}", json(new Message(0, "", "a\uD800b")));
        assertEquals("{\"body\":\"a\\ufffd\"}", json(new Message(0, "", "a\uD800")));
        assertEquals("{\"body\":\"\\ufffda\"}", json(new Message(0, "", "\uDC00a")));
        assertEquals("{\"body\":\"\\ufffd\\ufffd\"}", json(new Message(0, "", "\uDC00\uD800")));
    }

    @Test
    void roundTripsRandomStrings() throws Exception {
        Random rnd = new Random(1);
        for (int n = 0; n < 2000; n++) {
            StringBuilder sb = new StringBuilder();
            int len = rnd.nextInt(20);
            for (int i = 0; i < len; i++) {
                switch (rnd.nextInt(4)) {
                    case 0:
                        sb.append((char) rnd.nextInt(0x80));
                        break;
                    case 1:
                        sb.append((char) (0x80 + rnd.nextInt(0xD800 - 0x80)));
                        break;
                    case 2:
                        sb.appendCodePoint(0x10000 + rnd.nextInt(0x100000));
                        break;
                    default:
                        sb.append((char) (0xE000 + rnd.nextInt(0x2000)));
                }
            }
            Message m = new Message(rnd.nextLong(), "/u" + sb, sb.toString());
            assertEquals(m, WireCodec.decodeJson(WireCodec.encodeJson(m)));
        }
    }

    @Test
    void decodesSurrogateEscapesLikeGo() throws Exception {
        assertEquals("\uD800\uDC00", decode("{\"body\":\"\\ud800\\udc00\"}").getBody());
        assertEquals("\uFFFD\uD800\uDC00", decode("{\"body\":\"\\ud800\\ud800\\udc00\"}").getBody());
        assertEquals("\uFFFD\uFFFD", decode("{\"body\":\"\\udc00\\ud800\"}").getBody());
        assertEquals("\uFFFDx", decode("{\"body\":\"\\ud800x\"}").getBody());
        assertEquals("\uFFFD\\u", decode("{\"body\":\"\\ud800\\\\u\"}").getBody());
    }

    @Test
    void invalidUtf8IsReplacedPerByte() throws Exception {
        // {"body":"<bytes>"} ; Go's utf8.DecodeRune replaces one byte at a time
        int[] pre = {'{', '"', 'b', 'o', 'd', 'y', '"', ':', '"'};
        int[][] cases = {
            {0xE4, 0xBD, 'a'}, // cut-short 3-byte sequence
            {0xC0, 0x80}, // overlong
            {0xED, 0xA0, 0x80}, // UTF-8-encoded surrogate
            {0xF4, 0x90, 0x80, 0x80}, // above U+10FFFF
            {0x80}, // lone continuation
            {0xF0, 0x9F, 0x8C}, // cut-short 4-byte sequence
        };
        String[] want = {"\uFFFD\uFFFDa", "\uFFFD\uFFFD", "\uFFFD\uFFFD\uFFFD", "\uFFFD\uFFFD\uFFFD\uFFFD", "\uFFFD",
            "\uFFFD\uFFFD\uFFFD"};
        for (int k = 0; k < cases.length; k++) {
            int[] all = new int[pre.length + cases[k].length + 2];
            System.arraycopy(pre, 0, all, 0, pre.length);
            System.arraycopy(cases[k], 0, all, pre.length, cases[k].length);
            all[all.length - 2] = '"';
            all[all.length - 1] = '}';
            assertEquals(want[k], decodeBytes(all).getBody(), "case " + k);
        }
        // valid multi-byte sequences pass through, including a literal U+FFFD
        assertEquals("é你\uFFFD🌍", decode("{\"body\":\"é你\uFFFD🌍\"}").getBody());
    }

    @Test
    void keysFoldLikeEncodingJson() throws Exception {
        assertEquals(5, decode("{\"SEQ\":5}").getSeq());
        assertEquals(5, decode("{\"\u017Feq\":5}").getSeq()); // long s folds to S
        assertEquals(5, decode("{\"\\u0073eq\":5}").getSeq());
        assertEquals("/x", decode("{\"uRi\":\"/x\"}").getUri());
        assertEquals("b", decode("{\"Body\":\"b\"}").getBody());
        assertEquals(new Message(0, "", ""), decode("{\"seqq\":\"x\",\"bod\":1,\"\":null}"));
    }

    @Test
    void nullLeavesEarlierValue() throws Exception {
        assertEquals("/a", decode("{\"uri\":\"/a\",\"uri\":null}").getUri());
        assertEquals(3, decode("{\"seq\":3,\"seq\":null}").getSeq());
        assertEquals(0, decode("{\"seq\":-0}").getSeq());
    }

    @Test
    void strictness() {
        bad("");
        bad(" ");
        bad("{");
        bad("{}x");
        bad("{} {}");
        bad("{,}");
        bad("{\"seq\":01}");
        bad("{\"seq\":1e2}");
        bad("{\"seq\":-}");
        bad("{\"seq\":true}");
        bad("{\"seq\":9223372036854775808}");
        bad("{\"seq\":-9223372036854775809}");
        bad("{\"uri\":5}");
        bad("{\"uri\":nul}");
        bad("{\"body\":[]}");
        bad("{\"x\":tru}");
        bad("{\"x\":[1,]}");
        bad("{\"x\":{\"a\"}}");
        bad("{\"x\":{\"a\":1,}}");
        bad("{\"x\":+1}");
        bad("{\"x\":.5}");
        bad("{\"x\":1.}");
        bad("{\"x\":\"\\u12\"}");
        bad("{\"x\":\"a\tb\"}");
        bad("{'uri':'x'}");
        bad("\u00a0{}");
        bad("{\"uri\":\"x\"\"body\":\"y\"}");
    }

    @Test
    void skipsAnyValidUnknownValue() throws Exception {
        Message m = decode(" {\"a\":[1,-2.5e+3,true,false,null,{\"b\":{}},[],\"s\\\"\"] , \"uri\" : \"/u\"}\r\n");
        assertEquals("/u", m.getUri());
    }

    @Test
    void nestingLimitIsTenThousand() throws Exception {
        assertEquals("/ok", decode(nested(10000) + ",\"uri\":\"/ok\"}").getUri());
        bad(nested(10001) + "}");
        // objects count too
        StringBuilder sb = new StringBuilder("{\"x\":");
        for (int i = 0; i < 10001; i++) {
            sb.append("{\"k\":");
        }
        sb.append("1");
        for (int i = 0; i < 10001; i++) {
            sb.append('}');
        }
        bad(sb.append('}').toString());
    }

    private static String nested(int depth) {
        StringBuilder sb = new StringBuilder("{\"x\":");
        for (int i = 0; i < depth; i++) {
            sb.append('[');
        }
        for (int i = 0; i < depth; i++) {
            sb.append(']');
        }
        return sb.toString();
    }

    @Test
    void frameReaderLimitsAndOrders() throws Exception {
        byte[] f = WireCodec.encodeFrame(new Message(1, "/a", "b"), ByteOrder.LITTLE_ENDIAN);
        assertEquals(f.length - 4, WireCodec.readLength(f, 0, ByteOrder.LITTLE_ENDIAN));
        int n = f.length - 4;
        assertEquals(new Message(1, "/a", "b"),
                new FrameReader(new ByteArrayInputStream(f), ByteOrder.LITTLE_ENDIAN, n).readMessage());
        WireException e = assertThrows(WireException.class,
                () -> new FrameReader(new ByteArrayInputStream(f), ByteOrder.LITTLE_ENDIAN, n - 1).readFrame());
        assertEquals(WireException.Kind.FRAME_TOO_LARGE, e.getKind());
        assertNull(new FrameReader(new ByteArrayInputStream(new byte[8]), ByteOrder.BIG_ENDIAN, 0).readFrame());
        byte[] len = new byte[4];
        WireCodec.writeLength(len, 0, 0xFFFFFFFFL, ByteOrder.BIG_ENDIAN);
        assertEquals(0xFFFFFFFFL, WireCodec.readLength(len, 0, ByteOrder.BIG_ENDIAN));
        assertArrayEquals(new byte[] {-1, -1, -1, -1}, len);
    }

    /** Throws SocketTimeoutException on every other read, like a socket with SO_TIMEOUT. */
    private static final class Flaky extends FilterInputStream {
        int calls;

        Flaky(InputStream in) {
            super(in);
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (calls++ % 2 == 0) {
                throw new SocketTimeoutException("timeout");
            }
            return super.read(b, off, Math.min(len, 3));
        }
    }

    @Test
    void frameReaderResumesAfterTimeouts() throws Exception {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (int i = 1; i <= 5; i++) {
            out.write(WireCodec.encodeFrame(new Message(i, "/push", "body " + i), ByteOrder.BIG_ENDIAN));
        }
        FrameReader r = new FrameReader(new Flaky(new ByteArrayInputStream(out.toByteArray())),
                ByteOrder.BIG_ENDIAN, 0);
        int got = 0;
        int timeouts = 0;
        while (true) {
            Message m;
            try {
                m = r.readMessage();
            } catch (SocketTimeoutException e) {
                timeouts++;
                continue;
            }
            if (m == null) {
                break;
            }
            got++;
            assertEquals(new Message(got, "/push", "body " + got), m);
        }
        assertEquals(5, got);
        assertEquals(true, timeouts > 10);
    }
}
