package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The algorithms a key may be for.
const (
	AlgEdDSA = "EdDSA" // Ed25519, the default: nodes hold public keys only
	AlgRS256 = "RS256"
	AlgHS256 = "HS256" // a shared secret: whoever verifies can also sign
)

// MinSecret is the shortest HS256 secret accepted, in bytes.
const MinSecret = 32

// Key is one key tokens may be signed with.
type Key struct {
	ID     string // the kid tokens name it by
	Alg    string // the one algorithm accepted for it
	verify any    // ed25519.PublicKey, *rsa.PublicKey or []byte
}

// ParseKeySpec splits a flag value "[KID=]FILE": KID defaults to the
// file's name without its extension.
func ParseKeySpec(spec string) (kid, path string) {
	if k, p, ok := strings.Cut(spec, "="); ok && k != "" && !strings.ContainsRune(k, filepath.Separator) {
		return k, p
	}
	base := filepath.Base(spec)
	return strings.TrimSuffix(base, filepath.Ext(base)), spec
}

// LoadPublicKey reads a PEM public key (PKIX): Ed25519 gives an EdDSA
// key, RSA (2048 bits at least) an RS256 key.
func LoadPublicKey(kid, path string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return Key{}, fmt.Errorf("%s: not a PEM file", path)
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return Key{}, fmt.Errorf("%s is a private key: give the public key (parley keygen writes it as .pub); the private key signs tokens and stays with the application", path)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", path, err)
	}
	switch pk := pub.(type) {
	case ed25519.PublicKey:
		return Key{ID: kid, Alg: AlgEdDSA, verify: pk}, nil
	case *rsa.PublicKey:
		if pk.N.BitLen() < 2048 {
			return Key{}, fmt.Errorf("%s: an RSA key must have 2048 bits or more", path)
		}
		return Key{ID: kid, Alg: AlgRS256, verify: pk}, nil
	}
	return Key{}, fmt.Errorf("%s: a public key must be Ed25519 or RSA", path)
}

// LoadSecret reads an HS256 secret: the file's bytes, a trailing newline
// trimmed, at least MinSecret of them.
func LoadSecret(kid, path string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	secret := []byte(strings.TrimRight(string(data), "\r\n"))
	if len(secret) < MinSecret {
		return Key{}, fmt.Errorf("%s: an HS256 secret must be %d bytes or more", path, MinSecret)
	}
	return Key{ID: kid, Alg: AlgHS256, verify: secret}, nil
}

// PublicKey makes a Key of a public key or secret held in memory (tests,
// embedding).
func PublicKey(kid string, key any) (Key, error) {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return Key{ID: kid, Alg: AlgEdDSA, verify: k}, nil
	case *rsa.PublicKey:
		return Key{ID: kid, Alg: AlgRS256, verify: k}, nil
	case []byte:
		if len(k) < MinSecret {
			return Key{}, fmt.Errorf("an HS256 secret must be %d bytes or more", MinSecret)
		}
		return Key{ID: kid, Alg: AlgHS256, verify: k}, nil
	}
	return Key{}, errors.New("a key must be Ed25519, RSA or an HS256 secret")
}

// WriteKeyPair writes a new Ed25519 key pair: the private key (PKCS #8
// PEM, mode 0600) to privPath and the public key (PKIX PEM) to pubPath.
func WriteKeyPair(privPath, pubPath string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if err := writeNew(privPath, "PRIVATE KEY", privDER, 0o600); err != nil {
		return err
	}
	return writeNew(pubPath, "PUBLIC KEY", pubDER, 0o644)
}

func writeNew(path, kind string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: kind, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadSigner reads a private key for signing tokens: PKCS #8 Ed25519 or
// RSA PEM, or else an HS256 secret.
func LoadSigner(path string) (alg string, key crypto.PrivateKey, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			if rk, rerr := x509.ParsePKCS1PrivateKey(block.Bytes); rerr == nil {
				return AlgRS256, rk, nil
			}
			return "", nil, fmt.Errorf("%s: %w", path, err)
		}
		switch k.(type) {
		case ed25519.PrivateKey:
			return AlgEdDSA, k, nil
		case *rsa.PrivateKey:
			return AlgRS256, k, nil
		}
		return "", nil, fmt.Errorf("%s: a private key must be Ed25519 or RSA", path)
	}
	k, err := LoadSecret("", path)
	if err != nil {
		return "", nil, err
	}
	return AlgHS256, k.verify, nil
}

// Token is what Sign puts in a token besides exp and iat.
type Token struct {
	Subject  string
	Name     string
	Rooms    []string
	Role     string
	Audience string
	Issuer   string
	KeyID    string
	TTL      time.Duration
	ID       string // jti: names the token, for revoking it alone
}

// Sign makes a token signed with key (from LoadSigner) for alg. For
// development and scripts: production tokens come from the application
// that owns the users.
func Sign(alg string, key crypto.PrivateKey, t Token, now time.Time) (string, error) {
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return "", fmt.Errorf("auth: unknown algorithm %q", alg)
	}
	c := claims{Name: t.Name, Rooms: t.Rooms, Role: t.Role}
	c.Subject = t.Subject
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(t.TTL))
	c.Issuer = t.Issuer
	c.ID = t.ID
	if t.Audience != "" {
		c.Audience = jwt.ClaimStrings{t.Audience}
	}
	tok := jwt.NewWithClaims(method, c)
	if t.KeyID != "" {
		tok.Header["kid"] = t.KeyID
	}
	return tok.SignedString(key)
}
