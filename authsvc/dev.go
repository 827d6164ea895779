package authsvc

import (
	"context"
	"errors"
	"log/slog"

	"github.com/plexbus/plex/bus"
)

// ErrDevDisabled is returned by NewDev unless DevConfig.Insecure is set.
var ErrDevDisabled = errors.New("authsvc: the dev verifier accepts any claimed uid; set Insecure to use it")

// DevConfig configures the Dev verifier.
type DevConfig struct {
	// Insecure must be true. The dev verifier believes whatever uid a
	// client sends: anyone can log in as anyone. For `plex dev` and tests
	// only.
	Insecure bool
	// Logger receives the warning logged when the verifier is created.
	// Nil = slog.Default(), because this warning must not be lost.
	Logger *slog.Logger
}

// Dev is the development verifier of the original example: the auth body
// is the uid. Bodies that are not a valid uid are refused.
type Dev struct{}

var _ Verifier = (*Dev)(nil)

// NewDev returns the dev verifier, or ErrDevDisabled unless cfg.Insecure.
func NewDev(cfg DevConfig) (*Dev, error) {
	if !cfg.Insecure {
		return nil, ErrDevDisabled
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Warn("INSECURE: dev auth verifier enabled: the auth body is taken as the uid, " +
		"so any client can log in as any user; never use it in production")
	return &Dev{}, nil
}

// Verify accepts the body as the uid.
func (*Dev) Verify(_ context.Context, req bus.AuthRequest) (string, error) {
	if bus.ValidUID(req.Body) != nil {
		return "", Refuse(ReasonInvalidUID)
	}
	return req.Body, nil
}
