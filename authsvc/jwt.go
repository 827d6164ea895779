package authsvc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plexbus/plex/bus"
)

// JWT algorithms NewJWT accepts.
const (
	AlgHS256 = "HS256" // HMAC SHA-256 with a shared secret
	AlgRS256 = "RS256" // RSA PKCS #1 v1.5 SHA-256 with a public key
	AlgES256 = "ES256" // ECDSA P-256 SHA-256 with a public key
)

// MinHMACSecret is the shortest HS256 secret accepted, in bytes (RFC 7518:
// at least the hash size).
const MinHMACSecret = 32

// minRSABits is the smallest RSA key accepted.
const minRSABits = 2048

// JWTConfig configures the JWT verifier.
type JWTConfig struct {
	// Algorithm is AlgHS256, AlgRS256 or AlgES256. Tokens signed with any
	// other algorithm are refused, including "none" and HS256 tokens made
	// with an RSA public key as the secret. Required.
	Algorithm string
	// Secret is the HS256 shared secret, at least MinHMACSecret bytes
	// (see LoadSecretFile).
	Secret []byte
	// PublicKey verifies RS256 (*rsa.PublicKey, at least 2048 bits) or
	// ES256 (*ecdsa.PublicKey on P-256) tokens (see ParsePublicKeyPEM and
	// LoadPublicKeyFile).
	PublicKey crypto.PublicKey
	// Issuer, if set, must equal the token's iss claim.
	Issuer string
	// Audience, if set, must be one of the token's aud claim values.
	Audience string
	// Leeway tolerates clock skew between the token issuer and this
	// service when checking exp, nbf and iat. Zero = none.
	Leeway time.Duration
	// Now is the clock. Nil = time.Now.
	Now func() time.Time
}

// JWT verifies a JSON Web Token sent as the auth body. The uid is the
// token's sub claim; exp is required.
type JWT struct {
	parser *jwt.Parser
	key    any
}

var _ Verifier = (*JWT)(nil)

// NewJWT checks cfg and returns the verifier.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	var key any
	switch cfg.Algorithm {
	case AlgHS256:
		if len(cfg.Secret) < MinHMACSecret {
			return nil, fmt.Errorf("authsvc: jwt: HS256 secret is %d bytes, want at least %d", len(cfg.Secret), MinHMACSecret)
		}
		if cfg.PublicKey != nil {
			return nil, errors.New("authsvc: jwt: HS256 takes a secret, not a public key")
		}
		key = cfg.Secret
	case AlgRS256:
		k, ok := cfg.PublicKey.(*rsa.PublicKey)
		if !ok || k == nil || k.N == nil {
			return nil, fmt.Errorf("authsvc: jwt: RS256 needs an RSA public key, have %T", cfg.PublicKey)
		}
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("authsvc: jwt: RSA key has %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		key = k
	case AlgES256:
		k, ok := cfg.PublicKey.(*ecdsa.PublicKey)
		if !ok || k == nil || k.Curve == nil {
			return nil, fmt.Errorf("authsvc: jwt: ES256 needs an ECDSA public key, have %T", cfg.PublicKey)
		}
		if k.Curve.Params().Name != elliptic.P256().Params().Name {
			return nil, fmt.Errorf("authsvc: jwt: ES256 needs a P-256 key, have %s", k.Curve.Params().Name)
		}
		key = k
	case "":
		return nil, errors.New("authsvc: jwt: no algorithm configured")
	default:
		return nil, fmt.Errorf("authsvc: jwt: unsupported algorithm %q (use HS256, RS256 or ES256)", cfg.Algorithm)
	}
	if cfg.Algorithm != AlgHS256 && len(cfg.Secret) > 0 {
		return nil, fmt.Errorf("authsvc: jwt: %s takes a public key, not a secret", cfg.Algorithm)
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("authsvc: jwt: negative leeway %s", cfg.Leeway)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{cfg.Algorithm}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	return &JWT{parser: jwt.NewParser(opts...), key: key}, nil
}

// Verify checks the token in req.Body and returns its subject.
func (j *JWT) Verify(_ context.Context, req bus.AuthRequest) (string, error) {
	raw := strings.TrimSpace(req.Body)
	if raw == "" {
		return "", Refuse("missing token")
	}
	var claims jwt.RegisteredClaims
	_, err := j.parser.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) {
		return j.key, nil // the parser already restricted the method
	})
	if err != nil {
		return "", Refuse(jwtReason(err, &claims))
	}
	if claims.Subject == "" {
		return "", Refuse("token has no subject")
	}
	if bus.ValidUID(claims.Subject) != nil {
		return "", Refuse("token subject is not a valid uid")
	}
	return claims.Subject, nil
}

// jwtReason names a token failure for the client, without detail an
// attacker could use against the signature check.
func jwtReason(err error, claims *jwt.RegisteredClaims) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed),
		errors.Is(err, jwt.ErrTokenSignatureInvalid),
		errors.Is(err, jwt.ErrTokenUnverifiable):
		return "invalid token"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong token issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong token audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case claims.ExpiresAt == nil:
			return "token has no expiry"
		case claims.Issuer == "":
			return "wrong token issuer"
		default:
			return "wrong token audience"
		}
	default:
		return "invalid token"
	}
}
