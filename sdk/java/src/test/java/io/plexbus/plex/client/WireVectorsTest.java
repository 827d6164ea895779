package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** The shared byte-exact vectors in wire/testdata/vectors.json, read with the SDK's own JSON parser. */
class WireVectorsTest {

    private static Map<?, ?> load() throws Exception {
        Object doc = Json.parse(TestUtil.vectorsFile());
        assertTrue(doc instanceof Map, "vectors file is a JSON object");
        return (Map<?, ?>) doc;
    }

    private static ByteOrder order(Object o) {
        if (o == null || "big".equals(o)) {
            return ByteOrder.BIG_ENDIAN;
        }
        if ("little".equals(o)) {
            return ByteOrder.LITTLE_ENDIAN;
        }
        throw new AssertionError("unknown order " + o);
    }

    static Message message(Object o) {
        Map<?, ?> m = (Map<?, ?>) o;
        Object seq = m.get("seq");
        return new Message(seq == null ? 0 : (Long) seq, (String) m.get("uri"), (String) m.get("body"));
    }

    @Test
    void fileIsComplete() throws Exception {
        Map<?, ?> vf = load();
        assertEquals(Long.valueOf(65536), vf.get("max_frame_size"));
        assertTrue(((List<?>) vf.get("encode")).size() >= 10);
        assertTrue(((List<?>) vf.get("decode")).size() >= 10);
    }

    @TestFactory
    Stream<DynamicTest> encode() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (Object o : (List<?>) load().get("encode")) {
            Map<?, ?> v = (Map<?, ?>) o;
            tests.add(DynamicTest.dynamicTest((String) v.get("name"), () -> {
                Message m = message(v.get("message"));
                ByteOrder ord = order(v.get("order"));
                byte[] got = WireCodec.encodeFrame(m, ord);
                assertEquals(v.get("hex"), TestUtil.hex(got), "frame of " + m);
                // and it reads back
                FrameReader r = new FrameReader(new ByteArrayInputStream(got), ord, 65536);
                assertEquals(m, r.readMessage());
                assertEquals(null, r.readMessage());
                byte[] json = WireCodec.encodeJson(m);
                assertEquals(TestUtil.hex(got).substring(8), TestUtil.hex(json));
            }));
        }
        return tests.stream();
    }

    private static final class OneByte extends FilterInputStream {
        OneByte(InputStream in) {
            super(in);
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            return super.read(b, off, Math.min(len, 1));
        }
    }

    private static final class Half extends FilterInputStream {
        Half(InputStream in) {
            super(in);
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            return super.read(b, off, (len + 1) / 2);
        }
    }

    @TestFactory
    Stream<DynamicTest> decode() throws Exception {
        Map<?, ?> vf = load();
        long fileMax = (Long) vf.get("max_frame_size");
        List<DynamicTest> tests = new ArrayList<>();
        List<String> names = new ArrayList<>();
        List<Function<InputStream, InputStream>> wraps = new ArrayList<>();
        names.add("whole");
        wraps.add(in -> in);
        names.add("one_byte");
        wraps.add(OneByte::new);
        names.add("half");
        wraps.add(Half::new);
        for (Object o : (List<?>) vf.get("decode")) {
            Map<?, ?> v = (Map<?, ?>) o;
            for (int w = 0; w < wraps.size(); w++) {
                Function<InputStream, InputStream> wrap = wraps.get(w);
                tests.add(DynamicTest.dynamicTest(v.get("name") + "/" + names.get(w), () -> {
                    Object vm = v.get("max_frame_size");
                    int max = (int) (vm != null && (Long) vm > 0 ? (Long) vm : fileMax);
                    InputStream in = wrap.apply(new ByteArrayInputStream(TestUtil.hex((String) v.get("hex"))));
                    FrameReader r = new FrameReader(in, order(v.get("order")), max);
                    List<Message> got = new ArrayList<>();
                    String errClass = null;
                    while (true) {
                        try {
                            Message m = r.readMessage();
                            if (m == null) {
                                break;
                            }
                            got.add(m);
                        } catch (WireException e) {
                            errClass = e.getKind().name().toLowerCase();
                            break;
                        }
                    }
                    List<Message> want = new ArrayList<>();
                    for (Object wm : (List<?>) v.get("messages")) {
                        want.add(message(wm));
                    }
                    assertEquals(want, got, "messages");
                    assertEquals(v.get("error"), errClass, "error class (null = clean end)");
                }));
            }
        }
        return tests.stream();
    }

    @Test
    void encodeVectorsDecodeBack() throws Exception {
        for (Object o : (List<?>) load().get("encode")) {
            Map<?, ?> v = (Map<?, ?>) o;
            Message m = message(v.get("message"));
            byte[] frame = TestUtil.hex((String) v.get("hex"));
            Message back = WireCodec.decodeJson(frame, 4, frame.length - 4);
            if (!m.equals(back)) {
                fail(v.get("name") + ": decoded " + back + ", want " + m);
            }
        }
    }
}
