package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"parley/codec"
	"parley/server/auth"
)

// maskedPings is n masked 125-byte WebSocket pings.
func maskedPings(n int) []byte {
	payload := []byte(strings.Repeat("p", 125))
	var out []byte
	for range n {
		h := ws.Header{Fin: true, OpCode: ws.OpPing, Masked: true, Mask: ws.NewMask(), Length: 125}
		var sb strings.Builder
		_ = ws.WriteHeader(&sb, h)
		p := append([]byte(nil), payload...)
		ws.Cipher(p, h.Mask, 0)
		out = append(append(out, sb.String()...), p...)
	}
	return out
}

// 1: WebSocket connections that send pings flat out and never read: one
// before login, then eight logged in.
func wsPingFlood(bin string) {
	t := start(bin, "--ws-addr", "WS")
	defer t.stop()
	pings := maskedPings(64)
	for _, loggedIn := range []int{0, 8} {
		n := max(loggedIn, 1)
		var sent atomic.Int64
		var closedIn []time.Duration
		var mu sync.Mutex
		measure(t, 13*time.Second, func(stop <-chan struct{}) {
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, _, _, err := ws.Dialer{Timeout: 5 * time.Second}.Dial(context.Background(), "ws://"+t.wsAddr+"/ws")
					if err != nil {
						fmt.Println("dial:", err)
						return
					}
					defer conn.Close()
					if loggedIn > 0 {
						login := []byte(fmt.Sprintf(`{"type":"login","nick":"pinger%d"}`, i))
						h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: int64(len(login))}
						_ = ws.WriteHeader(conn, h)
						ws.Cipher(login, h.Mask, 0)
						_, _ = conn.Write(login)
					}
					go func() { <-stop; conn.Close() }()
					begin := time.Now()
					for {
						if _, err := conn.Write(pings); err != nil {
							mu.Lock()
							closedIn = append(closedIn, time.Since(begin))
							mu.Unlock()
							return
						}
						sent.Add(64)
					}
				}()
			}
			wg.Wait()
		})
		fmt.Printf("row 1, %d connection(s), logged in: %v: %d pings written; closed by the server after %v\n\n", n, loggedIn > 0, sent.Load(), closedIn)
	}
}

// 2: 10,000 keep-alive GET / on the web port from 200 addresses, and a
// TCP login meanwhile.
func httpFlood(bin string) {
	t := start(bin, "--ws-addr", "WS")
	defer t.stop()
	var ok200, refused, failed atomic.Int64
	var conns sync.Map
	var loginOK string
	measure(t, 20*time.Second, func(stop <-chan struct{}) {
		eachAddress(func(w int) {
			for i := range 50 {
				c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+w))}}).Dial("tcp", t.wsAddr)
				if err != nil {
					failed.Add(1)
					continue
				}
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", t.wsAddr)
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				switch {
				case err != nil:
					failed.Add(1)
				case resp.StatusCode == 200:
					ok200.Add(1)
					conns.Store(fmt.Sprint(w, i), c) // kept alive, idle
					continue
				default:
					refused.Add(1)
				}
				c.Close()
			}
		})
		start := time.Now()
		c, _, err := login(t.addr, "during", 0, nil)
		if err != nil {
			loginOK = "failed: " + err.Error()
		} else {
			loginOK = fmt.Sprintf("welcome in %v", time.Since(start).Round(time.Microsecond))
			c.Close()
		}
		fmt.Printf("server descriptors with the flood's connections open: %d\n", t.fds())
	})
	conns.Range(func(_, v any) bool { v.(net.Conn).Close(); return true })
	fmt.Printf("row 2: 10,000 GET / from 200 addresses: %d answered 200 and kept alive, %d refused (503 or 429), %d failed; a TCP login during the flood: %s\n\n",
		ok200.Load(), refused.Load(), failed.Load(), loginOK)
}

// 3: 2,000 connections from 200 addresses each join 64 new rooms, say
// one 4 KB message in each, and drop.
func manyRooms(bin string) {
	t := start(bin, "--admin-addr", "ADMIN")
	defer t.stop()
	var created, refusedRate, refusedRooms atomic.Int64
	body := strings.Repeat("r", 4000)
	measure(t, 120*time.Second, func(stop <-chan struct{}) {
		eachAddress(func(w int) {
			for i := range 10 {
				c, _, err := login(t.addr, fmt.Sprintf("c%d-%d", w, i), w+1, nil)
				if err != nil {
					continue
				}
				for j := range 64 {
					room := fmt.Sprintf("r%d-%d-%d", w, i, j)
					_ = c.send(&codec.Join{Room: room, Ref: "j"})
					ev, err := c.until(func(ev codec.Event) bool { return ev.Ref == "j" })
					if err != nil {
						break
					}
					if ev.Type != codec.TypeAck {
						if ev.Code == codec.CodeTooManyRooms {
							refusedRooms.Add(1)
						} else {
							refusedRate.Add(1)
						}
						continue
					}
					created.Add(1)
					_ = c.send(&codec.Say{Room: room, Body: body, Ref: "s"})
					_, _ = c.until(func(ev codec.Event) bool { return ev.Ref == "s" })
				}
				c.Close()
			}
		})
	})
	fmt.Printf("row 3: rooms created %d, joins refused for the creation budget %d, for --max-rooms %d; the server now keeps %.0f rooms, %.0f history bytes (cap 256 MiB), %.0f messages evicted\n\n",
		created.Load(), refusedRate.Load(), refusedRooms.Load(), t.metric("parley_rooms"), t.metric("parley_history_bytes"), t.metric("parley_history_evicted_messages_total"))
}

// 4: a lobby holding 1,000 messages of 4 KB; 1,000 fresh logins from 200
// addresses, each resuming the lobby from seq 1.
func resumeStorm(bin string) {
	t := start(bin, "--admin-addr", "ADMIN")
	defer t.stop()
	body := strings.Repeat("h", 4000)
	epoch := fill(t.addr, "", body, 1000)
	var bytesIn atomic.Int64
	var recovered, lost atomic.Int64
	sent0 := t.metric("parley_sent_bytes_total")
	measure(t, 120*time.Second, func(stop <-chan struct{}) {
		eachAddress(func(w int) {
			for i := range 5 {
				one := uint64(1)
				c, err := dialFrom(t.addr, w+1)
				if err != nil {
					continue
				}
				_ = c.send(&codec.Login{Nick: fmt.Sprintf("s%d-%d", w, i), Since: &one, Epoch: epoch})
				ev, err := c.until(func(ev codec.Event) bool { return ev.Type == codec.TypeRecover })
				if err == nil && ev.Recovered {
					recovered.Add(1)
				} else {
					lost.Add(1)
				}
				c.Close()
			}
		})
		bytesIn.Store(int64(t.metric("parley_sent_bytes_total") - sent0))
	})
	fmt.Printf("row 4: 1,000 one-frame resumes over a 4 MB lobby: %d recovered, %d recovered false; the server sent them %.1f MB in all (%.1f KB a login)\n\n",
		recovered.Load(), lost.Load(), float64(bytesIn.Load())/1e6, float64(bytesIn.Load())/1e3/1000)
}

// fill says n messages in room from 10 talkers within the default rate,
// and returns the room's epoch.
func fill(addr, room, body string, n int) string {
	var epoch string
	var wg sync.WaitGroup
	for k := range 10 {
		c, w, err := login(addr, fmt.Sprint("talker", k), 0, nil)
		if err != nil {
			panic(err)
		}
		epoch = w.Epoch
		if room != "" {
			_ = c.send(&codec.Join{Room: room, Ref: "j"})
			_, _ = c.until(func(ev codec.Event) bool { return ev.Ref == "j" })
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for range n / 10 {
				_ = c.send(&codec.Say{Room: room, Body: body, Ref: "s"})
				_, _ = c.until(func(ev codec.Event) bool { return ev.Ref == "s" })
				time.Sleep(25 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return epoch
}

// 5: 100 members paging a room's history (100 messages of 600 B) flat out.
func historyFlood(bin string) {
	t := start(bin, "--admin-addr", "ADMIN")
	defer t.stop()
	fill(t.addr, "hist", strings.Repeat("m", 600), 100)
	var pages, limited atomic.Int64
	var members []*client
	for i := range 100 {
		c, _, err := login(t.addr, fmt.Sprint("pager", i), 1+i%200, nil)
		if err != nil {
			panic(err)
		}
		_ = c.send(&codec.Join{Room: "hist", Ref: "j"})
		_, _ = c.until(func(ev codec.Event) bool { return ev.Ref == "j" })
		members = append(members, c)
	}
	sent0 := t.metric("parley_sent_bytes_total")
	limit := codec.HistoryPage
	var req []byte
	for range 16 { // 16 requests a write
		req = append(req, codec.MustEncode(&codec.History{Room: "hist", Limit: &limit, Ref: "h"})...)
	}
	measure(t, 10*time.Second, func(stop <-chan struct{}) {
		floodAndCount(members, func(int) []byte { return req }, `{"type":"history"`, &pages, &limited, stop)
	})
	fmt.Printf("row 5: 100 members paging flat out for 10 s: %d pages sent (%.1f MB), %d rate_limited answers\n\n",
		pages.Load(), (t.metric("parley_sent_bytes_total")-sent0)/1e6, limited.Load())
}

// 6: 10 connections sending bursts of 200 pings every 1.1 s.
func burstFlood(bin string) {
	t := start(bin)
	defer t.stop()
	var closedAfter []time.Duration
	var mu sync.Mutex
	measure(t, 30*time.Second, func(stop <-chan struct{}) {
		var wg sync.WaitGroup
		burst := []byte{}
		for range 200 {
			burst = append(burst, codec.MustEncode(&codec.Ping{})...)
		}
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, _, err := login(t.addr, fmt.Sprint("burster", i), 1+i, nil)
				if err != nil {
					return
				}
				defer c.Close()
				begin := time.Now()
				bye := make(chan struct{})
				go func() {
					_, _ = c.until(func(ev codec.Event) bool { return ev.Type == codec.TypeBye })
					close(bye)
				}()
				for {
					_, _ = c.Write(burst)
					select {
					case <-bye:
						mu.Lock()
						closedAfter = append(closedAfter, time.Since(begin).Round(100*time.Millisecond))
						mu.Unlock()
						return
					case <-stop:
						return
					case <-time.After(1100 * time.Millisecond):
					}
				}
			}()
		}
		wg.Wait()
	})
	fmt.Printf("row 6: 10 connections, 200 frames every 1.1 s: closed with bye after %v\n\n", closedAfter)
}

// 7: 200 accounts sending valid refreshes flat out.
func refreshFlood(bin string) {
	dir, _ := os.MkdirTemp("", "attacks-")
	defer os.RemoveAll(dir)
	key := filepath.Join(dir, "k")
	if err := auth.WriteKeyPair(key+".key", key+".pub"); err != nil {
		panic(err)
	}
	// optional: the bystander logs in as a guest, the attackers with tokens.
	t := start(bin, "--auth-key", key+".pub", "--auth", "optional", "--admin-addr", "ADMIN")
	defer t.stop()
	alg, priv, err := auth.LoadSigner(key + ".key")
	if err != nil {
		panic(err)
	}
	token := func(i int) string {
		tok, err := auth.Sign(alg, priv, auth.Token{Subject: fmt.Sprint("u", i), Name: fmt.Sprint("acct", i), KeyID: "k", TTL: time.Hour}, time.Now())
		if err != nil {
			panic(err)
		}
		return tok
	}
	var acks, limited atomic.Int64
	var members []*client
	for i := range 200 {
		c, _, err := login(t.addr, "", 1+i, func(l *codec.Login) { l.Token = token(i) })
		if err != nil {
			panic(err)
		}
		members = append(members, c)
	}
	measure(t, 10*time.Second, func(stop <-chan struct{}) {
		floodAndCount(members, func(i int) []byte {
			var req []byte
			for range 16 { // 16 requests a write
				req = append(req, codec.MustEncode(&codec.Refresh{Token: token(i), Ref: "r"})...)
			}
			return req
		}, `{"type":"ack"`, &acks, &limited, stop)
	})
	fmt.Printf("row 7: 200 accounts refreshing flat out for 10 s: %d refreshes done, %d rate_limited answers\n\n", acks.Load(), limited.Load())
}

// floodAndCount has each member write its requests (req(i)) flat out until
// stop, and counts the answers that start with okPrefix and the
// rate_limited ones, until every connection is closed.
func floodAndCount(members []*client, req func(i int) []byte, okPrefix string, ok, limited *atomic.Int64, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for i, c := range members {
		batch := req(i)
		wg.Add(2)
		go func() { // writes flat out
			defer wg.Done()
			for {
				select {
				case <-stop:
					c.Close()
					return
				default:
				}
				if _, err := c.Write(batch); err != nil {
					return
				}
			}
		}()
		go func() { // reads everything
			defer wg.Done()
			for {
				_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
				body, err := c.r.Next()
				if err != nil {
					return
				}
				switch {
				case strings.HasPrefix(string(body), okPrefix):
					ok.Add(1)
				case strings.Contains(string(body), `"rate_limited"`):
					limited.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}

// eachAddress runs fn for each of 200 source addresses at once, and
// waits for all of them.
func eachAddress(fn func(w int)) {
	var wg sync.WaitGroup
	for w := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w)
		}()
	}
	wg.Wait()
}
