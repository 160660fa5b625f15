package server

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/time/rate"
)

// ipCounter counts connections per address key (ipKey). Safe from any
// goroutine.
type ipCounter struct {
	mu sync.Mutex
	m  map[string]int
}

// add counts a connection from ip unless ip has max already (max 0: no
// limit); it reports whether it did.
func (c *ipCounter) add(ip string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.m[ip] >= max {
		return false
	}
	if c.m == nil {
		c.m = make(map[string]int)
	}
	c.m[ip]++
	return true
}

func (c *ipCounter) remove(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[ip]--; c.m[ip] <= 0 {
		delete(c.m, ip)
	}
}

// ipKey returns the address a connection counts against in the per-IP
// limits: its IPv4 address, or the /64 of its IPv6 address, since one
// IPv6 host usually holds a whole /64.
func ipKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// ipRates is the per-address rate of new connections. It is used by the
// acceptor goroutine alone. Its table is bounded: entries whose bucket has
// refilled are dropped once the table passes maxRateEntries.
type ipRates struct {
	limit rate.Limit // per second; 0 when off
	burst int
	m     map[string]*rate.Limiter
}

// maxRateEntries bounds the table of per-address buckets.
const maxRateEntries = 1 << 16

func newIPRates(perSecond float64) *ipRates {
	if perSecond <= 0 {
		return &ipRates{}
	}
	return &ipRates{limit: rate.Limit(perSecond), burst: max(int(2*perSecond), 1), m: make(map[string]*rate.Limiter)}
}

// allow takes one new connection from ip out of its bucket.
func (r *ipRates) allow(ip string) bool {
	if r.limit == 0 {
		return true
	}
	l := r.m[ip]
	if l == nil {
		if len(r.m) >= maxRateEntries {
			r.prune()
		}
		l = rate.NewLimiter(r.limit, r.burst)
		r.m[ip] = l
	}
	return l.Allow()
}

// prune drops the buckets that are full again: forgetting them changes
// nothing. If an attacker keeps every bucket busy, the whole table goes,
// which errs on the side of admitting.
func (r *ipRates) prune() {
	for ip, l := range r.m {
		if l.Tokens() >= float64(r.burst) {
			delete(r.m, ip)
		}
	}
	if len(r.m) >= maxRateEntries {
		clear(r.m)
	}
}
