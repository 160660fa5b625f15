package transport

import (
	"golang.org/x/time/rate"
)

// ipRates is the per-address (hub.IPKey) rate of new connections. It is used by the
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
