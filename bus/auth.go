package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ErrAuthUnavailable means no auth service answered: none is running
// (no responders), it timed out, or the bus is down.
var ErrAuthUnavailable = errors.New("bus: auth unavailable")

// RequestAuth asks the auth service to verify req. The reply's uid is
// validated: a reply with an invalid uid is a refusal, never a login.
func RequestAuth(ctx context.Context, nc *nats.Conn, req AuthRequest) (AuthReply, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return AuthReply{}, fmt.Errorf("bus: encode auth request: %w", err)
	}
	msg, err := nc.RequestWithContext(ctx, SubjectAuth, data)
	if err != nil {
		return AuthReply{}, fmt.Errorf("%w: %w", ErrAuthUnavailable, err)
	}
	return ParseAuthReply(msg)
}

// ParseAuthReply decodes an auth reply. A micro service error reply
// (headers Nats-Service-Error and -Code) with a 5xx code means the service
// could not decide (stopping, overloaded): ErrAuthUnavailable. Other codes
// are refusals.
func ParseAuthReply(msg *nats.Msg) (AuthReply, error) {
	if desc := msg.Header.Get("Nats-Service-Error"); desc != "" {
		if code := msg.Header.Get("Nats-Service-Error-Code"); len(code) == 3 && code[0] == '5' {
			return AuthReply{}, fmt.Errorf("%w: %s", ErrAuthUnavailable, desc)
		}
		return AuthReply{OK: false, Reason: desc}, nil
	}
	var rep AuthReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return AuthReply{}, fmt.Errorf("%w: malformed reply: %w", ErrAuthUnavailable, err)
	}
	if rep.OK {
		if err := ValidUID(rep.UID); err != nil {
			return AuthReply{OK: false, Reason: "auth service returned an invalid uid"}, nil
		}
	} else if rep.Reason == "" {
		rep.Reason = "refused"
	}
	return rep, nil
}
