package store

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"parley/codec"
	"parley/server/moderation"
)

// TestRoomsNamedLikeBuckets: rooms called like the store's own buckets
// keep their messages past Keep, and the store's own data survives them.
// Before room buckets had a parent, a room called meta took the meta
// bucket (its trim then read a 5-byte key as a seq) and one called
// epochs deleted the epochs bucket.
func TestRoomsNamedLikeBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s, err := Open(Config{Path: path, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"epochs", "meta", "rooms", "rules", "audit", "plain"}
	for _, name := range names {
		for seq := uint64(1); seq <= 5; seq++ {
			s.Append(name, "e", seq, time.Now(), []byte(fmt.Sprint(name, seq)), nil)
		}
	}
	s.SaveRules("plain", []byte(`{"owner":"amy"}`))
	s.AppendAudit(codec.AuditEntry{Action: "ban", Room: "plain"}, moderation.NewAuditLog(10, nil))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, failed := s.Stats(); failed != 0 {
		t.Fatalf("%d writes failed", failed)
	}
	s, err = Open(Config{Path: path, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Unclean {
		t.Fatal("reopened unclean")
	}
	rooms, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rooms {
		got[r.Name] = fmt.Sprint(len(r.Msgs), string(r.Msgs[len(r.Msgs)-1].Frame))
	}
	for _, name := range names {
		if want := fmt.Sprint(3, name, 5); got[name] != want {
			t.Errorf("room %q loaded as %q, want %q", name, got[name], want)
		}
	}
	rules, _ := s.LoadRules()
	audit, _ := s.LoadAudit()
	if string(rules["plain"]) != `{"owner":"amy"}` || len(audit) != 1 || audit[0].Action != "ban" {
		t.Fatalf("rules %q audit %+v", rules, audit)
	}
}

// TestRulesAndAuditKept: rules replace and forget; the audit log keeps
// its newest entries, in order, across a reopen.
func TestRulesAndAuditKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s.SaveRules("a", []byte(`{"owner":"x"}`))
	s.SaveRules("a", []byte(`{"owner":"y"}`))
	s.SaveRules("b", []byte(`{"owner":"z"}`))
	s.SaveRules("b", nil)
	log := moderation.NewAuditLog(4, nil)
	for range 7 {
		s.AppendAudit(codec.AuditEntry{Action: "kick"}, log)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rules, _ := s.LoadRules()
	if len(rules) != 1 || string(rules["a"]) != `{"owner":"y"}` {
		t.Fatalf("rules %q", rules)
	}
	audit, _ := s.LoadAudit()
	var seqs []uint64
	for _, e := range audit {
		seqs = append(seqs, e.Seq)
	}
	if fmt.Sprint(seqs) != "[4 5 6 7]" {
		t.Fatalf("audit seqs %v, want [4 5 6 7]", seqs)
	}
}

// TestOldLayoutMoves: a file whose room buckets are at the top level (as
// written before the rooms bucket) opens with its rooms moved, messages
// and all.
func TestOldLayoutMoves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(metaBucket)
		_ = meta.Put(cleanKey, []byte{1})
		epochs, _ := tx.CreateBucket(epochsBucket)
		_ = epochs.Put([]byte("golang"), []byte("e1"))
		b, _ := tx.CreateBucket([]byte("golang"))
		for seq := uint64(1); seq <= 2; seq++ {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], seq)
			v := make([]byte, 8)
			binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
			_ = b.Put(k[:], append(v, fmt.Sprint("m", seq)...))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rooms, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].Name != "golang" || len(rooms[0].Msgs) != 2 || string(rooms[0].Msgs[1].Frame) != "m2" || s.Unclean {
		t.Fatalf("loaded %+v (unclean %v)", rooms, s.Unclean)
	}
}
