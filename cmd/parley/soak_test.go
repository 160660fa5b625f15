package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"parley/codec"
	"parley/server/servertest"
)

// soak selects the long form of the scenarios (make soak).
var soak = os.Getenv("PARLEY_SOAK") != ""

// serverProcess runs `parley serve` from bin on a free loopback port.
type serverProcess struct {
	cmd    *exec.Cmd
	addr   string
	exited chan error
	log    *syncBuffer
}

func startServerProcess(t *testing.T, bin string, args ...string) *serverProcess {
	t.Helper()
	addr := servertest.FixedAddr(t) // the child binds it after this check
	p := &serverProcess{addr: addr, exited: make(chan error, 1), log: &syncBuffer{}}
	// Every test client dials from 127.0.0.1, faster than one address may
	// by default.
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--log-level", "warn", "--max-conn-rate-per-ip", "0"}, args...)...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	servertest.Eventually(t, waitFor, "the server to listen", func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, p.log.String())
		}
		return c.Close()
	})
	return p
}

// member is a logged-in raw connection that reads until bye and reports
// the bye's reason.
type member struct {
	conn net.Conn
	msgs atomic.Int64
	bye  chan codec.Reason
}

func join(addr, nick string) (*member, error) {
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(codec.MustEncode(&codec.Login{Nick: nick})); err != nil {
		return nil, err
	}
	m := &member{conn: conn, bye: make(chan codec.Reason, 1)}
	welcomed := make(chan error, 1)
	go m.read(welcomed)
	select {
	case err := <-welcomed:
		return m, err
	case <-time.After(4 * waitFor):
		return nil, fmt.Errorf("%s: no welcome", nick)
	}
}

var byeType = []byte(`"type":"bye"`)

func (m *member) read(welcomed chan<- error) {
	r := codec.NewReader(m.conn, 0)
	first := true
	for {
		body, err := r.Next()
		if err != nil {
			if first {
				welcomed <- err
			}
			close(m.bye)
			return
		}
		if first {
			first = false
			welcomed <- nil
		}
		if bytes.Contains(body, byeType) {
			var ev codec.Event
			_ = codec.DecodeEvent(body, &ev)
			m.bye <- ev.Reason
			return
		}
		m.msgs.Add(1)
	}
}

// TestShutdownUnderLoad: SIGTERM during a broadcast storm. Every connected
// client gets bye shutdown and the process exits 0 within 5 s.
func TestShutdownUnderLoad(t *testing.T) {
	bin := buildBinary(t)
	srv := startServerProcess(t, bin, "--rate-limit", "0", "--max-outbound", "1MiB")
	// The storm: 4 senders, 1000 messages/s in total to 104 members
	// (about 100,000 deliveries/s); 200/s to 2004 in the long form. Members
	// must be able to read it, or the bye waits behind a backlog they never
	// finish (the server lingers 2s for it, then closes).
	n, interval := 100, 4*time.Millisecond
	if soak {
		n, interval = 2000, 20*time.Millisecond
	}
	members := make([]*member, n)
	for i := range members {
		m, err := join(srv.addr, fmt.Sprint("m", i))
		if err != nil {
			t.Fatal(err)
		}
		members[i] = m
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := 0; s < 4; s++ {
		sender, err := join(srv.addr, fmt.Sprint("storm", s))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := codec.MustEncode(&codec.Say{Body: strings.Repeat("z", 200)})
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := sender.conn.Write(frame); err != nil {
					return
				}
			}
		}()
	}
	// Wait until the storm reaches the members, then stop the server.
	servertest.Eventually(t, waitFor, "the storm to reach the members", func() error {
		if members[0].msgs.Load() == 0 {
			return errors.New("no message yet")
		}
		return nil
	})
	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-srv.exited:
		if err != nil {
			t.Fatalf("server exited with %v\n%s", err, srv.log.String())
		}
	case <-time.After(2 * waitFor): // the server gives up on its sessions after 4 s
		t.Fatalf("server still running %v after SIGTERM\n%s", 2*waitFor, srv.log.String())
	}
	exitTook := time.Since(start)
	close(stop)
	wg.Wait()
	for i, m := range members {
		select {
		case reason, ok := <-m.bye:
			if !ok || reason != codec.ReasonShutdown {
				t.Fatalf("member %d: bye %q (got one: %v)", i, reason, ok)
			}
		case <-time.After(waitFor):
			t.Fatalf("member %d got no bye", i)
		}
	}
	t.Logf("shutdown under load: %d members got bye shutdown; the process exited 0 %v after SIGTERM", n, exitTook)
}

// TestConnectStormProcess opens 10,000 connections to a server process as
// fast as possible (make soak only: the long form of the storm).
func TestConnectStormProcess(t *testing.T) {
	if !soak {
		t.Skip("long form: make soak")
	}
	bin := buildBinary(t)
	srv := startServerProcess(t, bin)
	const n = 10000
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	members := make([]*member, n)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				m, err := join(srv.addr, fmt.Sprint("storm", i))
				if err != nil {
					errs <- err
					return
				}
				members[i] = m
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("connect storm: %d connections to a server process logged in in %v (%.0f/s)", n, took, float64(n)/took.Seconds())
	for _, m := range members {
		m.conn.Close()
	}
}
