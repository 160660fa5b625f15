package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"parley/codec"
)

// TestResumeWaveAfterRestart: clients of a server with --data-dir lose it
// to a restart; while they are away 100 messages are said in the lobby;
// they all reconnect at once, each resuming the lobby where it was, and
// each receives exactly those 100, then recovered true. 200 clients in
// make test, 10,000 in make soak, where the time the wave takes is the
// figure.
func TestResumeWaveAfterRestart(t *testing.T) {
	n := 200
	if soak {
		n = 10000
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--rate-limit", "0", "--max-conns", "0"}
	first := startServerProcess(t, bin, args...)
	talker, err := dialFrames(first.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = talker.Write(codec.MustEncode(&codec.Login{Nick: "talker"}))
	welcome, err := talker.until(codec.TypeWelcome)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // the lobby has history before the restart
		_, _ = talker.Write(codec.MustEncode(&codec.Say{Body: fmt.Sprint("before ", i), Ref: "s"}))
		if _, err := talker.until(codec.TypeAck); err != nil {
			t.Fatal(err)
		}
	}
	since := welcome.Seq + 10
	epoch := welcome.Epoch
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-first.exited; err != nil {
		t.Fatalf("first server: %v\n%s", err, first.log.String())
	}

	second := startServerProcess(t, bin, args...)
	talker, err = dialFrames(second.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = talker.Write(codec.MustEncode(&codec.Login{Nick: "talker"}))
	if _, err := talker.until(codec.TypeWelcome); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("m", 100)
	for range 100 {
		_, _ = talker.Write(codec.MustEncode(&codec.Say{Body: body, Ref: "s"}))
		if _, err := talker.until(codec.TypeAck); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				if err := resumeOnce(second.addr, fmt.Sprint("c", i), since, epoch); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("resume wave: %d clients logged in after a restart and each replayed the 100 messages it missed in %v (%.0f clients/s, %.0f replayed messages/s)",
		n, took, float64(n)/took.Seconds(), float64(n*100)/took.Seconds())
}

// resumeOnce logs in resuming the lobby from since and checks that exactly
// the 100 messages after it come, then recovered true. The connection
// stays open for the test, as a reconnected client's would.
func resumeOnce(addr, nick string, since uint64, epoch string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	_, _ = c.Write(codec.MustEncode(&codec.Login{Nick: nick, Since: &since, Epoch: epoch}))
	r := codec.NewReader(c, 0)
	_ = c.SetReadDeadline(time.Now().Add(2 * waitFor))
	next := since + 1
	for {
		frame, err := r.Next()
		if err != nil {
			return fmt.Errorf("after seq %d: %w", next-1, err)
		}
		var ev codec.Event
		if err := codec.DecodeEvent(frame, &ev); err != nil {
			return err
		}
		switch ev.Type {
		case codec.TypeMsg:
			if ev.Seq != next {
				return fmt.Errorf("seq %d, want %d", ev.Seq, next)
			}
			next++
		case codec.TypeRecover:
			if !ev.Recovered || next != since+101 {
				return fmt.Errorf("recovered %v after %d messages", ev.Recovered, next-since-1)
			}
			return nil
		case codec.TypeError, codec.TypeBye:
			return fmt.Errorf("%s %s %s", ev.Type, ev.Code, ev.Reason)
		}
	}
}

// frameConn is a raw connection with its frame reader.
type frameConn struct {
	net.Conn
	r *codec.Reader
}

func dialFrames(addr string) (*frameConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &frameConn{Conn: c, r: codec.NewReader(c, 0)}, nil
}

// until reads frames until one of type typ.
func (c *frameConn) until(typ string) (codec.Event, error) {
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	for {
		frame, err := c.r.Next()
		if err != nil {
			return codec.Event{}, err
		}
		var ev codec.Event
		if err := codec.DecodeEvent(frame, &ev); err != nil {
			return codec.Event{}, err
		}
		if ev.Type == typ {
			return ev, nil
		}
	}
}
