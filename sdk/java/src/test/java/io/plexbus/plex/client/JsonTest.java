package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
    @Test
    void parsesValues() throws Exception {
        Map<?, ?> m = (Map<?, ?>) Json.parse(
                " {\"a\":1,\"b\":-2.5,\"c\":\"x\\ny\",\"d\":[true,false,null],\"e\":{},\"a\":2,"
                        + "\"big\":12345678901234567890,\"max\":9223372036854775807} ");
        assertEquals(2L, m.get("a"));
        assertEquals(-2.5, m.get("b"));
        assertEquals("x\ny", m.get("c"));
        assertEquals(Arrays.asList(true, false, null), m.get("d"));
        assertEquals(0, ((Map<?, ?>) m.get("e")).size());
        assertEquals(1.2345678901234567e19, m.get("big"));
        assertEquals(Long.MAX_VALUE, m.get("max"));
        assertEquals("x", Json.parse("\"x\""));
        assertNull(Json.parse("null"));
        assertEquals(0, ((List<?>) Json.parse("[]")).size());
    }

    @Test
    void getIgnoresCaseAsFallback() throws Exception {
        Map<?, ?> m = (Map<?, ?>) Json.parse("{\"Host\":\"a:1\",\"heartbeat\":5,\"HEARTBEAT\":6}");
        assertEquals("a:1", Json.get(m, "host"));
        assertEquals(5L, Json.get(m, "heartbeat"));
        assertNull(Json.get(m, "nope"));
    }

    @Test
    void rejectsBadDocuments() {
        for (String s : new String[] {"", "{", "[1,]", "{\"a\":}", "01", "1 2", "\"\\x\"", "nul", "{\"a\" 1}", "[",
            "\"abc"}) {
            assertThrows(Json.SyntaxError.class, () -> Json.parse(s), s);
        }
        StringBuilder deep = new StringBuilder();
        for (int i = 0; i < 600; i++) {
            deep.append('[');
        }
        for (int i = 0; i < 600; i++) {
            deep.append(']');
        }
        assertThrows(Json.SyntaxError.class, () -> Json.parse(deep.toString()));
    }
}
