package store

import (
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"parley/codec"
	"parley/server/broker"
)

// The account table (read markers, remembered nicks) and the direct
// messages that wait for offline accounts (docs/PROTOCOL.md "Read
// markers", "Direct messages that wait"): records by key in the bucket
// accounts; in the bucket offline, a bucket per account holding its
// messages under big-endian sequence keys.

// offlineAge is how long a direct message waits.
const offlineAge = codec.DefaultOfflineDMDays * 24 * time.Hour

// SaveAccount queues a record of the account table. It never blocks.
func (s *Store) SaveAccount(key string, data []byte) {
	s.queue(op{kind: opAccount, room: key, frame: data})
}

// LoadAccounts returns every record of the account table.
func (s *Store) LoadAccounts() ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(accountsBucket).ForEach(func(_, v []byte) error {
			out = append(out, append([]byte(nil), v...))
			return nil
		})
	})
	return out, err
}

// Leave queues a direct message for an offline account; done hears
// once it is on disk, or why not (broker.ErrInboxFull).
func (s *Store) Leave(dm broker.OfflineDM, done func(error)) {
	data, err := json.Marshal(&dm)
	if err != nil {
		done(err)
		return
	}
	s.queue(op{kind: opOffline, room: dm.Account, epoch: dm.To, seq: uint64(len(dm.Body)), frame: data, stored: done})
}

// putOffline adds a message to its account's bucket, unless the
// account's or the store's bound is reached. Writer goroutine.
func (s *Store) putOffline(tx *bolt.Tx, o *op) error {
	b, err := tx.Bucket(offlineBucket).CreateBucketIfNotExists([]byte(o.room))
	if err != nil {
		return err
	}
	if countKeys(b, codec.MaxOfflineDMs) >= codec.MaxOfflineDMs || s.offlineBytes.Load()+int64(o.seq) > codec.MaxOfflineBytes {
		o.refused = broker.ErrInboxFull(o.epoch)
		return nil
	}
	n, _ := b.NextSequence()
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	if err := b.Put(k[:], o.frame); err != nil {
		return err
	}
	s.offlineBytes.Add(int64(o.seq))
	return nil
}

// Collect reads and removes the messages waiting for account, on a
// goroutine of its own.
func (s *Store) Collect(account string, done func([]broker.OfflineDM, error)) {
	go func() {
		var out []broker.OfflineDM
		err := s.db.Update(func(tx *bolt.Tx) error {
			parent := tx.Bucket(offlineBucket)
			b := parent.Bucket([]byte(account))
			if b == nil {
				return nil
			}
			old := time.Now().Add(-offlineAge).UnixMilli()
			err := b.ForEach(func(_, v []byte) error {
				var dm broker.OfflineDM
				if json.Unmarshal(v, &dm) == nil {
					s.offlineBytes.Add(-int64(len(dm.Body)))
					if dm.TS >= old {
						out = append(out, dm)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			return parent.DeleteBucket([]byte(account))
		})
		if err != nil {
			out = nil
		}
		done(out, err)
	}()
}

// sweepOffline drops the messages that waited past offlineAge and counts
// the bytes of the others. At Open.
func (s *Store) sweepOffline(tx *bolt.Tx) error {
	old := time.Now().Add(-offlineAge).UnixMilli()
	parent := tx.Bucket(offlineBucket)
	var empty [][]byte
	err := parent.ForEachBucket(func(account []byte) error {
		b := parent.Bucket(account)
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var dm broker.OfflineDM
			if json.Unmarshal(v, &dm) != nil || dm.TS < old {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			s.offlineBytes.Add(int64(len(dm.Body)))
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if countKeys(b, 1) == 0 {
			empty = append(empty, append([]byte(nil), account...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range empty {
		if err := parent.DeleteBucket(a); err != nil {
			return err
		}
	}
	return nil
}

// countKeys counts b's keys, up to limit: a cursor sees what the
// transaction has written so far.
func countKeys(b *bolt.Bucket, limit int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}
