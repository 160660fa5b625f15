package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go/jetstream"
)

// watch starts the replicas of the nicks, owners, rules and accounts buckets and
// waits until each holds its bucket's current contents.
func (n *Broker) watch() error {
	for _, b := range []struct {
		kv    jetstream.KeyValue
		apply func(jetstream.KeyValueEntry)
	}{{n.nicks, n.applyNick}, {n.owners, n.applyOwner}, {n.rules, n.applyRules}, {n.accounts, n.applyAccount}} {
		w, err := b.kv.WatchAll(n.ctx)
		if err != nil {
			return fmt.Errorf("natsbroker: watch %s: %w", b.kv.Bucket(), err)
		}
		loaded := make(chan struct{})
		n.goLoop(func() { n.follow(w, b.apply, loaded) })
		select {
		case <-loaded:
		case <-n.ctx.Done():
		}
	}
	return nil
}

// follow applies a watcher's entries until the node stops; a nil entry marks
// the end of the initial values.
func (n *Broker) follow(w jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry), loaded chan struct{}) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				close(loaded)
				continue
			}
			apply(e)
		case <-n.ctx.Done():
			return
		}
	}
}

func isDelete(e jetstream.KeyValueEntry) bool {
	return e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
}

func (n *Broker) applyOwner(e jetstream.KeyValueEntry) {
	name := unkey(e.Key())
	n.mu.Lock()
	if old, ok := n.owner[name]; ok && old.rev > e.Revision() {
		n.mu.Unlock()
		return
	}
	if isDelete(e) {
		delete(n.owner, name)
	} else {
		n.owner[name] = ownerEntry{node: string(e.Value()), rev: e.Revision()}
	}
	n.mu.Unlock()
	if isDelete(e) || string(e.Value()) != n.id {
		n.disown(name)
	}
}

// disown stops sequencing a room another node now owns (or nobody): the
// hub may then let the room go, and its subscription with it.
func (n *Broker) disown(name string) {
	n.mu.Lock()
	_, was := n.owned[name]
	delete(n.owned, name)
	n.mu.Unlock()
	if was {
		n.h.Disown(name)
	}
}

// ownerOfLocked returns the live owner of a room from the replica, if
// any. n.mu held.
func (n *Broker) ownerOfLocked(name string) (string, bool) {
	o, ok := n.owner[name]
	if !ok || !n.aliveLocked(o.node, time.Now()) {
		return "", false
	}
	return o.node, true
}

// claimRoom makes this node the owner of room name unless a live node owns
// it; it returns the owner. Racing claims are settled by the owners
// bucket's revisions; the winner then fences the room's log (fence) and
// continues the room's sequence from the log's last message.
func (n *Broker) claimRoom(name string) (string, error) {
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	for {
		owner, rev, err := n.tryClaimRoom(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // the key changed under us: read it again
		case err != nil:
			return "", err
		case owner != n.id:
			n.noteOwner(name, owner, rev)
			return owner, nil
		}
		fence, last, err := n.fence(ctx, name, rev)
		if errors.Is(err, errDeposed) {
			continue // a later claim fenced the room: read the bucket again
		}
		if err != nil {
			return "", err
		}
		n.becomeOwner(name, rev, fence, last)
		return n.id, nil
	}
}

// errDeposed: a claim with a later revision has fenced the room.
var errDeposed = errors.New("natsbroker: a later claim owns the room")

// ownRecord is a fencing record in a room's log: the owners bucket
// revision of the claim that wrote it.
type ownRecord struct {
	Node string `json:"node"`
	Rev  uint64 `json:"rev"`
}

// fence writes this node's ownership record, for its claim at revision
// rev, into the room's log, after the last record unless that one is a
// later claim's; the stream sequence of the record is the fencing token
// that every message this node appends expects to find there. Records are
// written by compare-and-set, so of two claimers the later revision ends
// up holding the fence. The log's last message is read after the record
// is stored: everything an earlier owner stored is in by then, and
// nothing it sends later is stored. It returns the token and the room's
// last seq.
func (n *Broker) fence(ctx context.Context, name string, rev uint64) (uint64, uint64, error) {
	subject := n.subj.logOwn(name)
	data, _ := sonic.Marshal(ownRecord{Node: n.id, Rev: rev})
	n.observeLink() // what was queued on an earlier link is not sent on this one
	for {
		var expect uint64
		raw, err := n.stream.GetLastMsgForSubject(ctx, subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return 0, 0, err
		default:
			var held ownRecord
			if sonic.Unmarshal(raw.Data, &held) == nil && held.Rev > rev {
				return 0, 0, errDeposed
			}
			expect = raw.Sequence
		}
		ack, err := n.js.Publish(ctx, subject, data, jetstream.WithExpectLastSequencePerSubject(expect), jetstream.WithRetryAttempts(0))
		if wrongLast(err) {
			continue // another claimer wrote a record: read it
		}
		if err != nil {
			return 0, 0, err
		}
		_, last, err := n.tail(ctx, name)
		return ack.Sequence, last, err
	}
}

// tryClaimRoom reads the room's owner and takes the room if it has none or
// a dead one. A room the bucket says this node owns is claimed again
// (after a failed store or a lost link): a new revision, a new fence.
func (n *Broker) tryClaimRoom(ctx context.Context, name string) (string, uint64, error) {
	k := hexKey(name)
	e, err := n.owners.Get(ctx, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err := n.owners.Create(ctx, k, []byte(n.id))
		return n.id, rev, err
	case err != nil:
		return "", 0, err
	case string(e.Value()) != n.id && n.alive(string(e.Value())):
		return string(e.Value()), e.Revision(), nil
	}
	rev, err := n.owners.Update(ctx, k, []byte(n.id), e.Revision())
	return n.id, rev, err
}

// becomeOwner starts sequencing a room this node just claimed and fenced:
// the hub keeps the room and continues its seq after last.
func (n *Broker) becomeOwner(name string, rev, fence, last uint64) {
	n.h.Own(name, last)
	n.mu.Lock()
	n.owned[name] = fence
	n.mu.Unlock()
	n.noteOwner(name, n.id, rev)
	n.log.Info("room owned", "room", name, "seq", last, "fence", fence)
}

func (n *Broker) noteOwner(name, id string, rev uint64) {
	n.mu.Lock()
	if o, ok := n.owner[name]; !ok || o.rev <= rev {
		n.owner[name] = ownerEntry{node: id, rev: rev}
	}
	n.mu.Unlock()
}

// purgeOwnKeys deletes claims left by an earlier run under this node id:
// nothing of that run is online any more.
func (n *Broker) purgeOwnKeys() error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	if err := n.purgeOwnSlots(ctx); err != nil {
		return err
	}
	lister, err := n.owners.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("natsbroker: list %s: %w", n.owners.Bucket(), err)
	}
	for k := range lister.Keys() {
		if e, err := n.owners.Get(ctx, k); err == nil && string(e.Value()) == n.id {
			_ = n.owners.Delete(ctx, k, jetstream.LastRevision(e.Revision()))
		}
	}
	return nil
}
