package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Tokens makes each device's uid and auth data.
type Tokens struct {
	// Prefix of uids: uid i is Prefix+i.
	Prefix string
	// Template of the auth data, with {uid} replaced; empty = the uid
	// itself (the dev verifier).
	Template string
	// JWTSecret, if set, makes an HS256 JWT per device with sub = uid.
	JWTSecret []byte
}

// UID of device i.
func (t Tokens) UID(i int) string { return t.Prefix + strconv.Itoa(i) }

// Token of device i.
func (t Tokens) Token(i int) (string, error) {
	uid := t.UID(i)
	if len(t.JWTSecret) > 0 {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
			Subject:   uid,
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(24 * time.Hour)),
			IssuedAt:  jwt.NewNumericDate(time.Now()),
		})
		s, err := tok.SignedString(t.JWTSecret)
		if err != nil {
			return "", fmt.Errorf("sign token: %w", err)
		}
		return s, nil
	}
	if t.Template == "" {
		return uid, nil
	}
	return strings.ReplaceAll(t.Template, "{uid}", uid), nil
}
