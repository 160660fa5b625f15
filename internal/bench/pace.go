package bench

import "time"

// Schedule is the fixed send schedule of one sender: message k is due at
// Start + (k*Senders + Index) / Rate, so the senders together send Rate
// messages per second, evenly interleaved. Latency is measured from a
// message's due time, not from when it was actually sent, so a stalled
// server cannot hide its stall by slowing the senders down (no coordinated
// omission).
type Schedule struct {
	Start   time.Time
	Rate    float64 // messages per second, all senders together
	Senders int
	Index   int // this sender, 0 <= Index < Senders
}

// Due returns when message k (from 0) of this sender is due.
func (s Schedule) Due(k int64) time.Time {
	slot := float64(k*int64(s.Senders) + int64(s.Index))
	return s.Start.Add(time.Duration(slot / s.Rate * float64(time.Second)))
}

// Count returns how many of this sender's messages fall due in [from, to).
func (s Schedule) Count(from, to time.Time) int64 {
	return s.firstAtOrAfter(to) - s.firstAtOrAfter(from)
}

// firstAtOrAfter returns the first k whose due time is at or after t.
func (s Schedule) firstAtOrAfter(t time.Time) int64 {
	if !t.After(s.Start) {
		return 0
	}
	slots := t.Sub(s.Start).Seconds() * s.Rate
	k := int64((slots - float64(s.Index)) / float64(s.Senders))
	for k > 0 && !s.Due(k-1).Before(t) {
		k--
	}
	for s.Due(k).Before(t) {
		k++
	}
	return max(k, 0)
}
