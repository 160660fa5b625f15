package store

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestEventQueue: a webhook's queue in the file keeps its events in
// order, drops the oldest past its bound and says how many, removes what
// was delivered, and keeps the rest across a reopen.
func TestEventQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	q, err := s.EventQueue("0")
	if err != nil {
		t.Fatal(err)
	}
	var events [][]byte
	for i := range 10 {
		events = append(events, []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	dropped, err := q.Append(events, 5)
	if err != nil || dropped != 5 || q.Len() != 5 {
		t.Fatalf("append 10 to a queue of 5: dropped %d, len %d, %v", dropped, q.Len(), err)
	}
	got, last, err := q.Peek(3, 1<<20)
	if err != nil || len(got) != 3 || string(got[0]) != `{"n":5}` || string(got[2]) != `{"n":7}` {
		t.Fatalf("peek: %q %v", got, err)
	}
	if err := q.Remove(last); err != nil || q.Len() != 2 {
		t.Fatalf("remove: len %d, %v", q.Len(), err)
	}
	if got, _, _ := q.Peek(10, 10); len(got) != 1 {
		t.Fatalf("a peek of 10 bytes returned %d events, want the first alone", len(got))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if q, err = s.EventQueue("0"); err != nil || q.Len() != 2 {
		t.Fatalf("after a reopen: len %d, %v", q.Len(), err)
	}
	if got, _, _ := q.Peek(10, 1<<20); len(got) != 2 || string(got[0]) != `{"n":8}` || string(got[1]) != `{"n":9}` {
		t.Fatalf("after a reopen: %q", got)
	}
}
