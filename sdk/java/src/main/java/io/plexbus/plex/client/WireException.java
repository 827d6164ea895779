package io.plexbus.plex.client;

import java.io.IOException;

/** A protocol error in the frame stream. The connection it came from is unusable. */
public final class WireException extends IOException {
    private static final long serialVersionUID = 1L;

    /** The error classes of the wire contract (they match the test vectors). */
    public enum Kind {
        /** The length prefix announced more than the maximum frame size. */
        FRAME_TOO_LARGE,
        /** The payload is not a JSON object with the expected field types. */
        BAD_PAYLOAD,
        /** The stream ended inside a frame. */
        TRUNCATED
    }

    private final Kind kind;

    public WireException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public Kind getKind() {
        return kind;
    }
}
