package transport

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestHTTPErrorLogIsRateLimited: net/http's error lines reach the
// server's slog logger in its format, one per httpLogEvery, the next
// counting those left out.
func TestHTTPErrorLogIsRateLimited(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	l := &rateLimitedLog{logger: slog.New(slog.NewJSONHandler(&out, nil)), now: func() time.Time { return now }}
	for range 5 {
		l.Write([]byte("http: TLS handshake error from 10.0.0.1:5555: EOF\n"))
		now = now.Add(time.Second)
	}
	now = now.Add(httpLogEvery)
	l.Write([]byte("http: TLS handshake error from 10.0.0.2:5555: EOF\n"))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], `"err":"TLS handshake error from 10.0.0.1:5555: EOF"`) || !strings.Contains(lines[0], `"similar_left_out":0`) {
		t.Fatalf("first line %s", lines[0])
	}
	if !strings.Contains(lines[1], `"similar_left_out":4`) || !strings.Contains(lines[1], "10.0.0.2") {
		t.Fatalf("second line %s", lines[1])
	}
}
