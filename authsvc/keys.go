package authsvc

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ParsePublicKeyPEM parses the first public key in PEM data: a PKIX
// "PUBLIC KEY", a PKCS #1 "RSA PUBLIC KEY" or the key of a "CERTIFICATE".
// The result is an *rsa.PublicKey, *ecdsa.PublicKey or another key type
// crypto/x509 knows; NewJWT checks that it fits the algorithm.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("authsvc: no public key found in PEM data")
		}
		switch block.Type {
		case "PUBLIC KEY":
			key, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("authsvc: parse public key: %w", err)
			}
			return key, nil
		case "RSA PUBLIC KEY":
			key, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("authsvc: parse RSA public key: %w", err)
			}
			return key, nil
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("authsvc: parse certificate: %w", err)
			}
			return cert.PublicKey, nil
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			return nil, fmt.Errorf("authsvc: PEM block %q is a private key; give the verifier the public key only", block.Type)
		}
	}
}

// LoadPublicKeyFile reads a PEM file and parses it with ParsePublicKeyPEM.
func LoadPublicKeyFile(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authsvc: read public key: %w", err)
	}
	key, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return key, nil
}

// LoadSecretFile reads an HS256 shared secret from a file, without the
// trailing newline editors add.
func LoadSecretFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authsvc: read secret: %w", err)
	}
	return bytes.TrimRight(data, "\r\n"), nil
}
