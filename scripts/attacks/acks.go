package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"parley/codec"
)

// durableAcks measures what --data-dir's acks cost: say-to-ack latency
// at a paced 500 says/s from one sender, and saturation throughput from
// 4 senders with 64 says in flight each, for each binary in turn (run
// it with the binary before a change and after, in one run).
func durableAcks(bins []string) {
	for round := range 2 {
		for _, bin := range bins {
			dir, _ := os.MkdirTemp("", "acks-")
			t := start(bin, "--data-dir", dir, "--rate-limit", "0", "--max-conn-rate-per-ip", "0")
			p50, p99 := pacedAcks(t.addr, 500, 5*time.Second)
			rate, s50, s99 := saturatedAcks(t.addr, 4, 64, 5*time.Second)
			fmt.Printf("round %d %s: paced 500/s: ack p50 %v p99 %v; saturation: %.0f acked says/s, ack p50 %v p99 %v\n",
				round+1, bin, p50, p99, rate, s50, s99)
			t.stop()
			os.RemoveAll(dir)
		}
	}
}

// pacedAcks says rate messages a second from one sender for d and
// returns the ack latency's p50 and p99.
func pacedAcks(addr string, rate int, d time.Duration) (time.Duration, time.Duration) {
	c, _, err := login(addr, "paced", 0, nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := c.until(func(ev codec.Event) bool { return ev.Type == codec.TypeAck || ev.Type == codec.TypeError })
			if err != nil {
				return
			}
			mu.Lock()
			if at, ok := sent[ev.Ref]; ok {
				lat = append(lat, time.Since(at))
				delete(sent, ev.Ref)
			}
			n := len(lat)
			mu.Unlock()
			if n == int(d.Seconds())*rate {
				return
			}
		}
	}()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := range int(d.Seconds()) * rate {
		<-tick.C
		ref := fmt.Sprint(i)
		mu.Lock()
		sent[ref] = time.Now()
		mu.Unlock()
		_ = c.send(&codec.Say{Body: "durable", Ref: ref})
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	return pct(lat, .5).Round(time.Microsecond), pct(lat, .99).Round(time.Microsecond)
}

// saturatedAcks runs senders with window says in flight each for d and
// returns acked says per second and the ack latency's p50 and p99.
func saturatedAcks(addr string, senders, window int, d time.Duration) (float64, time.Duration, time.Duration) {
	var acked atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for k := range senders {
		c, _, err := login(addr, fmt.Sprint("sat", k), 0, nil)
		if err != nil {
			panic(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			at := make([]time.Time, window)
			for i := range window {
				at[i] = time.Now()
				_ = c.send(&codec.Say{Body: "durable", Ref: fmt.Sprint(i)})
			}
			var mine []time.Duration
			for time.Now().Before(stop) {
				ev, err := c.until(func(ev codec.Event) bool { return ev.Type == codec.TypeAck })
				if err != nil {
					break
				}
				var i int
				fmt.Sscan(ev.Ref, &i)
				mine = append(mine, time.Since(at[i]))
				acked.Add(1)
				at[i] = time.Now()
				_ = c.send(&codec.Say{Body: "durable", Ref: ev.Ref})
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(acked.Load()) / d.Seconds(), pct(lat, .5).Round(time.Microsecond), pct(lat, .99).Round(time.Microsecond)
}
