package authsvc_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plexbus/plex/authsvc"
)

func TestParsePublicKeyPEM(t *testing.T) {
	k := testKeys()
	ecDER, err := x509.MarshalECPrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.ec.PublicKey, k.ec)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	tests := map[string]struct {
		data  []byte
		isRSA bool
		isEC  bool
	}{
		"pkix rsa":             {data: pemPublic(t, &k.rsa.PublicKey), isRSA: true},
		"pkix ec":              {data: pemPublic(t, &k.ec.PublicKey), isEC: true},
		"pkcs1 rsa":            {data: block("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)), isRSA: true},
		"certificate":          {data: block("CERTIFICATE", certDER), isEC: true},
		"after other blocks":   {data: append(block("X-NOTE", []byte("x")), pemPublic(t, &k.rsa.PublicKey)...), isRSA: true},
		"private key rejected": {data: block("EC PRIVATE KEY", ecDER)},
		"not pem":              {data: []byte("hello")},
		"bad der":              {data: block("PUBLIC KEY", []byte("nope"))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			key, err := authsvc.ParsePublicKeyPEM(tc.data)
			_, isRSA := key.(*rsa.PublicKey)
			_, isEC := key.(*ecdsa.PublicKey)
			if !tc.isRSA && !tc.isEC {
				if err == nil {
					t.Fatalf("accepted: %T", key)
				}
				return
			}
			if err != nil || isRSA != tc.isRSA || isEC != tc.isEC {
				t.Fatalf("got %T, %v", key, err)
			}
		})
	}
}

func TestLoadKeyFiles(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "jwt.pub")
	secretFile := filepath.Join(dir, "jwt.secret")
	if err := os.WriteFile(keyFile, pemPublic(t, &k.ec.PublicKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, append(append([]byte{}, hsSecret...), "\r\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := authsvc.LoadPublicKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authsvc.NewJWT(authsvc.JWTConfig{Algorithm: authsvc.AlgES256, PublicKey: key}); err != nil {
		t.Fatal(err)
	}
	secret, err := authsvc.LoadSecretFile(secretFile)
	if err != nil || string(secret) != string(hsSecret) {
		t.Fatalf("secret %q, %v", secret, err)
	}
	if _, err := authsvc.LoadPublicKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing key file accepted")
	}
	if _, err := authsvc.LoadPublicKeyFile(secretFile); err == nil {
		t.Error("secret accepted as a public key")
	}
	if _, err := authsvc.LoadSecretFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing secret file accepted")
	}
}
