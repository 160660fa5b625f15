package transport

import (
	"log"
	"strings"
)

// httpErrorLog is the web port's http.Server.ErrorLog: net/http's own
// errors (TLS handshakes that fail, mostly; a scanner or a client
// speaking plain HTTP to an HTTPS port makes one per connection) go to
// warn, the hub's rate-limited warning (hub.WarnLimited: one line per
// kind and interval, the next counting those left out), in the server's
// log format.
func httpErrorLog(warn func(kind, msg string, attrs ...any)) *log.Logger {
	return log.New(warnWriter(warn), "", 0)
}

// warnWriter turns each line net/http writes into a warning.
type warnWriter func(kind, msg string, attrs ...any)

func (w warnWriter) Write(p []byte) (int, error) {
	w("web-port", "web port", "err", strings.TrimSpace(strings.TrimPrefix(string(p), "http: ")))
	return len(p), nil
}
