package io.plexbus.plex.client;

/**
 * One frame's payload: {@code {"seq": int64, "uri": string, "body": string}}.
 * Immutable; {@code uri} and {@code body} are never null (empty when absent).
 */
public final class Message {
    private final long seq;
    private final String uri;
    private final String body;

    public Message(long seq, String uri, String body) {
        this.seq = seq;
        this.uri = uri == null ? "" : uri;
        this.body = body == null ? "" : body;
    }

    public Message(String uri, String body) {
        this(0, uri, body);
    }

    /** The sequence number set by the publisher or the edge; 0 when absent. */
    public long getSeq() {
        return seq;
    }

    /** The uri, e.g. {@code /push} or an application's own; "" when absent. */
    public String getUri() {
        return uri;
    }

    /** The body, verbatim as published; "" when absent. */
    public String getBody() {
        return body;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof Message)) {
            return false;
        }
        Message m = (Message) o;
        return seq == m.seq && uri.equals(m.uri) && body.equals(m.body);
    }

    @Override
    public int hashCode() {
        int h = (int) (seq ^ (seq >>> 32));
        h = 31 * h + uri.hashCode();
        return 31 * h + body.hashCode();
    }

    @Override
    public String toString() {
        String b = body.length() > 200 ? body.substring(0, 200) + "…(" + body.length() + " chars)" : body;
        return "Message{seq=" + seq + ", uri=" + uri + ", body=" + b + "}";
    }
}
