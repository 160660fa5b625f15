package transport

import (
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// httpLogEvery is the least time between two of net/http's error lines
// in the server's log: a scanner or a client speaking plain HTTP to an
// HTTPS port makes one per connection.
const httpLogEvery = 10 * time.Second

// httpErrorLog is the web port's http.Server.ErrorLog: net/http's own
// errors (TLS handshakes that fail, mostly) go to the server's slog
// logger, in its format, at most one line per httpLogEvery, the next
// line counting those left out.
func httpErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(&rateLimitedLog{logger: logger, now: time.Now}, "", 0)
}

type rateLimitedLog struct {
	logger  *slog.Logger
	now     func() time.Time
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (l *rateLimitedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < httpLogEvery {
		l.skipped++
		l.mu.Unlock()
		return len(p), nil
	}
	skipped := l.skipped
	l.last, l.skipped = now, 0
	l.mu.Unlock()
	l.logger.Warn("web port", "err", strings.TrimSpace(strings.TrimPrefix(string(p), "http: ")), "similar_left_out", skipped)
	return len(p), nil
}
