package io.plexbus.plex.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The temporary /auth/failed reasons agree with wire/testdata/reasons.json. */
class ReasonsTest {

    @Test
    void temporaryReasonsMatchTheSharedFile() throws Exception {
        Path path = Paths.get("..", "..", "wire", "testdata", "reasons.json");
        Map<?, ?> doc = (Map<?, ?>) Json.parse(Files.readAllBytes(path));
        List<?> temporary = (List<?>) doc.get("temporary");
        assertArrayEquals(temporary.toArray(new Object[0]), PlexClient.TEMPORARY_FAILURES);
        for (Object r : temporary) {
            assertTrue(PlexClient.isTemporaryFailure((String) r), (String) r);
        }
        assertFalse(PlexClient.isTemporaryFailure("invalid token"));
        assertFalse(PlexClient.isTemporaryFailure("kicked: logged in elsewhere"));
        assertFalse(PlexClient.isTemporaryFailure(null));
    }
}
