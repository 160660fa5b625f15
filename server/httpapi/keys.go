package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// MinKeyBytes is the shortest API key a key file may hold: 128 bits in
// hex.
const MinKeyBytes = 32

// Key is one API key: its name in logs, metrics and the audit log, the
// SHA-256 of its secret, and whether it may only read.
type Key struct {
	ID       string
	ReadOnly bool
	sum      [sha256.Size]byte
}

// KeySpec names a key file: --api-key [ID=]FILE, or --api-read-key for
// a read-only one. Without ID the key is named by the file's base name.
type KeySpec struct {
	Spec     string
	ReadOnly bool
}

// LoadKeys reads every key file. A file holds the key on its first line
// (at least MinKeyBytes bytes; `parley keys api` writes one).
func LoadKeys(specs []KeySpec) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for _, sp := range specs {
		id, file, named := strings.Cut(sp.Spec, "=")
		if !named {
			file = sp.Spec
			id = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		}
		if id == "" || file == "" {
			return nil, fmt.Errorf("api key %q: the form is [ID=]FILE", sp.Spec)
		}
		if seen[id] {
			return nil, fmt.Errorf("api key %q: two keys are named %q", sp.Spec, id)
		}
		seen[id] = true
		secret, err := ReadSecret(file)
		if err != nil {
			return nil, fmt.Errorf("api key %q: %w", id, err)
		}
		keys = append(keys, Key{ID: id, ReadOnly: sp.ReadOnly, sum: sha256.Sum256(secret)})
	}
	return keys, nil
}

// ReadSecret reads a key or a secret from its file: the first line,
// without spaces around it, at least MinKeyBytes long.
func ReadSecret(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	secret, _, _ := strings.Cut(string(data), "\n")
	secret = strings.TrimSpace(secret)
	if len(secret) < MinKeyBytes {
		return nil, fmt.Errorf("%s holds %d bytes; a key is at least %d", file, len(secret), MinKeyBytes)
	}
	return []byte(secret), nil
}

// keyRing is the keys in force, swapped whole on a reload.
type keyRing struct{ keys atomic.Pointer[[]Key] }

func (r *keyRing) set(keys []Key) { r.keys.Store(&keys) }

// errNoKey and errWrongKey are the two ways a request fails to
// authenticate.
var (
	errNoKey    = errors.New("the request carries no API key (Authorization: Bearer KEY, or X-API-Key: KEY)")
	errWrongKey = errors.New("the API key is not one of the server's")
)

// match finds the key a request presents. It compares SHA-256 sums in
// constant time, and compares with every key, so that the time taken
// says nothing of which key came close.
func (r *keyRing) match(req *http.Request) (Key, error) {
	presented := req.Header.Get("X-API-Key")
	if auth := req.Header.Get("Authorization"); presented == "" && auth != "" {
		scheme, cred, _ := strings.Cut(auth, " ")
		if strings.EqualFold(scheme, "bearer") || strings.EqualFold(scheme, "apikey") {
			presented = strings.TrimSpace(cred)
		}
	}
	if presented == "" {
		return Key{}, errNoKey
	}
	sum := sha256.Sum256([]byte(presented))
	found := -1
	keys := *r.keys.Load()
	for i := range keys {
		if subtle.ConstantTimeCompare(sum[:], keys[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Key{}, errWrongKey
	}
	return keys[found], nil
}
