package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"parley/codec"
	"parley/server/servertest"
)

// TestHTTPFloodLeavesLogins: a server process with 400 descriptors is
// flooded on its web port with 350 connections that send nothing or one
// keep-alive GET /. Every HTTP connection counts against --max-conns from
// its accept, and those that have not become WebSockets against
// --max-http-conns (a share of --max-conns): past it they get a bare 503
// at once, so a login on the TCP port still succeeds during the flood.
func TestHTTPFloodLeavesLogins(t *testing.T) {
	bin := limitedBinary(t, buildBinary(t), 400)
	wsAddr := servertest.FixedAddr(t)
	p := startServerProcess(t, bin, "--ws-addr", wsAddr)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	refused := 0
	for i := 0; i < 350; i++ {
		c, err := net.DialTimeout("tcp", wsAddr, waitFor)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 1 {
			continue // holds a descriptor without a byte
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", wsAddr)
		_ = c.SetReadDeadline(time.Now().Add(waitFor))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("350 HTTP connections on a server with 400 descriptors, none refused")
	}
	m, err := join(p.addr, "during")
	if err != nil {
		t.Fatalf("a TCP login during the HTTP flood: %v\n%s", err, p.log.String())
	}
	m.conn.Close()
}

// TestAckedSaysSurviveSIGKILL: with --data-dir, every say acked before the
// server process is killed (SIGKILL, no chance to flush) is in the room's
// history after a restart: an ack means stored.
func TestAckedSaysSurviveSIGKILL(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--rate-limit", "0"}
	first := startServerProcess(t, bin, args...)
	talker, err := dialFrames(first.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = talker.Write(codec.MustEncode(&codec.Login{Nick: "talker"}))
	if _, err := talker.until(codec.TypeWelcome); err != nil {
		t.Fatal(err)
	}
	// A writer keeps 32 says in flight; the reader records what is acked.
	var mu sync.Mutex
	acked := map[string]uint64{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := talker.Write(codec.MustEncode(&codec.Say{Body: fmt.Sprint("m", i), Ref: fmt.Sprint(i)})); err != nil {
				return
			}
			for {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if i-n < 32 {
					break
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Microsecond):
				}
			}
		}
	}()
	_ = talker.SetReadDeadline(time.Now().Add(waitFor))
	for {
		body, err := talker.r.Next()
		if err != nil {
			t.Fatal(err)
		}
		var ev codec.Event
		if err := codec.DecodeEvent(body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == codec.TypeError {
			t.Fatalf("say %s: %s %s", ev.Ref, ev.Code, ev.Message)
		}
		if ev.Type != codec.TypeAck {
			continue
		}
		mu.Lock()
		acked["m"+ev.Ref] = ev.Seq
		n := len(acked)
		mu.Unlock()
		if n == 500 {
			break
		}
	}
	// Killed in the middle of the stream: says are in flight.
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	close(stop)
	talker.Close()
	wg.Wait()

	second := startServerProcess(t, bin, args...)
	reader, err := dialFrames(second.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = reader.Write(codec.MustEncode(&codec.Login{Nick: "reader"}))
	if _, err := reader.until(codec.TypeWelcome); err != nil {
		t.Fatal(err)
	}
	kept := map[string]uint64{}
	var before *uint64
	for {
		limit := 100
		_, _ = reader.Write(codec.MustEncode(&codec.History{Before: before, Limit: &limit, Ref: "h"}))
		page, err := reader.until(codec.TypeHistory)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Msgs {
			kept[m.Body] = m.Seq
		}
		if !page.More || len(page.Msgs) == 0 {
			break
		}
		oldest := page.Msgs[0].Seq
		before = &oldest
	}
	for body, seq := range acked {
		if got, ok := kept[body]; !ok || got != seq {
			t.Errorf("%s was acked as seq %d; after SIGKILL and restart the history has it as %d (%v)", body, seq, got, ok)
		}
	}
	t.Logf("%d says acked before SIGKILL, %d messages in the history after", len(acked), len(kept))
}
