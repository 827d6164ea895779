package edge

// Reason is why a connection ended. It satisfies error, and its string is
// the label of the disconnect metric and the reason in presence events.
type Reason string

func (r Reason) Error() string { return "edge: connection closed: " + string(r) }

// Disconnect reasons. Every one is a metric label created at zero.
const (
	ReasonClientClosed     Reason = "client_closed"     // EOF from the client
	ReasonReadError        Reason = "read_error"        // reset or other socket error
	ReasonWriteError       Reason = "write_error"       // the socket refused bytes
	ReasonSlow             Reason = "slow_consumer"     // send queue overflow or write deadline
	ReasonAuthTimeout      Reason = "auth_timeout"      // no login within AuthTimeout
	ReasonAuthFailed       Reason = "auth_failed"       // refused by the auth service
	ReasonAuthUnavailable  Reason = "auth_unavailable"  // no auth service answered
	ReasonIdle             Reason = "heartbeat_timeout" // no frame within HeartbeatTimeout
	ReasonFrameTooLarge    Reason = "frame_too_large"   // length prefix above the limit
	ReasonBadFrame         Reason = "bad_frame"         // payload not a valid message
	ReasonNotAuthenticated Reason = "not_authenticated" // data before login
	ReasonKicked           Reason = "kicked"            // Plex-Op: kick or a newer login
	ReasonDuplicate        Reason = "duplicate_login"   // refused by reject-new
	ReasonServerFull       Reason = "server_full"       // MaxConnections reached
	ReasonRateLimited      Reason = "rate_limited"      // too many frames, or too many failed logins from its address
	ReasonShutdown         Reason = "shutdown"          // the edge is draining
)

var allReasons = []Reason{
	ReasonClientClosed, ReasonReadError, ReasonWriteError, ReasonSlow,
	ReasonAuthTimeout, ReasonAuthFailed, ReasonAuthUnavailable, ReasonIdle,
	ReasonFrameTooLarge, ReasonBadFrame, ReasonNotAuthenticated, ReasonKicked,
	ReasonDuplicate, ReasonServerFull, ReasonRateLimited, ReasonShutdown,
}
