package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"parley/internal/poll"
)

// TestStoreKeepsTrimsAndReopens: a room keeps its last Keep messages in
// seq order; a new epoch starts the room afresh; a forgotten room is gone;
// a cleanly closed file reopens clean with all of it, and one that was not
// closed reopens unclean.
func TestStoreKeepsTrimsAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s, err := Open(Config{Path: path, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	if s.Unclean {
		t.Fatal("a new file is unclean")
	}
	now := time.Now()
	for seq := uint64(1); seq <= 12; seq++ {
		s.Append("a", "e1", seq, now, []byte(fmt.Sprint("a", seq)), nil)
	}
	s.Append("b", "e1", 1, now, []byte("b1"), nil)
	s.Append("b", "e2", 1, now, []byte("b1 again"), nil) // the room started anew
	s.Append("c", "e1", 1, now, []byte("c1"), nil)
	s.Forget("c")
	s.Replace("a", "e1", 12, []byte("a12 amended"))
	s.Replace("a", "e1", 99, []byte("never stored"))
	s.Replace("b", "e1", 1, []byte("an older epoch's"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Config{Path: path, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	if s.Unclean {
		t.Fatal("a cleanly closed file reopened unclean")
	}
	rooms, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rooms {
		var seqs []uint64
		for _, m := range r.Msgs {
			seqs = append(seqs, m.Seq)
		}
		got[r.Name] = fmt.Sprint(r.Epoch, seqs, string(r.Msgs[len(r.Msgs)-1].Frame))
	}
	want := map[string]string{"a": "e1[8 9 10 11 12]a12 amended", "b": "e2[1]b1 again"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("loaded %v, want %v", got, want)
	}
	// Not closed: as after a crash.
	s.Append("a", "e1", 13, now, []byte("a13"), nil)
	poll.Until(t, 5*time.Second, "the append written", func() error {
		if w, _, _ := s.Stats(); w < 1 {
			return errors.New("not yet")
		}
		return nil
	})
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Config{Path: path, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Unclean {
		t.Fatal("a file that was not closed reopened clean")
	}
}
