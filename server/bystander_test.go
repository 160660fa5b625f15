package server

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"parley/codec"
)

// TestConnRatePerIP: one address opening connections faster than the
// rate gets bye conn_rate beyond the burst and what the rate refilled.
func TestConnRatePerIP(t *testing.T) {
	srv := startServer(t, Config{ConnRatePerIP: 5})
	full := 0
	start := time.Now()
	for i := 0; i < 20; i++ {
		c := dial(t, srv)
		c.send(&codec.Login{Nick: fmt.Sprint("u", i)})
		if ev := c.next(); ev.Type == codec.TypeBye {
			if ev.Reason != codec.ReasonConnRate {
				t.Fatalf("bye %s", ev.Reason)
			}
			full++
		}
	}
	// The burst is 10; the rate refills 5 a second meanwhile.
	allowed := 10 + int(5*time.Since(start).Seconds()+1)
	if full < 1 || full < 20-allowed {
		t.Fatalf("%d of 20 fast connections refused, want at least %d (burst 10, 5/s for %v)", full, 20-allowed, time.Since(start))
	}
}

// pingMedian is the median round trip of n pings from c, a client of srv.
func pingMedian(c *tclient, srv *Server, n int) time.Duration {
	c.t.Helper()
	rtts := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		c.send(&codec.Ping{})
		awaitWhileBusy(c.t, c, srv, codec.TypePong)
		rtts = append(rtts, time.Since(start))
		time.Sleep(5 * time.Millisecond)
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return rtts[n/2]
}

// abuser sends the frames make returns at four times the default frame
// rate until stop closes, except while paused is set.
func abuser(t *testing.T, srv *Server, nick string, stop <-chan struct{}, paused *atomic.Bool, wg *sync.WaitGroup, make func(i int) codec.Message) {
	c := loggedIn(t, srv, nick)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				if paused.Load() {
					continue
				}
				if _, err := c.conn.Write(codec.MustEncode(make(i))); err != nil {
					return
				}
			}
		}
	}()
}

// TestBystanderLatencyUnderAbuse: with the default limits, 1,000 users
// online and twelve clients abusing who, joins and direct messages at
// four times the frame rate, the abusers are held back by flood control
// and a bystander's every ping is answered. Under make soak (PARLEY_SOAK)
// its ping round trip must also stay within a ratio of its idle round
// trip: a latency ratio depends on what else loads the machine, so it is
// measured there, not in make test.
func TestBystanderLatencyUnderAbuse(t *testing.T) {
	// The default flood limits; 1,000 logins take minutes on a loaded
	// machine with the race detector, so nobody may time out meanwhile.
	srv := startServer(t, Config{IdleTimeout: time.Hour, Heartbeat: time.Hour})
	bystander := loggedIn(t, srv, "bystander")
	for i := 0; i < 1000; i++ {
		dial(t, srv).send(&codec.Login{Nick: fmt.Sprint("user", i)})
	}
	reaches(t, "every login", 1001, func() int { return srv.Stats().Online })
	loggedIn(t, srv, "victim")
	stop := make(chan struct{})
	var paused atomic.Bool
	paused.Store(true)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		abuser(t, srv, fmt.Sprint("who", i), stop, &paused, &wg, func(int) codec.Message { return &codec.Who{} })
		abuser(t, srv, fmt.Sprint("toggle", i), stop, &paused, &wg, func(j int) codec.Message {
			if j%2 == 0 {
				return &codec.Join{Room: codec.Lobby + "2"}
			}
			return &codec.Leave{Room: codec.Lobby + "2"}
		})
		abuser(t, srv, fmt.Sprint("dm", i), stop, &paused, &wg, func(int) codec.Message { return &codec.DM{To: "victim", Body: strings.Repeat("z", 2000)} })
	}
	// Quiet and abused phases alternate, so that whatever else loads the
	// machine meanwhile weighs on both medians alike.
	var idles, busies []time.Duration
	for range 3 {
		paused.Store(true)
		time.Sleep(50 * time.Millisecond) // what the abusers queued drains
		idles = append(idles, pingMedian(bystander, srv, 11))
		paused.Store(false)
		time.Sleep(50 * time.Millisecond)
		busies = append(busies, pingMedian(bystander, srv, 11))
	}
	close(stop)
	wg.Wait()
	// Four abusers each of who, joins and DMs at 200 frames/s: flood
	// control (or the who, join and DM budgets) must have refused some.
	if m := srv.hub.Metrics(); m.FloodDrops == 0 && m.Errors[codec.CodeRateLimited] == 0 {
		t.Fatal("the abusers sent at four times the frame rate and no frame was dropped")
	}
	idle, busy := medianOf(idles), medianOf(busies)
	base := max(idle, 500*time.Microsecond) // a floor, so that scheduling noise on an idle loop is no ratio
	t.Logf("bystander ping median: idle %v, under abuse %v (%.1fx the floored idle)", idle, busy, float64(busy)/float64(base))
	if soak && busy > 20*base {
		t.Fatalf("bystander ping median %v under abuse, over 20x its idle %v", busy, base)
	}
}

func medianOf(d []time.Duration) time.Duration {
	d = append([]time.Duration(nil), d...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// sumField adds up the numbers after every field= in a text log.
func sumField(log, field string) int {
	total := 0
	for _, part := range strings.Split(log, field)[1:] {
		n := 0
		for _, c := range part {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		total += n
	}
	return total
}
