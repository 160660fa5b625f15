// Package poll is the one wait of the tests that poll what they cannot
// be told: a screen, an output, a count in another process. It imports
// nothing of Parley, so every package's tests can use it (servertest
// re-exports it as servertest.Eventually).
package poll

import (
	"testing"
	"time"
)

// Every is how often Until checks its condition.
const Every = 10 * time.Millisecond

// Until checks cond every Every until it returns nil, and fails the test
// with what and cond's last error if within passes first.
func Until(tb testing.TB, within time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waiting %s for %s: %v", within, what, err)
		}
		time.Sleep(Every)
	}
}
