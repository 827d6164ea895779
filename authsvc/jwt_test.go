package authsvc_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bus"
)

var (
	hsSecret    = []byte("0123456789abcdef0123456789abcdef")
	otherSecret = []byte("fedcba9876543210fedcba9876543210")
)

// testKeys are generated once: RSA generation is slow under -race.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsaOther *rsa.PrivateKey
	ec, ecOther   *ecdsa.PrivateKey
}) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ecOther, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	return k
})

func pemPublic(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newJWT(t *testing.T, cfg authsvc.JWTConfig) *authsvc.JWT {
	t.Helper()
	v, err := authsvc.NewJWT(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWT(t *testing.T) {
	k := testKeys()
	now := time.Now()
	valid := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "42", "exp": now.Add(time.Hour).Unix(), "iss": "acme", "aud": "plex"}
		for name, v := range extra {
			if v == nil {
				delete(c, name)
			} else {
				c[name] = v
			}
		}
		return c
	}
	hs := newJWT(t, authsvc.JWTConfig{Algorithm: authsvc.AlgHS256, Secret: hsSecret, Issuer: "acme", Audience: "plex"})
	hsLeeway := newJWT(t, authsvc.JWTConfig{Algorithm: authsvc.AlgHS256, Secret: hsSecret, Leeway: time.Minute})
	hsLater := newJWT(t, authsvc.JWTConfig{Algorithm: authsvc.AlgHS256, Secret: hsSecret,
		Now: func() time.Time { return now.Add(2 * time.Hour) }})
	rsPub, err := authsvc.ParsePublicKeyPEM(pemPublic(t, &k.rsa.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	rs := newJWT(t, authsvc.JWTConfig{Algorithm: authsvc.AlgRS256, PublicKey: rsPub})
	ecPub, err := authsvc.ParsePublicKeyPEM(pemPublic(t, &k.ec.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	es := newJWT(t, authsvc.JWTConfig{Algorithm: authsvc.AlgES256, PublicKey: ecPub})

	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid(nil))
	// Algorithm confusion: HS256 keyed with the RSA public key's PEM, which
	// a naive verifier would feed to HMAC as the secret.
	confused := sign(t, jwt.SigningMethodHS256, pemPublic(t, &k.rsa.PublicKey), valid(nil))

	tests := map[string]struct {
		v      *authsvc.JWT
		token  string
		uid    string
		reason string
	}{
		"hs256 valid":            {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(nil)), uid: "42"},
		"surrounding space":      {v: hs, token: " " + sign(t, jwt.SigningMethodHS256, hsSecret, valid(nil)) + "\n", uid: "42"},
		"rs256 valid":            {v: rs, token: sign(t, jwt.SigningMethodRS256, k.rsa, valid(nil)), uid: "42"},
		"es256 valid":            {v: es, token: sign(t, jwt.SigningMethodES256, k.ec, valid(nil)), uid: "42"},
		"expired":                {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()})), reason: "token expired"},
		"expired within leeway":  {v: hsLeeway, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()})), uid: "42"},
		"expired by clock":       {v: hsLater, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(nil)), reason: "token expired"},
		"missing exp":            {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"exp": nil})), reason: "token has no expiry"},
		"not valid yet":          {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()})), reason: "token not valid yet"},
		"wrong hs key":           {v: hs, token: sign(t, jwt.SigningMethodHS256, otherSecret, valid(nil)), reason: "invalid token"},
		"wrong rsa key":          {v: rs, token: sign(t, jwt.SigningMethodRS256, k.rsaOther, valid(nil)), reason: "invalid token"},
		"wrong ec key":           {v: es, token: sign(t, jwt.SigningMethodES256, k.ecOther, valid(nil)), reason: "invalid token"},
		"hs256 to rs256":         {v: rs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(nil)), reason: "invalid token"},
		"alg confusion":          {v: rs, token: confused, reason: "invalid token"},
		"rs256 to es256":         {v: es, token: sign(t, jwt.SigningMethodRS256, k.rsa, valid(nil)), reason: "invalid token"},
		"es256 to rs256":         {v: rs, token: sign(t, jwt.SigningMethodES256, k.ec, valid(nil)), reason: "invalid token"},
		"alg none to hs256":      {v: hs, token: none, reason: "invalid token"},
		"alg none to rs256":      {v: rs, token: none, reason: "invalid token"},
		"wrong issuer":           {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"iss": "evil"})), reason: "wrong token issuer"},
		"missing issuer":         {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"iss": nil})), reason: "wrong token issuer"},
		"wrong audience":         {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"aud": "other"})), reason: "wrong token audience"},
		"audience in list":       {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"aud": []string{"x", "plex"}})), uid: "42"},
		"missing audience":       {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"aud": nil})), reason: "wrong token audience"},
		"no subject":             {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"sub": nil})), reason: "token has no subject"},
		"subject not a uid":      {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"sub": "a.b"})), reason: "token subject is not a valid uid"},
		"subject of wrong type":  {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"sub": 42})), reason: "invalid token"},
		"garbage":                {v: hs, token: "not.a.jwt", reason: "invalid token"},
		"empty":                  {v: hs, token: "", reason: "missing token"},
		"signature stripped":     {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(nil))[:20] + "..", reason: "invalid token"},
		"exp as string rejected": {v: hs, token: sign(t, jwt.SigningMethodHS256, hsSecret, valid(jwt.MapClaims{"exp": "tomorrow"})), reason: "invalid token"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			uid, err := tc.v.Verify(context.Background(), bus.AuthRequest{Body: tc.token})
			if tc.reason == "" {
				if err != nil || uid != tc.uid {
					t.Fatalf("got %q, %v; want %q", uid, err, tc.uid)
				}
				return
			}
			var refused *authsvc.RefusedError
			if !errors.As(err, &refused) || !errors.Is(err, authsvc.ErrRefused) || refused.Reason != tc.reason {
				t.Fatalf("got %q, %v; want refusal %q", uid, err, tc.reason)
			}
		})
	}
}

func TestNewJWTErrors(t *testing.T) {
	k := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var nilRSA *rsa.PublicKey
	tests := map[string]authsvc.JWTConfig{
		"no algorithm":         {Secret: hsSecret},
		"alg none":             {Algorithm: "none", Secret: hsSecret},
		"unsupported alg":      {Algorithm: "HS512", Secret: hsSecret},
		"lower-case alg":       {Algorithm: "hs256", Secret: hsSecret},
		"no secret":            {Algorithm: authsvc.AlgHS256},
		"short secret":         {Algorithm: authsvc.AlgHS256, Secret: []byte("secret")},
		"hs256 with key":       {Algorithm: authsvc.AlgHS256, Secret: hsSecret, PublicKey: &k.rsa.PublicKey},
		"rs256 without key":    {Algorithm: authsvc.AlgRS256},
		"rs256 nil key":        {Algorithm: authsvc.AlgRS256, PublicKey: nilRSA},
		"rs256 with ec key":    {Algorithm: authsvc.AlgRS256, PublicKey: &k.ec.PublicKey},
		"rs256 private key":    {Algorithm: authsvc.AlgRS256, PublicKey: k.rsa},
		"rs256 small key":      {Algorithm: authsvc.AlgRS256, PublicKey: &small.PublicKey},
		"rs256 with secret":    {Algorithm: authsvc.AlgRS256, PublicKey: &k.rsa.PublicKey, Secret: hsSecret},
		"es256 with rsa key":   {Algorithm: authsvc.AlgES256, PublicKey: &k.rsa.PublicKey},
		"es256 on P-384":       {Algorithm: authsvc.AlgES256, PublicKey: &p384.PublicKey},
		"negative leeway":      {Algorithm: authsvc.AlgHS256, Secret: hsSecret, Leeway: -time.Second},
		"es256 without key":    {Algorithm: authsvc.AlgES256},
		"es256 with hs secret": {Algorithm: authsvc.AlgES256, Secret: hsSecret},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := authsvc.NewJWT(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestJWTOverBus runs the JWT verifier behind the service, as `plex auth` does.
func TestJWTOverBus(t *testing.T) {
	v := newJWT(t, authsvc.JWTConfig{Algorithm: authsvc.AlgHS256, Secret: hsSecret})
	_, client := startService(t, authsvc.Config{}, v)
	good := sign(t, jwt.SigningMethodHS256, hsSecret, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Minute).Unix()})
	if rep := rawAuth(t, client, good); !rep.OK || rep.UID != "u1" {
		t.Fatalf("good token: %+v", rep)
	}
	old := sign(t, jwt.SigningMethodHS256, hsSecret, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(-time.Minute).Unix()})
	if rep := rawAuth(t, client, old); rep.OK || rep.Reason != "token expired" {
		t.Fatalf("expired token: %+v", rep)
	}
}
