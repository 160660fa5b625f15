package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go/jetstream"

	"parley/codec"
	"parley/server/broker"
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

func (n *Broker) applyNick(e jetstream.KeyValueEntry) {
	k := unkey(e.Key())
	var d dirEntry
	if !isDelete(e) && sonic.Unmarshal(e.Value(), &d) != nil {
		return
	}
	d.rev = e.Revision()
	n.mu.Lock()
	// Only another node deletes a claim this node still holds: one that
	// took this node for dead (it was paused, or cut off, past the bound).
	_, ours := n.mine[k]
	buried := ours && isDelete(e)
	n.applyNickLocked(k, d, isDelete(e))
	n.mu.Unlock()
	if buried {
		n.reassertSoon()
	}
}

func (n *Broker) applyNickLocked(k string, d dirEntry, deleted bool) {
	if old, ok := n.dir[k]; ok && old.rev > d.rev {
		return // a local update got here first
	}
	if deleted {
		n.dropDirLocked(k)
		return
	}
	n.setDirLocked(k, d)
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

// ClaimNick claims a nick for a local login.
func (n *Broker) ClaimNick(key, nick string, done func(error)) {
	n.goRun(func() {
		done(n.claimNick(key, nick))
	})
}

// ReleaseNick gives up this node's claim on a nick, unless the hub holds
// it for a resume: then the claim stays until ReleaseNick(key, false),
// marked held, so that every node stops listing the user at once.
func (n *Broker) ReleaseNick(key string, hold bool) {
	if hold {
		n.holdNick(key)
		return
	}
	n.releaseNick(key)
}

// holdNick marks this node's claim on a nick held: in the replica at once,
// and in the bucket, whose watchers tell the other nodes.
func (n *Broker) holdNick(key string) {
	n.mu.Lock()
	rev, ok := n.mine[key]
	d, in := n.dir[key]
	if in && d.rev == rev {
		d.Held = true
		n.setDirLocked(key, d)
	}
	n.mu.Unlock()
	if !ok || !in || !n.connected() {
		return
	}
	n.goRun(func() {
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		defer cancel()
		val, _ := sonic.Marshal(dirEntry{Node: n.id, Nick: d.Nick, Held: true})
		next, err := n.nicks.Update(ctx, hexKey(key), val, rev)
		if err != nil {
			return
		}
		n.mu.Lock()
		if n.mine[key] == rev {
			n.mine[key] = next // the release at the hold's end deletes this revision
		}
		n.mu.Unlock()
	})
}

// Users pages the replica of the nicks bucket.
func (n *Broker) Users(afterKey string, limit int) ([]broker.User, bool, int) {
	return n.users.Page(afterKey, limit)
}

// Lookup finds the user with key in the directory, online on another
// node (not held for a resume).
func (n *Broker) Lookup(key string) (broker.User, bool) {
	n.mu.Lock()
	d, ok := n.dir[key]
	n.mu.Unlock()
	if !ok || d.Held || d.Node == n.id {
		return broker.User{}, false
	}
	return broker.User{Key: key, Nick: d.Nick, Node: d.Node}, true
}

// setDirLocked and dropDirLocked change the directory and its sorted
// index together. n.mu held.
func (n *Broker) setDirLocked(key string, d dirEntry) {
	n.dir[key] = d
	if d.Held {
		n.users.Remove(key)
		return
	}
	n.users.Add(key, d.Nick)
}

func (n *Broker) dropDirLocked(key string) {
	delete(n.dir, key)
	n.users.Remove(key)
}

// claimNick makes key this node's in the nicks bucket. A claim held by a
// dead node, or left by this node's earlier self, is taken over.
func (n *Broker) claimNick(key, nick string) error {
	if !n.connected() {
		return fmt.Errorf("%w: the cluster bus is down", codec.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	val, _ := sonic.Marshal(dirEntry{Node: n.id, Nick: nick})
	rev, err := n.nicks.Create(ctx, hexKey(key), val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		rev, err = n.takeOverNick(ctx, key, nick, val)
	}
	if err != nil {
		if codec.CodeOf(err) == "" {
			err = fmt.Errorf("%w: nick claim: %v", codec.ErrUnavailable, err)
		}
		return err
	}
	n.mu.Lock()
	if old, ok := n.dir[key]; !ok || old.rev < rev {
		n.setDirLocked(key, dirEntry{Node: n.id, Nick: nick, rev: rev})
	}
	n.mine[key] = rev
	n.mu.Unlock()
	return nil
}

func (n *Broker) takeOverNick(ctx context.Context, key, nick string, val []byte) (uint64, error) {
	e, err := n.nicks.Get(ctx, hexKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return n.nicks.Create(ctx, hexKey(key), val)
	}
	if err != nil {
		return 0, err
	}
	var held dirEntry
	_ = sonic.Unmarshal(e.Value(), &held)
	// The local nick index already refused a nick online here, so a claim
	// naming this node is a leftover whose release has not landed yet.
	if held.Node != n.id && n.alive(held.Node) {
		return 0, codec.NotOnline(codec.ErrNickTaken, nick)
	}
	return n.nicks.Update(ctx, hexKey(key), val, e.Revision())
}

// releaseNick deletes the claim of a session that ended, unless someone
// claimed the nick since.
func (n *Broker) releaseNick(key string) {
	n.mu.Lock()
	rev, ok := n.mine[key]
	delete(n.mine, key)
	if d, in := n.dir[key]; in && d.rev == rev {
		n.dropDirLocked(key)
	}
	n.mu.Unlock()
	if !ok {
		return
	}
	if !n.connected() {
		return
	}
	n.goRun(func() {
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		defer cancel()
		_ = n.nicks.Delete(ctx, hexKey(key), jetstream.LastRevision(rev))
	})
}

// lookupNick finds where a nick is online: in the replica, or when the
// replica does not know it yet, in the bucket itself.
func (n *Broker) lookupNick(key string) (dirEntry, bool) {
	n.mu.Lock()
	d, ok := n.dir[key]
	n.mu.Unlock()
	if ok || !n.connected() {
		return d, ok && !d.Held && n.alive(d.Node)
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	e, err := n.nicks.Get(ctx, hexKey(key))
	if err != nil || sonic.Unmarshal(e.Value(), &d) != nil {
		return d, false
	}
	return d, !d.Held && n.alive(d.Node)
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
	for _, kv := range []jetstream.KeyValue{n.nicks, n.owners} {
		lister, err := kv.ListKeys(ctx)
		if err != nil {
			return fmt.Errorf("natsbroker: list %s: %w", kv.Bucket(), err)
		}
		for k := range lister.Keys() {
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue
			}
			if owner := entryNode(kv == n.nicks, e.Value()); owner == n.id {
				_ = kv.Delete(ctx, k, jetstream.LastRevision(e.Revision()))
			}
		}
	}
	return nil
}

// entryNode returns the node named by a value of the nicks or owners bucket.
func entryNode(nick bool, val []byte) string {
	if !nick {
		return string(val)
	}
	var d dirEntry
	_ = sonic.Unmarshal(val, &d)
	return d.Node
}
