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

// TestCursorResyncDuringCatchUpReadsAgain: a resync asked for while a
// catch-up runs (a slow consumer's drop, the bus back, an owner buried)
// is not lost. The catch-up reads the log once more at its end, since
// what was dropped may lie past what it read with no held message after
// it to show the break; a resync with none under way starts one.
func TestCursorResyncDuringCatchUpReadsAgain(t *testing.T) {
	l := &cursor{last: 10, known: true}
	if from := l.resync(); from != 11 || !l.fetching {
		t.Fatalf("resync from %d (fetching %v); want 11", from, l.fetching)
	}
	if from := l.resync(); from != 0 || !l.again {
		t.Fatalf("a second resync started a catch-up from %d (again %v); want none, and again", from, l.again)
	}
	msg := func(sseq, prev uint64) logMsg { return logMsg{sseq: sseq, prev: prev, entry: entry{seq: sseq}} }
	out, from, failed := l.step(fetchResult{msgs: []logMsg{msg(11, 10), msg(12, 11)}, end: true}, true)
	if len(out) != 2 || from != 13 || failed || !l.fetching || l.again {
		t.Fatalf("step: %d out, from %d, failed %v, fetching %v, again %v; want 2, from 13, still fetching", len(out), from, failed, l.fetching, l.again)
	}
	out, from, _ = l.step(fetchResult{msgs: []logMsg{msg(13, 12)}, end: true}, true)
	if len(out) != 1 || from != 0 || l.fetching || l.last != 13 {
		t.Fatalf("second step: %d out, from %d, fetching %v, last %d; want 1, over at 13", len(out), from, l.fetching, l.last)
	}
	if from := (&cursor{last: 5}).resync(); from != 0 {
		t.Fatalf("a cursor that has not read the log's end resynced from %d", from)
	}
}
