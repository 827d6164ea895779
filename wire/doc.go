// Package wire is the Plex frame codec shared by the edge, the client SDK and
// the load tools. It knows bytes, not sockets.
//
// A frame is a 4-byte unsigned length N followed by N bytes of payload. The
// length is big-endian unless both sides agree on little-endian. N = 0 is a
// no-op frame and is skipped. N above the configured maximum is a protocol
// error detected from the header alone, before anything is allocated.
//
// The payload is a JSON object {"seq": int64, "uri": string, "body": string};
// empty fields are omitted when encoding and unknown fields are ignored when
// decoding.
//
// The protocol flow on one client connection:
//
//	client                                edge
//	  |-- /auth/server  body=auth data ---->|   (within AuthTimeout)
//	  |<-- /auth/success body={"uid","heartbeat"}
//	  |    or /auth/failed body=reason, then close
//	  |-- /heartbeat ---------------------->|   (every Heartbeat)
//	  |<-- /heartbeat ----------------------|   idle deadline = now + HeartbeatTimeout
//	  |<-- pushes: seq, uri, body ----------|
//	  |<-- /reconnect (edge shutting down) -|   then close; dial again
//
// The original framework's push client logs in with /inner/auth/server and
// sends /logic/send/msg frames whose body is {"uid","uri","body"}.
package wire

// Reserved URIs of the protocol.
const (
	URIAuth        = "/auth/server"
	URIAuthSuccess = "/auth/success"
	URIAuthFailed  = "/auth/failed"
	URIHeartbeat   = "/heartbeat"
	URIInnerAuth   = "/inner/auth/server"
	URIInnerSend   = "/logic/send/msg"
	// URIReconnect tells a client the edge is going away: reconnect, preferably
	// to another edge. Old clients just see the close that follows.
	URIReconnect = "/reconnect"
	// URIPush is the uri of a pushed frame whose publisher set none.
	URIPush = "/push"
)

// Reserved reports whether uri is one of the protocol's own URIs, which a
// push must not use: a client would act on it (a pushed /auth/failed would
// stop it).
func Reserved(uri string) bool {
	switch uri {
	case URIAuth, URIAuthSuccess, URIAuthFailed, URIHeartbeat, URIInnerAuth, URIInnerSend, URIReconnect:
		return true
	}
	return false
}
