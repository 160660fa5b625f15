package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"parley/codec"
	"parley/server/moderation"
)

// The rooms' rules and the audit log (docs/PROTOCOL.md "Rooms people
// run"): written through the same queue and writer as the messages, so
// that they never block the hub, and read back once at the start.

// SaveRules queues a room's rules (the hub's JSON), or their removal when
// data is nil. It never blocks.
func (s *Store) SaveRules(room string, data []byte) {
	s.queue(op{kind: opRules, room: room, frame: data})
}

// AppendAudit numbers e and appends it to log, and queues it for the
// disk, with the trimming of the file's log to what log keeps. It never
// blocks.
func (s *Store) AppendAudit(e codec.AuditEntry, log *moderation.AuditLog) {
	e = log.Append(e)
	data, err := json.Marshal(e)
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	s.queue(op{kind: opAudit, seq: e.Seq, frame: data, keep: log.Keep()})
}

// LoadRules returns every room's rules, as SaveRules was given them.
func (s *Store) LoadRules() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(rulesBucket).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// LoadAudit returns the audit log, oldest first.
func (s *Store) LoadAudit() ([]codec.AuditEntry, error) {
	var out []codec.AuditEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(auditBucket).ForEach(func(k, v []byte) error {
			var e codec.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit entry %x: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

func putRules(tx *bolt.Tx, o op) error {
	b := tx.Bucket(rulesBucket)
	if o.frame == nil {
		return b.Delete([]byte(o.room))
	}
	return b.Put([]byte(o.room), o.frame)
}

// putAudit adds an entry and drops the oldest beyond keep.
func putAudit(tx *bolt.Tx, o op) error {
	b := tx.Bucket(auditBucket)
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], o.seq)
	if err := b.Put(k[:], o.frame); err != nil {
		return err
	}
	return trimTo(b, o.seq, o.keep)
}

// moveRooms moves the room buckets of a file written before rooms had
// their own parent bucket from the top level into it. Rooms named like
// the store's own buckets were never stored safely and are left.
func moveRooms(tx *bolt.Tx) error {
	rooms := tx.Bucket(roomsBucket)
	var names [][]byte
	err := tx.Bucket(epochsBucket).ForEach(func(name, _ []byte) error {
		if !reserved(name) && tx.Bucket(name) != nil && rooms.Bucket(name) == nil {
			names = append(names, append([]byte(nil), name...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		from := tx.Bucket(name)
		to, err := rooms.CreateBucket(name)
		if err != nil {
			return err
		}
		if err := from.ForEach(func(k, v []byte) error { return to.Put(k, v) }); err != nil {
			return err
		}
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
	}
	return nil
}

func reserved(name []byte) bool {
	for _, b := range [][]byte{epochsBucket, metaBucket, roomsBucket, rulesBucket, auditBucket} {
		if string(name) == string(b) {
			return true
		}
	}
	return false
}
