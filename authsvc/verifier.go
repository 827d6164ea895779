package authsvc

import (
	"context"
	"errors"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

// Verifier decides who a connecting client is. Verify returns the client's
// uid, or Refuse(reason) to turn it away with a reason the client is shown.
// Any other error is logged (so it must not contain the auth body) and the
// client sees a generic reason.
//
// Verify is called concurrently, up to Config.MaxConcurrent at once, and
// must return soon after ctx ends: the service waits for it on Stop.
type Verifier interface {
	Verify(ctx context.Context, req bus.AuthRequest) (uid string, err error)
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, req bus.AuthRequest) (uid string, err error)

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, req bus.AuthRequest) (string, error) {
	return f(ctx, req)
}

// SimpleFunc adapts a function in the original framework's authFunc shape:
// given the auth body, the uid and whether to accept. A refusal carries the
// reason "refused".
func SimpleFunc(fn func(body string) (uid string, ok bool)) Verifier {
	return VerifierFunc(func(_ context.Context, req bus.AuthRequest) (string, error) {
		uid, ok := fn(req.Body)
		if !ok {
			return "", Refuse("")
		}
		return uid, nil
	})
}

var (
	// ErrRefused matches (errors.Is) every refusal made with Refuse.
	ErrRefused = errors.New("authsvc: refused")
	// ErrUnavailable marks an error of a backend the verifier depends on
	// (a webhook that is down, slow or failing). The client sees
	// "auth unavailable".
	ErrUnavailable = errors.New("authsvc: verifier backend unavailable")
)

// Reasons the client is shown when a Verifier did not refuse explicitly.
const (
	ReasonRefused     = "refused"
	ReasonError       = "auth error"
	ReasonUnavailable = "auth unavailable"
	ReasonTimeout     = "auth timeout"
	ReasonInvalidUID  = "invalid uid"
)

// MaxReasonLen bounds a refusal reason sent to a client, in bytes.
const MaxReasonLen = 256

// RefusedError is a refusal with the reason the client is shown.
type RefusedError struct {
	Reason string
}

// Refuse returns a refusal with a short, human reason for the client, sent
// as the body of /auth/failed. An empty reason becomes "refused"; a long
// one is cut to MaxReasonLen bytes.
func Refuse(reason string) error {
	return &RefusedError{Reason: cleanReason(reason)}
}

func (e *RefusedError) Error() string { return "authsvc: refused: " + e.Reason }

// Is makes errors.Is(err, ErrRefused) true for every refusal.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func cleanReason(reason string) string {
	if reason = wire.CutReason(reason); reason == "" {
		return ReasonRefused
	}
	return reason
}
