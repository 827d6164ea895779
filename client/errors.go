package client

import (
	"errors"
	"fmt"
	"os"

	"github.com/plexbus/plex/wire"
)

// Errors reported in DisconnectInfo.Err and returned by Run and Send. Most
// are wrapped with details; test with errors.Is.
var (
	// ErrClosed: the client was closed, or Run's context ended.
	ErrClosed = errors.New("client: closed")
	// ErrNotConnected: Send found no authenticated connection.
	ErrNotConnected = errors.New("client: not connected")
	// ErrAuthFailed: the server refused the auth data (an *AuthError whose
	// Temporary is false), or AuthFunc gave up.
	ErrAuthFailed = errors.New("client: auth failed")
	// ErrUnavailable: the server refused the login for a reason that says
	// nothing about the credentials (auth service down, edge busy or full):
	// an *AuthError whose Temporary is true. Retried with backoff.
	ErrUnavailable = errors.New("client: server unavailable")
	// ErrHeartbeatTimeout: nothing arrived for two heartbeat intervals.
	ErrHeartbeatTimeout = errors.New("client: heartbeat timeout")
	// ErrServerReconnect: the edge sent /reconnect because it is shutting
	// down. The client reconnects at once, without a backoff penalty.
	ErrServerReconnect = errors.New("client: server asked to reconnect")
	// ErrConnectionLost: the connection broke (EOF, reset, write error).
	ErrConnectionLost = errors.New("client: connection lost")
	// ErrNoHost: host discovery gave no edge to dial.
	ErrNoHost = errors.New("client: no edge available")
	// ErrProtocol: the peer sent something this client cannot read.
	ErrProtocol = errors.New("client: protocol error")
)

// AuthError is a refusal by the edge (/auth/failed), at login or later.
type AuthError struct {
	// Reason is the edge's text, e.g. "bad token" or
	// "kicked: logged in elsewhere".
	Reason string
	// Temporary reports a refusal that says nothing about the credentials
	// (auth service unavailable, server busy or full): retried with backoff.
	Temporary bool
}

func (e *AuthError) Error() string {
	if e.Temporary {
		return "client: login refused for now: " + e.Reason
	}
	return "client: auth failed: " + e.Reason
}

// Unwrap makes an AuthError match ErrAuthFailed, or ErrUnavailable when
// Temporary.
func (e *AuthError) Unwrap() error {
	if e.Temporary {
		return ErrUnavailable
	}
	return ErrAuthFailed
}

// Kicked reports a refusal because the same user logged in elsewhere.
func (e *AuthError) Kicked() bool { return wire.Kicked(e.Reason) }

// refusal classifies an /auth/failed reason with the edge's own list
// (wire.TemporaryFailure); anything unknown counts as a real refusal, which
// errs on the side of not hammering the server.
func refusal(reason string) *AuthError {
	temp := wire.TemporaryFailure(reason)
	if reason == "" {
		reason = "refused"
	}
	return &AuthError{Reason: reason, Temporary: temp}
}

// readError classifies an error from reading an established connection.
func readError(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrHeartbeatTimeout
	case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrBadPayload):
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return fmt.Errorf("%w: read: %w", ErrConnectionLost, err)
}
