package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Forged builds the tokens an attacker would try, with keys made here.
type forged struct {
	edPub  ed25519.PublicKey
	edPriv ed25519.PrivateKey
	rsa    *rsa.PrivateKey
}

func newForged(t *testing.T) forged {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return forged{edPub: pub, edPriv: priv, rsa: rk}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	f := newForged(t)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	edKey, _ := PublicKey("ed1", f.edPub)
	rsaKey, _ := PublicKey("rsa1", &f.rsa.PublicKey)
	v, err := New(Config{Keys: []Key{edKey, rsaKey}, Audience: "chat"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := jwt.MapClaims{"sub": "Amy@Example", "name": "amy", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "aud": "chat", "rooms": []string{"ops"}, "role": "mod"}
	with := func(k string, val any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for a, b := range good {
			c[a] = b
		}
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKIX(t, &f.rsa.PublicKey)})
	valid := sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed1", good)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root","exp":9999999999,"aud":"chat"}`)) + "." + parts[2]
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ed1", good)

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"valid EdDSA", valid, nil},
		{"valid RS256", sign(t, jwt.SigningMethodRS256, f.rsa, "rsa1", good), nil},
		{"expired", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed1", with("exp", now.Add(-time.Minute).Unix())), ErrTokenExpired},
		{"within leeway", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed1", with("exp", now.Add(-2*time.Second).Unix())), nil},
		{"wrong key", sign(t, jwt.SigningMethodEdDSA, otherPriv, "ed1", good), ErrBadToken},
		{"alg none", none, ErrBadToken},
		{"HS256 with the RSA public key as secret", sign(t, jwt.SigningMethodHS256, rsaPubPEM, "rsa1", good), ErrBadToken},
		{"RS256 under the Ed25519 kid", sign(t, jwt.SigningMethodRS256, f.rsa, "ed1", good), ErrBadToken},
		{"missing exp", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed1", with("exp", nil)), ErrBadToken},
		{"missing sub", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed1", with("sub", nil)), ErrBadToken},
		{"wrong aud", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed1", with("aud", "other")), ErrBadToken},
		{"not yet valid", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed1", with("nbf", now.Add(time.Hour).Unix())), ErrBadToken},
		{"issued in the future", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed1", with("iat", now.Add(time.Hour).Unix())), ErrBadToken},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed9", good), ErrBadToken},
		{"no kid with two keys", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "", good), ErrBadToken},
		{"tampered payload", tampered, ErrBadToken},
		{"garbage", "not.a.token", ErrBadToken},
		{"empty", "", ErrBadToken},
	}
	for _, c := range cases {
		id, err := v.Verify(c.token)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
			continue
		}
		if err == nil && (id.Subject != "Amy@Example" || id.Name != "amy" || id.Role != "mod" || len(id.Rooms) != 1 || id.Expires.IsZero()) {
			t.Errorf("%s: identity %+v", c.name, id)
		}
	}
}

func mustPKIX(t *testing.T, k any) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestRotation: a token signed with either of two kids is accepted while
// both are configured, and the old one no longer after a reload without it.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"old", "new"} {
		if err := WriteKeyPair(filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")); err != nil {
			t.Fatal(err)
		}
	}
	load := func(names ...string) Config {
		var cfg Config
		for _, n := range names {
			kid, path := ParseKeySpec(filepath.Join(dir, n+".pub"))
			k, err := LoadPublicKey(kid, path)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Keys = append(cfg.Keys, k)
		}
		return cfg
	}
	tokenBy := func(name string) string {
		alg, key, err := LoadSigner(filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := Sign(alg, key, Token{Subject: "amy", KeyID: name, TTL: time.Minute}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	v, err := New(load("old", "new"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"old", "new"} {
		if _, err := v.Verify(tokenBy(n)); err != nil {
			t.Errorf("kid %s: %v", n, err)
		}
	}
	if err := v.Reload(load("new")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tokenBy("old")); !errors.Is(err, ErrBadToken) {
		t.Errorf("old key after rotation: %v", err)
	}
	if _, err := v.Verify(tokenBy("new")); err != nil {
		t.Errorf("new key after rotation: %v", err)
	}
	if err := v.Reload(Config{Keys: append(load("new").Keys, load("new").Keys...)}); err == nil {
		t.Error("two keys with one kid were accepted")
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	long := filepath.Join(dir, "hs.secret")
	_ = os.WriteFile(short, []byte("tooshort\n"), 0o600)
	_ = os.WriteFile(long, []byte(strings.Repeat("s", 40)+"\n"), 0o600)
	if _, err := LoadSecret("x", short); err == nil {
		t.Error("a short secret was accepted")
	}
	kid, path := ParseKeySpec("k1=" + long)
	k, err := LoadSecret(kid, path)
	if err != nil || k.ID != "k1" || k.Alg != AlgHS256 {
		t.Fatalf("%+v %v", k, err)
	}
	v, _ := New(Config{Keys: []Key{k}})
	alg, key, err := LoadSigner(long)
	if err != nil || alg != AlgHS256 {
		t.Fatal(alg, err)
	}
	tok, _ := Sign(alg, key, Token{Subject: "amy", TTL: time.Minute}, time.Now()) // one key: kid may be left out
	if id, err := v.Verify(tok); err != nil || id.Name != "amy" {
		t.Errorf("%+v %v", id, err)
	}
	if _, err := LoadPublicKey("x", long); err == nil {
		t.Error("a secret loaded as a public key")
	}
	var empty JWT
	_ = empty.Reload(Config{})
	if _, err := empty.Verify(tok); !errors.Is(err, ErrBadToken) {
		t.Errorf("no keys: %v", err)
	}
}

// BenchmarkVerify is what a login or refresh costs its loop.
func BenchmarkVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	k, _ := PublicKey("k", pub)
	v, _ := New(Config{Keys: []Key{k}})
	tok, _ := Sign(AlgEdDSA, priv, Token{Subject: "amy", KeyID: "k", TTL: time.Hour}, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
