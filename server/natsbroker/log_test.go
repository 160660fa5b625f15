package natsbroker

import (
	"bytes"
	"strings"
	"testing"
)

// TestEntryRoundTrip: a log entry decodes to what was encoded, keys longer
// than a byte can count included, and every truncation of it is refused
// rather than misread.
func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []entry{
		{seq: 1, key: "amy", token: "a.1", frame: []byte("\x00\x00\x00\x02{}")},
		{seq: 1 << 40, key: strings.Repeat("ŋ", 200), token: "", frame: nil},
	} {
		b := e.encode()
		got, ok := decodeEntry(b)
		if !ok || got.seq != e.seq || got.key != e.key || got.token != e.token || !bytes.Equal(got.frame, e.frame) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", e, got, ok)
		}
		head := len(b) - len(e.frame) // the frame is the rest: any length is whole
		for cut := range head {
			if _, ok := decodeEntry(b[:cut]); ok {
				t.Fatalf("a truncation to %d of %d bytes decoded", cut, len(b))
			}
		}
	}
}

// TestCursorReleasesHeldInOrder: after a catch-up, held live messages are
// delivered only while they follow on from the last one delivered; the
// first that does not sends the catch-up back to the log.
func TestCursorReleasesHeldInOrder(t *testing.T) {
	l := &cursor{last: 10, known: true, fetching: true}
	msg := func(sseq, prev uint64) logMsg { return logMsg{sseq: sseq, prev: prev, entry: entry{seq: sseq}} }
	l.held = []logMsg{msg(9, 8), msg(12, 10), msg(13, 12), msg(20, 15), msg(21, 20)}
	out, from := l.releaseHeld(nil)
	if len(out) != 2 || out[0].seq != 12 || out[1].seq != 13 || from != 14 || l.last != 13 {
		t.Fatalf("released %+v, read again from %d, last %d; want 12 and 13, from 14", out, from, l.last)
	}
	if len(l.held) != 2 || l.held[0].sseq != 20 || !l.fetching {
		t.Fatalf("still held %+v (fetching %v); want 20 and 21", l.held, l.fetching)
	}
	l.last = 15 // the catch-up read 14 and 15
	out, from = l.releaseHeld(nil)
	if len(out) != 2 || from != 0 || l.fetching || l.held != nil || l.last != 21 {
		t.Fatalf("released %+v, from %d, fetching %v; want 20 and 21, done", out, from, l.fetching)
	}
}
