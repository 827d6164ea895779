package io.plexbus.plex.client;

/** When the client dials again after a connection ends or an attempt fails. */
public enum ReconnectStrategy {
    /**
     * Reconnect after any disconnect or failed attempt, with backoff. After
     * {@code /auth/failed} it retries only when the auth data provider returns
     * different data (asked again at each backoff step); with static auth data
     * an auth failure stops the client.
     */
    ALWAYS,
    /**
     * Reconnect only after failures: network errors, connect or auth timeouts,
     * a heartbeat timeout, the server closing the connection, a protocol error,
     * or the server's {@code /reconnect}. An auth failure stops the client.
     */
    ON_FAILURE,
    /** Never reconnect: the first disconnect or failed attempt stops the client. */
    NEVER
}
