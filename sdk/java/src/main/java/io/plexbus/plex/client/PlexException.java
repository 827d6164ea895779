package io.plexbus.plex.client;

import java.io.IOException;

/** Why a connection ended or an attempt failed, when it was not a plain I/O error. */
public final class PlexException extends IOException {
    private static final long serialVersionUID = 1L;

    /** The reasons the client itself detects. */
    public enum Kind {
        /** Host discovery answered with an error or an unusable document. */
        HOST_DISCOVERY,
        /** The auth data provider returned null or threw. */
        AUTH_DATA_UNAVAILABLE,
        /** No {@code /auth/success} or {@code /auth/failed} within the connect timeout. */
        AUTH_TIMEOUT,
        /** No frame from the server for two heartbeat intervals (or after a probe). */
        HEARTBEAT_TIMEOUT,
        /** The server sent {@code /reconnect}: it is going away. */
        SERVER_RECONNECT,
        /** The server closed the connection. */
        SERVER_CLOSED,
        /** The edge could not decide the login (auth service down, edge full or busy): retried. */
        AUTH_UNAVAILABLE
    }

    private final Kind kind;
    private final int httpStatus;

    public PlexException(Kind kind, String message) {
        this(kind, message, null, 0);
    }

    public PlexException(Kind kind, String message, Throwable cause, int httpStatus) {
        super(message, cause);
        this.kind = kind;
        this.httpStatus = httpStatus;
    }

    public Kind getKind() {
        return kind;
    }

    /** For {@link Kind#HOST_DISCOVERY}: the HTTP status, or 0 when there was none. */
    public int getHttpStatus() {
        return httpStatus;
    }
}
