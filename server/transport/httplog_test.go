package transport

import (
	"fmt"
	"testing"
)

// TestHTTPErrorLogWarns: each line net/http writes to the web port's
// error log becomes one warning of the one kind, without net/http's
// prefix, for the hub to rate-limit.
func TestHTTPErrorLogWarns(t *testing.T) {
	var got []string
	l := httpErrorLog(func(kind, msg string, attrs ...any) { got = append(got, fmt.Sprint(kind, " ", msg, " ", attrs)) })
	l.Print("http: TLS handshake error from 10.0.0.1:5555: EOF")
	l.Print("http: TLS handshake error from 10.0.0.2:5555: EOF")
	want := "web-port web port [err TLS handshake error from 10.0.0.2:5555: EOF]"
	if len(got) != 2 || got[1] != want {
		t.Fatalf("warnings %q, want two, the last %q", got, want)
	}
}
