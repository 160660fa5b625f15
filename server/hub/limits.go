package hub

import (
	"net"
	"net/netip"
	"sync"
)

// ipCounter counts connections per address key (IPKey). Safe from any
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

// IPKey returns the address a connection from remote ("host:port") counts
// against in the per-address limits: its IPv4 address, or the /64 of its
// IPv6 address, since one IPv6 host usually holds a whole /64.
func IPKey(remote string) string {
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
