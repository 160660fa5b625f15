package webhook

import (
	"fmt"
	"testing"
)

// TestMemoryQueue: order, the bound (oldest dropped, counted), a peek's
// byte budget, and a removal that the bound overtook.
func TestMemoryQueue(t *testing.T) {
	q := NewMemoryQueue()
	var events [][]byte
	for i := range 10 {
		events = append(events, []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	if dropped, _ := q.Append(events[:4], 5); dropped != 0 {
		t.Fatalf("dropped %d within the bound", dropped)
	}
	got, last, _ := q.Peek(2, 1<<20)
	if len(got) != 2 || string(got[0]) != `{"n":0}` {
		t.Fatalf("peek: %q", got)
	}
	// Six more while the first two are out: the bound drops the oldest
	// four, the two being delivered among them.
	if dropped, _ := q.Append(events[4:], 5); dropped != 5 || q.Len() != 5 {
		t.Fatalf("dropped %d, len %d; want 5 and 5", dropped, q.Len())
	}
	if err := q.Remove(last); err != nil || q.Len() != 5 {
		t.Fatalf("removing what the bound dropped: len %d, %v", q.Len(), err)
	}
	if got, _, _ := q.Peek(10, 7); len(got) != 1 || string(got[0]) != `{"n":5}` {
		t.Fatalf("a peek of 7 bytes: %q, want the oldest alone", got)
	}
	got, last, _ = q.Peek(10, 1<<20)
	if err := q.Remove(last); err != nil || q.Len() != 0 || len(got) != 5 || string(got[4]) != `{"n":9}` {
		t.Fatalf("drain: %q, len %d, %v", got, q.Len(), err)
	}
}
