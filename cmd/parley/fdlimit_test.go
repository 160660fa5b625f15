package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"parley/codec"
	"parley/server/servertest"
)

// limitedBinary wraps bin in a script that lowers the open-file limit of
// the process to n (soft and hard, so that serve cannot raise it).
func limitedBinary(t *testing.T, bin string, n int) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "parley-limited")
	body := "#!/bin/sh\nulimit -n " + strconv.Itoa(n) + " || exit 3\nexec " + bin + " \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestDescriptorExhaustion: a server process with 300 descriptors is
// flooded with 400 idle connections from one address. With the derived
// --max-conns it refuses those over it with bye server_full; with
// --max-conns set above what the descriptors allow, accept fails with
// EMFILE, and the server backs off and retries. Either way it keeps
// serving, logs in a new user once the flood ends, and exits 0 on SIGTERM.
func TestDescriptorExhaustion(t *testing.T) {
	bin := limitedBinary(t, buildBinary(t), 300)
	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T, p *serverProcess, conns []net.Conn)
	}{
		{"derived max-conns", nil, func(t *testing.T, _ *serverProcess, conns []net.Conn) {
			if r := byeOf(conns[len(conns)-1]); r != codec.ReasonServerFull {
				t.Fatalf("the last connection got bye %q, want server_full", r)
			}
		}},
		{"max-conns above the descriptors", []string{"--max-conns", "1000"}, func(t *testing.T, p *serverProcess, _ []net.Conn) {
			// Descriptors run out in accept or when gnet duplicates an
			// accepted one; both back off or drop, and say so.
			servertest.Eventually(t, waitFor, "descriptor exhaustion logged", func() error {
				if !strings.Contains(p.log.String(), "too many open files") {
					return fmt.Errorf("log:\n%s", p.log.String())
				}
				return nil
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startServerProcess(t, bin, tc.args...)
			var conns []net.Conn
			for i := 0; i < 400; i++ {
				c, err := net.DialTimeout("tcp", p.addr, waitFor)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				defer c.Close()
				conns = append(conns, c)
			}
			tc.check(t, p, conns)
			select {
			case err := <-p.exited:
				t.Fatalf("the server exited during the flood: %v\n%s", err, p.log.String())
			default:
			}
			for _, c := range conns {
				c.Close()
			}
			// The server frees the descriptors as it sees the closes: until
			// then a new connection may still be dropped, and is retried.
			var m *member
			servertest.Eventually(t, 2*waitFor, "a login after the flood", func() error {
				var err error
				if m, err = join(p.addr, "after"); err != nil {
					return fmt.Errorf("%v\n%s", err, p.log.String())
				}
				return nil
			})
			m.conn.Close()
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-p.exited:
				if err != nil {
					t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log.String())
				}
			case <-time.After(2 * waitFor):
				t.Fatal("no exit after SIGTERM")
			}
		})
	}
}

// byeOf reads the first frame of c and returns its bye reason, or "".
func byeOf(c net.Conn) codec.Reason {
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	body, err := codec.NewReader(c, 0).Next()
	if err != nil {
		return ""
	}
	var ev codec.Event
	if codec.DecodeEvent(body, &ev) != nil || ev.Type != codec.TypeBye {
		return ""
	}
	return ev.Reason
}
