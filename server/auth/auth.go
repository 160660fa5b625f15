// Package auth verifies the signed tokens a login carries (docs/PROTOCOL.md
// "Tokens"): JWTs that the application owning the users signs, checked
// here without a round trip to it. Keys come from files, several at once,
// each named by its kid, so that keys rotate without downtime; only the
// algorithm configured for a key is accepted for it.
package auth

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Sentinel errors of Verify. Their text is all a client is told: nothing
// that says which check failed.
var (
	// ErrBadToken: the token is malformed, signed by no configured key,
	// with another algorithm than its key's, for another audience or
	// issuer, without exp or sub, or not valid yet.
	ErrBadToken = errors.New("the token is not valid")
	// ErrTokenExpired: the token was valid but its exp has passed.
	ErrTokenExpired = errors.New("the token has expired")
)

// RoleAdmin is the role claim of a server admin, who holds every room
// power in every room (docs/PROTOCOL.md "Rooms people run").
const RoleAdmin = "admin"

// MaxSubject bounds the sub claim, in bytes.
const MaxSubject = 256

// Identity is what a verified token says about its holder.
type Identity struct {
	Subject string    // sub: the account, as signed
	Name    string    // name: the display nick it asks for; Subject when absent
	Rooms   []string  // rooms: the rooms the account may enter (for private rooms)
	Role    string    // role: for moderation
	Expires time.Time // exp
	Issued  time.Time // iat, zero when absent
	ID      string    // jti, "" when absent: names the token for revoking it
}

// Verifier checks a token. A server always has one; Config.Keys empty
// gives one that refuses every token. Safe from any goroutine.
type Verifier interface {
	Verify(token string) (Identity, error)
}

// RefuseAll is the Verifier that refuses every token: a hub's default
// when no other is configured.
type RefuseAll struct{}

// Verify refuses token.
func (RefuseAll) Verify(string) (Identity, error) { return Identity{}, ErrBadToken }

// Config configures a JWT verifier. The zero value refuses every token.
type Config struct {
	// Keys are the keys tokens may be signed with; a token names one by
	// its kid header (which may be left out when there is only one key).
	Keys []Key
	// Audience, when set, must be in the token's aud.
	Audience string
	// Issuer, when set, must be the token's iss.
	Issuer string
	// Leeway is the clock skew allowed on exp, nbf and iat; 0 means
	// DefaultLeeway, negative none.
	Leeway time.Duration
}

// DefaultLeeway is Config.Leeway's default.
const DefaultLeeway = 10 * time.Second

// JWT verifies tokens with a set of keys that Reload may swap while it
// runs. Safe from any goroutine.
type JWT struct {
	state atomic.Pointer[jwtState]
}

type jwtState struct {
	keys   map[string]Key
	parser *jwt.Parser
}

// New returns a verifier for cfg.
func New(cfg Config) (*JWT, error) {
	v := &JWT{}
	if err := v.Reload(cfg); err != nil {
		return nil, err
	}
	return v, nil
}

// Reload replaces the verifier's keys and checks; tokens verified from now
// on use the new ones. It fails, changing nothing, if two keys share a kid.
func (v *JWT) Reload(cfg Config) error {
	keys := make(map[string]Key, len(cfg.Keys))
	var algs []string
	for _, k := range cfg.Keys {
		if _, dup := keys[k.ID]; dup {
			return fmt.Errorf("auth: two keys have kid %q", k.ID)
		}
		keys[k.ID] = k
		algs = append(algs, k.Alg)
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(algs), jwt.WithExpirationRequired(), jwt.WithLeeway(max(leeway, 0)), jwt.WithIssuedAt()}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.state.Store(&jwtState{keys: keys, parser: jwt.NewParser(opts...)})
	return nil
}

// Keys is how many keys the verifier holds.
func (v *JWT) Keys() int { return len(v.state.Load().keys) }

// claims is the claim set of docs/PROTOCOL.md.
type claims struct {
	jwt.RegisteredClaims
	Name  string   `json:"name,omitempty"`
	Rooms []string `json:"rooms,omitempty"`
	Role  string   `json:"role,omitempty"`
}

// Verify checks token's signature, algorithm, expiry and the configured
// audience and issuer, and returns its identity. Errors are ErrBadToken
// or ErrTokenExpired.
func (v *JWT) Verify(token string) (Identity, error) {
	st := v.state.Load()
	if len(st.keys) == 0 {
		return Identity{}, ErrBadToken
	}
	var c claims
	_, err := st.parser.ParseWithClaims(token, &c, st.keyFor)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Identity{}, ErrTokenExpired
	case err != nil:
		return Identity{}, ErrBadToken
	case c.Subject == "" || len(c.Subject) > MaxSubject || !utf8.ValidString(c.Subject):
		return Identity{}, ErrBadToken
	}
	if len(c.ID) > MaxSubject {
		return Identity{}, ErrBadToken
	}
	id := Identity{Subject: c.Subject, Name: c.Name, Rooms: c.Rooms, Role: c.Role, Expires: c.ExpiresAt.Time, ID: c.ID}
	if id.Name == "" {
		id.Name = c.Subject
	}
	if c.IssuedAt != nil {
		id.Issued = c.IssuedAt.Time
	}
	return id, nil
}

// keyFor picks the key a token names and refuses any algorithm but the
// one configured for it: an RS256 key is never used as an HS256 secret.
func (st *jwtState) keyFor(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := st.keys[kid]
	if !ok && kid == "" && len(st.keys) == 1 {
		for _, only := range st.keys {
			k, ok = only, true
		}
	}
	if !ok || t.Method.Alg() != k.Alg {
		return nil, ErrBadToken
	}
	return k.verify, nil
}

// AccountKey is an account's identity: its subject case-folded and
// composed, so that "Amy" and "amy" are one account.
func AccountKey(subject string) string {
	return norm.NFC.String(cases.Fold().String(subject))
}
