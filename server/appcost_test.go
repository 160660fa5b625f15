package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"parley/api"
	"parley/codec"
)

// TestAppCosts measures what the application's hooks cost a say, in one
// run, rows side by side (make bench-app; docs/API.md "Costs"): 200
// sessions in 20 rooms of 10, each saying 5 messages a second for 5 s
// (1,000 says/s, 9,000 deliveries/s), with no hook, with a pre-send hook
// that answers at once, one that answers after 50 ms, and with webhooks
// taking every message. It reports say-to-delivery p50/p99/max as
// members see it, and for the webhooks the events delivered. It runs
// under PARLEY_BENCH only: its figures are for the docs, not a test's
// assertions.
func TestAppCosts(t *testing.T) {
	if os.Getenv("PARLEY_BENCH") == "" {
		t.Skip("a measurement: PARLEY_BENCH=1 (make bench-app)")
	}
	now := costEndpoint(t, 0)
	slow := costEndpoint(t, 50*time.Millisecond)
	secretFile, _ := writeSecret(t)
	var delivered atomic.Int64
	sink := eventCounter(t, &delivered)
	rows := []struct {
		name string
		cfg  Config
	}{
		{"no hook", Config{}},
		{"pre-send hook, answers at once", Config{HookURL: now}},
		{"pre-send hook, answers after 50 ms", Config{HookURL: slow}},
		{"webhooks, every message", Config{WebhookURLs: []string{sink}, WebhookSecret: secretFile, WebhookEvents: []string{api.EventMessage}}},
	}
	fmt.Printf("%-36s %8s %10s %8s %8s %8s %8s\n", "row (1,000 says/s, 9,000 deliveries/s)", "says", "delivered", "p50 ms", "p99 ms", "max ms", "events")
	for _, row := range rows {
		delivered.Store(0)
		h, says, n := sayLatency(t, row.cfg)
		fmt.Printf("%-36s %8d %10d %8.2f %8.2f %8.2f %8d\n", row.name, says, n,
			float64(h.ValueAtQuantile(50))/1000, float64(h.ValueAtQuantile(99))/1000, float64(h.Max())/1000, delivered.Load())
	}
}

// costEndpoint is a pre-send hook that allows everything after delay.
func costEndpoint(t *testing.T, delay time.Duration) string {
	return serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if delay > 0 {
			time.Sleep(delay)
		}
		_, _ = w.Write([]byte(`{"action":"allow"}`))
	}))
}

// eventCounter is a webhook receiver that counts events.
func eventCounter(t *testing.T, n *atomic.Int64) string {
	return serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d api.Delivery
		if json.NewDecoder(r.Body).Decode(&d) == nil {
			n.Add(int64(len(d.Events)))
		}
	}))
}

func serveHTTP(t *testing.T, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// sayLatency runs the load on a server with cfg and returns the
// say-to-delivery histogram (microseconds), the says sent and the
// deliveries counted (9 a say when none is lost).
func sayLatency(t *testing.T, cfg Config) (*hdrhistogram.Histogram, int64, int64) {
	const rooms, perRoom, rate, run = 20, 10, 5, 5 * time.Second
	cfg.RateLimit, cfg.RateBurst = 100, 100
	srv := startServer(t, cfg)
	hist := hdrhistogram.New(1, 60_000_000, 3)
	var mu sync.Mutex
	var got int64
	var says atomic.Int64
	var clients []*tclient
	for r := range rooms {
		for m := range perRoom {
			c := loggedIn(t, srv, fmt.Sprintf("r%dm%d", r, m))
			c.joinRoom(fmt.Sprintf("room%d", r))
			clients = append(clients, c)
		}
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, c := range clients {
		readers.Add(1)
		go func(c *tclient) {
			defer readers.Done()
			for {
				select {
				case ev := <-c.events:
					if ev.Type != codec.TypeMsg || ev.Room == "" {
						continue
					}
					sent, err := strconv.ParseInt(ev.Body, 10, 64)
					if err != nil {
						continue
					}
					mu.Lock()
					_ = hist.RecordValue(max(time.Since(time.Unix(0, sent)).Microseconds(), 1))
					got++
					mu.Unlock()
				case <-stop:
					return
				}
			}
		}(c)
	}
	var senders sync.WaitGroup
	deadline := time.Now().Add(run)
	for i, c := range clients {
		senders.Add(1)
		go func(c *tclient, room string, phase time.Duration) {
			defer senders.Done()
			time.Sleep(phase)
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			for time.Now().Before(deadline) {
				<-tick.C
				_, _ = c.conn.Write(codec.MustEncode(&codec.Say{Room: room, Body: strconv.FormatInt(time.Now().UnixNano(), 10)}))
				says.Add(1)
			}
		}(c, fmt.Sprintf("room%d", i/perRoom), time.Duration(i)*time.Second/time.Duration(rate*len(clients)))
	}
	senders.Wait()
	time.Sleep(time.Second) // the last deliveries
	close(stop)
	readers.Wait()
	return hist, says.Load(), got
}
