package store

import (
	"encoding/binary"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// webhooksBucket holds one bucket per webhook: its events waiting for
// delivery, keyed by their place (big-endian), oldest first.
var webhooksBucket = []byte("webhooks")

// EventQueue is a webhook's queue in the store (webhook.Queue): what
// waits survives a restart. Its transactions are its own, beside the
// writer's: bbolt orders them.
type EventQueue struct {
	db   *bolt.DB
	name []byte
	n    atomic.Int64
}

// EventQueue opens the queue called name, keeping what it held.
func (s *Store) EventQueue(name string) (*EventQueue, error) {
	q := &EventQueue{db: s.db, name: []byte(name)}
	err := s.db.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(webhooksBucket)
		if err != nil {
			return err
		}
		b, err := top.CreateBucketIfNotExists(q.name)
		if err != nil {
			return err
		}
		q.n.Store(int64(b.Stats().KeyN))
		return nil
	})
	return q, err
}

func (q *EventQueue) bucket(tx *bolt.Tx) *bolt.Bucket {
	return tx.Bucket(webhooksBucket).Bucket(q.name)
}

// Append adds events and drops the oldest beyond max.
func (q *EventQueue) Append(events [][]byte, max int) (int, error) {
	dropped := 0
	err := q.db.Update(func(tx *bolt.Tx) error {
		b := q.bucket(tx)
		for _, e := range events {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(placeKey(seq), e); err != nil {
				return err
			}
		}
		over := int(q.n.Load()) + len(events) - max
		c := b.Cursor()
		for k, _ := c.First(); k != nil && dropped < over; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			dropped++
		}
		return nil
	})
	if err == nil {
		q.n.Add(int64(len(events) - dropped))
	}
	return dropped, err
}

// Peek returns the oldest events.
func (q *EventQueue) Peek(n, maxBytes int) ([][]byte, uint64, error) {
	var out [][]byte
	var last uint64
	err := q.db.View(func(tx *bolt.Tx) error {
		c := q.bucket(tx).Cursor()
		size := 0
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			if len(out) > 0 && size+len(v) > maxBytes {
				break
			}
			out = append(out, append([]byte(nil), v...))
			size += len(v)
			last = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return out, last, err
}

// Remove drops the events up to last.
func (q *EventQueue) Remove(last uint64) error {
	removed := 0
	err := q.db.Update(func(tx *bolt.Tx) error {
		c := q.bucket(tx).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= last; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	if err == nil {
		q.n.Add(-int64(removed))
	}
	return err
}

// Len is how many events wait.
func (q *EventQueue) Len() int { return int(q.n.Load()) }

func placeKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
