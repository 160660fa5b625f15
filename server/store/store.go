// Package store keeps a single node's room histories on disk (--data-dir),
// so that a restarted server continues every room's seq and serves its
// history, and its rooms' rules and audit log. It is one bbolt file: in
// the bucket rooms, a bucket per room, holding its messages under
// big-endian seq keys, so a room's log is appended at its end and trimmed
// from its front, each in order; a bucket of the rooms' epochs; one of
// the rooms' rules (JSON by room name); and the audit log (JSON under
// big-endian seq keys). Room buckets sit one level down so that no room
// name can be one of the store's own buckets. One writer goroutine commits what the hub appends in groups; the
// hub never waits for the disk.
package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Config configures a Store. Zero values take the defaults.
type Config struct {
	// Path is the database file.
	Path string
	// Keep is how many messages it keeps per room. Default 1000.
	Keep int
	// QueueLen bounds the appends waiting for the writer; past it they are
	// dropped (and counted): the disk is too slow. Default 65536.
	QueueLen int
	// Logger receives the store's warnings.
	Logger *slog.Logger
}

// Msg is one stored room message.
type Msg struct {
	Seq   uint64
	At    time.Time // when it was stored
	Frame []byte    // the msg frame, length-prefixed, as members received it
}

// Room is a room as stored: its epoch and its messages, oldest first.
type Room struct {
	Name  string
	Epoch string
	Msgs  []Msg
}

// Store is a bbolt file of room histories. Append and Forget never block
// and are safe from any goroutine; Load is for the start, Close for the
// end.
type Store struct {
	cfg     Config
	db      *bolt.DB
	ops     chan op
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed by the writer once it has drained
	log     *slog.Logger

	// Unclean is true if the file was not closed cleanly the last time:
	// the last messages before a crash may be missing, so their seqs
	// could be given again and the hub starts every room's epoch afresh.
	Unclean bool

	written, failed, dropped atomic.Int64
	offlineBytes             atomic.Int64 // bodies of the direct messages that wait (accounts.go)
	closeOnce                sync.Once
	lastWarn                 time.Time // writer goroutine only
}

type op struct {
	kind        opKind
	room, epoch string
	seq         uint64
	at          int64
	frame       []byte      // a message's frame; a room's rules (nil: forget them); an audit entry
	keep        int         // audit entries to keep
	stored      func(error) // told once the op's group is committed, or failed
	refused     error       // why the op was not applied in a group that was committed
}

type opKind uint8

const (
	opAppend  opKind = iota // a room message
	opForget                // a room that is gone
	opRules                 // a room's rules
	opAudit                 // an audit entry
	opAccount               // a record of the account table (room: its key)
	opOffline               // a direct message for an offline account (room: the account)
	opReplace               // a room message amended since it was appended
)

// ErrQueueFull is an append's outcome when the disk is too slow for the
// messages: the writer's queue was full, and the message was dropped.
var ErrQueueFull = errors.New("store: the disk is behind; message not written")

// errClosed is an append's outcome after Close.
var errClosed = errors.New("store: closed")

var (
	epochsBucket   = []byte("epochs")
	metaBucket     = []byte("meta")
	roomsBucket    = []byte("rooms")
	rulesBucket    = []byte("rules")
	auditBucket    = []byte("audit")
	accountsBucket = []byte("accounts")
	offlineBucket  = []byte("offline")
	cleanKey       = []byte("clean")
)

// Open opens (or creates) the file and starts the writer.
func Open(cfg Config) (*Store, error) {
	if cfg.Keep <= 0 {
		cfg.Keep = 1000
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1 << 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store: %s is in use by another parley (or another program holds its lock): stop it, or give this server another --data-dir", cfg.Path)
		}
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	s := &Store{cfg: cfg, db: db, ops: make(chan op, cfg.QueueLen), done: make(chan struct{}), stopped: make(chan struct{}), log: cfg.Logger}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{epochsBucket, roomsBucket, rulesBucket, auditBucket, accountsBucket, offlineBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := moveRooms(tx); err != nil {
			return err
		}
		if err := s.sweepOffline(tx); err != nil {
			return err
		}
		s.Unclean = meta.Get(cleanKey) == nil && tx.Bucket(epochsBucket).Stats().KeyN > 0
		return meta.Delete(cleanKey) // until Close says otherwise
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s is not writable: %w", cfg.Path, err)
	}
	go s.writer()
	return s, nil
}

// Load returns every stored room with its messages.
func (s *Store) Load() ([]Room, error) {
	var out []Room
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(epochsBucket).ForEach(func(name, epoch []byte) error {
			r := Room{Name: string(name), Epoch: string(epoch)}
			if b := tx.Bucket(roomsBucket).Bucket(name); b != nil {
				err := b.ForEach(func(k, v []byte) error {
					if len(k) == 8 && len(v) >= 8 {
						r.Msgs = append(r.Msgs, Msg{Seq: binary.BigEndian.Uint64(k), At: time.Unix(0, int64(binary.BigEndian.Uint64(v))),
							Frame: append([]byte(nil), v[8:]...)})
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Append queues a room message for the disk. It never blocks: when the
// queue is full the message is dropped and counted. stored, when not
// nil, is called once, from the writer's goroutine after the message's
// group is committed (nil) or failed, or at once if the message was
// dropped (ErrQueueFull). Safe under a room lock.
func (s *Store) Append(room, epoch string, seq uint64, at time.Time, frame []byte, stored func(error)) {
	s.queue(op{room: room, epoch: epoch, seq: seq, at: at.UnixNano(), frame: frame, stored: stored})
}

// Replace queues the overwrite of a stored message, if the room's
// epoch is still epoch and the store still holds the message. It never
// blocks.
func (s *Store) Replace(room, epoch string, seq uint64, frame []byte) {
	s.queue(op{kind: opReplace, room: room, epoch: epoch, seq: seq, frame: frame})
}

// Forget queues the removal of a room that is gone.
func (s *Store) Forget(room string) { s.queue(op{kind: opForget, room: room}) }

func (s *Store) queue(o op) {
	select {
	case <-s.done:
		o.tell(errClosed)
		return
	default:
	}
	select {
	case s.ops <- o:
	default:
		s.dropped.Add(1)
		o.tell(ErrQueueFull)
	}
}

// tell gives an op's caller its outcome.
func (o *op) tell(err error) {
	if o.stored != nil {
		o.stored(err)
	}
}

// Stats returns how many messages were written, how many failed to be
// written (the disk refused them), and how many were dropped (the queue
// was full).
func (s *Store) Stats() (written, failed, dropped int64) {
	return s.written.Load(), s.failed.Load(), s.dropped.Load()
}

// Close writes what is queued, marks the file clean and closes it. A file
// that missed messages (the disk refused them, or the queue was full) is
// not marked clean: the next start gives every room a new epoch, since
// the seqs it lacks were seen.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		<-s.stopped
		if s.failed.Load() == 0 && s.dropped.Load() == 0 {
			err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(cleanKey, []byte{1}) })
		}
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// maxGroup bounds the appends one transaction commits.
const maxGroup = 4096

// writer commits the queued operations in groups, until Close.
func (s *Store) writer() {
	group := make([]op, 0, maxGroup)
	for {
		select {
		case o := <-s.ops:
			group = append(group[:0], o)
		case <-s.done:
			s.drain(group[:0])
			close(s.stopped)
			return
		}
		for len(group) < maxGroup {
			select {
			case o := <-s.ops:
				group = append(group, o)
				continue
			default:
			}
			break
		}
		s.commit(group)
	}
}

// drain commits whatever is still queued.
func (s *Store) drain(group []op) {
	for {
		select {
		case o := <-s.ops:
			group = append(group, o)
			if len(group) < maxGroup {
				continue
			}
		default:
		}
		if len(group) == 0 {
			return
		}
		s.commit(group)
		group = group[:0]
	}
}

// commit writes one group in one transaction. A failure (a full disk, a
// file made read-only) loses the group, not the chat: it is counted and
// logged at most once every 10 s, and the hub's memory keeps serving.
func (s *Store) commit(group []op) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range group {
			if err := s.apply(tx, &group[i]); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range group {
		group[i].tell(cmp.Or(err, group[i].refused))
		group[i].stored, group[i].frame = nil, nil
	}
	if err == nil {
		s.written.Add(int64(len(group)))
		return
	}
	s.failed.Add(int64(len(group)))
	if time.Since(s.lastWarn) >= 10*time.Second {
		s.lastWarn = time.Now()
		s.log.Error("history store: write failed; chat goes on, with history in memory only until the disk takes writes again",
			"path", s.cfg.Path, "err", err, "failed", s.failed.Load())
	}
}

// apply writes one operation: a forget drops the room; an append under a
// new epoch starts the room afresh, then adds the message and trims the
// room to Keep messages from its front.
func (s *Store) apply(tx *bolt.Tx, o *op) error {
	switch o.kind {
	case opRules:
		return putRules(tx, *o)
	case opAudit:
		return putAudit(tx, *o)
	case opAccount:
		return tx.Bucket(accountsBucket).Put([]byte(o.room), o.frame)
	case opOffline:
		return s.putOffline(tx, o)
	case opReplace:
		return replace(tx, o)
	}
	epochs, rooms := tx.Bucket(epochsBucket), tx.Bucket(roomsBucket)
	name := []byte(o.room)
	if o.kind == opForget {
		if rooms.Bucket(name) != nil {
			if err := rooms.DeleteBucket(name); err != nil {
				return err
			}
		}
		return epochs.Delete(name)
	}
	if string(epochs.Get(name)) != o.epoch {
		if rooms.Bucket(name) != nil {
			if err := rooms.DeleteBucket(name); err != nil {
				return err
			}
		}
		if err := epochs.Put(name, []byte(o.epoch)); err != nil {
			return err
		}
	}
	b, err := rooms.CreateBucketIfNotExists(name)
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], o.seq)
	v := make([]byte, 8, 8+len(o.frame))
	binary.BigEndian.PutUint64(v, uint64(o.at))
	if err := b.Put(k[:], append(v, o.frame...)); err != nil {
		return err
	}
	return trimTo(b, o.seq, s.cfg.Keep)
}

// trimTo deletes the keys of b (big-endian seqs) that fall more than keep
// below last, the newest.
func trimTo(b *bolt.Bucket, last uint64, keep int) error {
	if keep <= 0 || last <= uint64(keep) {
		return nil
	}
	keepFrom := last - uint64(keep) + 1
	var old [][]byte // deleting while a cursor walks can skip keys
	c := b.Cursor()
	for key, _ := c.First(); key != nil && binary.BigEndian.Uint64(key) < keepFrom; key, _ = c.Next() {
		old = append(old, append([]byte(nil), key...))
	}
	for _, key := range old {
		if err := b.Delete(key); err != nil {
			return err
		}
	}
	return nil
}

// replace overwrites a stored message's frame, keeping when it was
// stored; nothing if the room started a new epoch or trimmed it.
func replace(tx *bolt.Tx, o *op) error {
	name := []byte(o.room)
	b := tx.Bucket(roomsBucket).Bucket(name)
	if b == nil || string(tx.Bucket(epochsBucket).Get(name)) != o.epoch {
		return nil
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], o.seq)
	old := b.Get(k[:])
	if len(old) < 8 {
		return nil
	}
	v := make([]byte, 0, 8+len(o.frame))
	v = append(append(v, old[:8]...), o.frame...)
	return b.Put(k[:], v)
}
