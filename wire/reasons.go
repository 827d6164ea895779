package wire

import (
	"strings"
	"unicode/utf8"
)

// Bodies of /auth/failed that the edge itself sends. A verifier's own
// refusals ("invalid token", "token expired", …) come on top of these.
// Clients tell a temporary failure, worth retrying with backoff and the
// same credentials, from a refusal with TemporaryFailure.
const (
	FailAuthUnavailable  = "auth unavailable"                               // no auth service answered, or the bus is down
	FailAuthTimedOut     = "auth timed out"                                 // the auth service did not answer in time
	FailAuthTimeout      = "auth timeout"                                   // no login within the edge's AuthTimeout
	FailServerBusy       = "server busy, retry later"                       // too many logins in flight
	FailServerFull       = "server full"                                    // MaxConnections reached
	FailTooManyFailures  = "too many logins from this address, retry later" // its failed-login budget is spent, or as many logins are in progress
	FailNotAuthenticated = "not authenticated"                              // data before login
	FailAlreadyLoggedIn  = "already logged in"                              // duplicate-login policy reject-new
	FailKicked           = "kicked: logged in elsewhere"                    // a newer login or an operator's kick
	FailInnerDisabled    = "inner push disabled"
	FailInnerRefused     = "inner push refused"
)

// TemporaryFailure reports whether an /auth/failed reason says nothing about
// the credentials: the same login may succeed later.
func TemporaryFailure(reason string) bool {
	switch strings.TrimSpace(reason) {
	case FailAuthUnavailable, FailAuthTimedOut, FailAuthTimeout, FailServerBusy, FailServerFull, FailTooManyFailures:
		return true
	}
	return false
}

// Kicked reports whether an /auth/failed reason is a kick: clients should
// not log in again on their own, or two devices would kick each other forever.
func Kicked(reason string) bool { return strings.HasPrefix(strings.TrimSpace(reason), "kicked") }

// MaxReasonLen bounds an /auth/failed reason, so any reason fits a frame
// even under a small MaxFrameSize.
const MaxReasonLen = 256

// CutReason trims a reason and cuts it to MaxReasonLen bytes on a UTF-8
// boundary.
func CutReason(reason string) string {
	reason = strings.TrimSpace(reason)
	if len(reason) <= MaxReasonLen {
		return reason
	}
	cut := MaxReasonLen
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
