package natsbroker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go/jetstream"

	"parley/codec"
	"parley/server/broker"
)

// Nick claims (docs/CLUSTER.md "Accounts in a cluster"). The nicks bucket
// has one entry per nick online or held anywhere, keyed by its nick key:
// the nick, the account that holds it (a hash; none for a nick login) and
// a slot per node with sessions of that user there. Every write to an
// entry is a compare-and-set on its revision, so two nodes' writes to one
// nick never cross: a nick login claims an entry nobody holds; a login of
// the account that holds it adds its node's slot (within the account's
// session limit, counted over every slot); a login with the resume token
// of a held slot takes that slot over. A node writes only its own slot,
// except that it removes the slots of nodes it buried and the held slot
// it took over.

// nickClaim is a value of the nicks bucket.
type nickClaim struct {
	Nick    string               `json:"nick"`
	Account string               `json:"account,omitempty"` // accountHash of the account that holds it
	Nodes   map[string]nodeClaim `json:"nodes"`
	rev     uint64
}

// nodeClaim is one node's slot in a nickClaim: how many sessions of the
// user it has, or, once they are gone, that it holds the nick for the
// last one's resume token (a hash of it).
type nodeClaim struct {
	Sessions int    `json:"sessions,omitempty"`
	Resume   string `json:"resume,omitempty"` // set: held
}

func (s nodeClaim) held() bool { return s.Resume != "" }

// accountHash and resumeHash name an account and a resume token in the
// bucket without writing either down.
func accountHash(account string) string {
	if account == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("account\x00" + account))
	return hex.EncodeToString(sum[:16])
}

func resumeHash(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("resume\x00" + token))
	return hex.EncodeToString(sum[:16])
}

// listed reports whether the user is online on some node: a slot that is
// not held. Held slots keep the nick from others without listing it.
func (c *nickClaim) listed() bool {
	for _, s := range c.Nodes {
		if !s.held() {
			return true
		}
	}
	return false
}

// onlineElsewhereLocked returns the nodes other than this one where the
// user has sessions, and how many sessions there are; with live, only
// the nodes alive now (a dead node's slots leave the replica when it is
// buried, a few heartbeats later). n.mu held.
func (n *Broker) onlineElsewhereLocked(c nickClaim, live bool) (nodes []string, sessions int) {
	now := time.Now()
	for id, s := range c.Nodes {
		if id != n.id && !s.held() && (!live || n.aliveLocked(id, now)) {
			nodes = append(nodes, id)
			sessions += max(s.Sessions, 1)
		}
	}
	return nodes, sessions
}

// ownSlot is what this node wants its slot in a nick's entry to be, and
// the nick and account it claimed, to claim again after a burial.
type ownSlot struct {
	nodeClaim
	nick, account string
}

// keyLocks orders this node's writes of one nick's entry: a claim and the
// release before it, run on two goroutines, must not cross.
type keyLocks struct {
	seed maphash.Seed
	mu   [64]chanMutex
}

// chanMutex is a mutex a goroutine may wait on while the node stops.
type chanMutex chan struct{}

func newKeyLocks() *keyLocks {
	k := &keyLocks{seed: maphash.MakeSeed()}
	for i := range k.mu {
		k.mu[i] = make(chanMutex, 1)
	}
	return k
}

func (k *keyLocks) of(key string) chanMutex {
	return k.mu[maphash.String(k.seed, key)%uint64(len(k.mu))]
}

// lockKey takes the lock of key's entry; it fails when the node stops.
func (n *Broker) lockKey(ctx context.Context, key string) (unlock func(), err error) {
	m := n.keyLocks.of(key)
	select {
	case m <- struct{}{}:
		return func() { <-m }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// applyNick applies an entry of the nicks bucket to the replica. An entry
// that no longer has this node's slot, which this node still wants, was
// changed by another node: one that took this node for dead (then this
// node claims again), or, for a held slot, a login with its resume token
// (then the hub forgets its hold).
func (n *Broker) applyNick(e jetstream.KeyValueEntry) {
	k := unkey(e.Key())
	var c nickClaim
	deleted := isDelete(e)
	if !deleted && sonic.Unmarshal(e.Value(), &c) != nil {
		return
	}
	c.rev = e.Revision()
	n.mu.Lock()
	if old, ok := n.dir[k]; ok && old.rev > c.rev {
		n.mu.Unlock()
		return // a local write got here first
	}
	if deleted {
		n.dropDirLocked(k)
	} else {
		n.setDirLocked(k, c)
	}
	want, ours := n.mine[k]
	_, still := c.Nodes[n.id]
	lost := ours && !still
	if lost && want.held() {
		delete(n.mine, k)
	}
	n.mu.Unlock()
	switch {
	case lost && want.held():
		n.h.HoldTaken(k)
	case lost:
		n.reassertSoon()
	}
}

// setDirLocked and dropDirLocked change the replica, its sorted index of
// the users listed, and the count of slots per node. n.mu held.
func (n *Broker) setDirLocked(key string, c nickClaim) {
	n.dropDirLocked(key)
	n.dir[key] = c
	for id := range c.Nodes {
		n.slots[id]++
	}
	if c.listed() {
		n.users.Add(key, c.Nick)
	}
}

func (n *Broker) dropDirLocked(key string) {
	old, ok := n.dir[key]
	if !ok {
		return
	}
	for id := range old.Nodes {
		if n.slots[id]--; n.slots[id] <= 0 {
			delete(n.slots, id)
		}
	}
	delete(n.dir, key)
	n.users.Remove(key)
}

// ClaimNick claims a nick for a local login.
func (n *Broker) ClaimNick(c broker.NickClaim, done func(error)) {
	n.goRun(func() {
		done(n.claimNick(c))
	})
}

// claimNick writes this node's slot into the nick's entry, if the login
// may have it (see the top of this file).
func (n *Broker) claimNick(c broker.NickClaim) error {
	if !n.connected() {
		return fmt.Errorf("%w: the cluster bus is down", codec.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	unlock, err := n.lockKey(ctx, c.Key)
	if err != nil {
		return fmt.Errorf("%w: nick claim: %v", codec.ErrUnavailable, err)
	}
	defer unlock()
	account, resume := accountHash(c.Account), resumeHash(c.Resume)
	written := nickClaim{Nick: c.Nick, Account: account, Nodes: map[string]nodeClaim{n.id: {Sessions: 1}}}
	val, _ := sonic.Marshal(written)
	rev, err := n.nicks.Create(ctx, hexKey(c.Key), val) // the common case: nobody holds it
	if errors.Is(err, jetstream.ErrKeyExists) {
		var refusal error
		written, rev, err = n.editClaim(ctx, c.Key, func(cur *nickClaim) bool {
			refusal = n.joinClaim(cur, c, account, resume)
			return refusal == nil
		})
		if err == nil && refusal != nil {
			return refusal
		}
	}
	if err != nil {
		return fmt.Errorf("%w: nick claim: %v", codec.ErrUnavailable, err)
	}
	n.mu.Lock()
	n.mine[c.Key] = ownSlot{nodeClaim: nodeClaim{Sessions: 1}, nick: c.Nick, account: account}
	if old, in := n.dir[c.Key]; !in || old.rev < rev {
		written.rev = rev
		n.setDirLocked(c.Key, written)
	}
	n.mu.Unlock()
	return nil
}

// joinClaim changes the entry cur so that this node holds a slot in it
// for login c, or says why it may not. The slots of dead nodes and this
// node's own leftover go first (the hub's nick index already refused a
// nick online here); a held slot whose resume token c presents is taken
// over; the account that holds the nick takes its held slots back, as a
// login on one node takes its own hold back.
func (n *Broker) joinClaim(cur *nickClaim, c broker.NickClaim, account, resume string) error {
	n.mu.Lock()
	now := time.Now()
	for id, s := range cur.Nodes {
		if id == n.id || !n.aliveLocked(id, now) || resume != "" && s.Resume == resume ||
			account != "" && account == cur.Account && s.held() {
			delete(cur.Nodes, id)
		}
	}
	n.mu.Unlock()
	total, held := 0, false
	for _, s := range cur.Nodes {
		if s.held() {
			held = true
		} else {
			total += max(s.Sessions, 1)
		}
	}
	switch {
	case len(cur.Nodes) == 0:
		cur.Nick, cur.Account = c.Nick, account
	case account == "" || account != cur.Account:
		if held && total == 0 {
			return fmt.Errorf("%w: %q is held for its last session", codec.ErrNickTaken, cur.Nick)
		}
		return codec.NotOnline(codec.ErrNickTaken, cur.Nick)
	case c.MaxSessions > 0 && total >= c.MaxSessions:
		return fmt.Errorf("%w: this account has %d sessions, the most allowed", codec.ErrTooManySessions, total)
	}
	if cur.Nodes == nil {
		cur.Nodes = map[string]nodeClaim{}
	}
	cur.Nodes[n.id] = nodeClaim{Sessions: 1}
	return nil
}

// editClaim reads the entry of the nick key, lets edit change it, and
// writes it back if edit says so: by compare-and-set, reading again when
// another node wrote first. An entry left with no slot is deleted. It
// returns the entry and the revision written (0 when nothing was).
func (n *Broker) editClaim(ctx context.Context, key string, edit func(*nickClaim) bool) (nickClaim, uint64, error) {
	for {
		var cur nickClaim
		var rev uint64
		e, err := n.nicks.Get(ctx, hexKey(key))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return cur, 0, err
		default:
			rev = e.Revision()
			if sonic.Unmarshal(e.Value(), &cur) != nil {
				cur = nickClaim{}
			}
		}
		if !edit(&cur) {
			return cur, 0, nil
		}
		var next uint64
		switch {
		case len(cur.Nodes) == 0 && rev == 0:
			return cur, 0, nil
		case len(cur.Nodes) == 0:
			err = n.nicks.Delete(ctx, hexKey(key), jetstream.LastRevision(rev))
		case rev == 0:
			val, _ := sonic.Marshal(cur)
			next, err = n.nicks.Create(ctx, hexKey(key), val)
		default:
			val, _ := sonic.Marshal(cur)
			next, err = n.nicks.Update(ctx, hexKey(key), val, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || wrongRevision(err) {
			continue // another node wrote first: read it again
		}
		return cur, next, err
	}
}

// wrongRevision reports a compare-and-set that lost to another write.
func wrongRevision(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || wrongLast(err)
}

// NickSessions records how many sessions the user key has here.
func (n *Broker) NickSessions(key string, sessions int) {
	n.mu.Lock()
	want, ok := n.mine[key]
	if !ok || want.Sessions == sessions {
		n.mu.Unlock()
		return
	}
	want.nodeClaim = nodeClaim{Sessions: sessions}
	n.mine[key] = want
	n.mu.Unlock()
	n.syncSlotSoon(key)
}

// ReleaseNick gives up this node's slot in a nick's entry, or, with a
// resume token, marks it held for that token: in the replica at once, so
// that every node stops listing the user as soon as the entry reaches it.
func (n *Broker) ReleaseNick(key string, resume string) {
	n.mu.Lock()
	want, ok := n.mine[key]
	if !ok {
		n.mu.Unlock()
		return
	}
	want.nodeClaim = nodeClaim{Resume: resumeHash(resume)}
	if resume == "" {
		delete(n.mine, key)
	} else {
		n.mine[key] = want
	}
	if c, in := n.dir[key]; in {
		c.Nodes = cloneSlots(c.Nodes)
		if resume == "" {
			delete(c.Nodes, n.id)
		} else {
			c.Nodes[n.id] = want.nodeClaim
		}
		n.setDirLocked(key, c)
	}
	n.mu.Unlock()
	n.syncSlotSoon(key)
}

func cloneSlots(m map[string]nodeClaim) map[string]nodeClaim {
	out := make(map[string]nodeClaim, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// syncSlotSoon writes this node's slot in the nick's entry as it wants it
// now, on a goroutine of its own.
func (n *Broker) syncSlotSoon(key string) {
	if !n.connected() {
		return // reassert writes it when the bus is back
	}
	n.goRun(func() {
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		defer cancel()
		unlock, err := n.lockKey(ctx, key)
		if err != nil {
			return
		}
		defer unlock()
		_, _, _ = n.editClaim(ctx, key, func(cur *nickClaim) bool {
			n.mu.Lock()
			want, ok := n.mine[key]
			n.mu.Unlock()
			have, in := cur.Nodes[n.id]
			switch {
			case !in:
				return false // gone: removed by another node, or never written
			case !ok:
				delete(cur.Nodes, n.id)
			case have == want.nodeClaim:
				return false
			default:
				cur.Nodes[n.id] = want.nodeClaim
			}
			return true
		})
	})
}

// Users pages the replica of the nicks bucket.
func (n *Broker) Users(afterKey string, limit int) ([]broker.User, bool, int) {
	return n.users.Page(afterKey, limit)
}

// Lookup finds the user with key online on another node, from the
// replica.
func (n *Broker) Lookup(key string) (broker.User, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.dir[key]
	if !ok {
		return broker.User{}, false
	}
	nodes, _ := n.onlineElsewhereLocked(c, false)
	if len(nodes) == 0 {
		return broker.User{}, false
	}
	return broker.User{Key: key, Nick: c.Nick, Node: nodes[0]}, true
}

// Elsewhere counts the user's sessions on the other live nodes.
func (n *Broker) Elsewhere(key string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.dir[key]
	if !ok {
		return 0
	}
	_, sessions := n.onlineElsewhereLocked(c, false)
	return sessions
}

// whereOnline finds the other nodes where a nick is online: in the
// replica, or when the replica does not know it yet, in the bucket itself.
func (n *Broker) whereOnline(key string) (nick string, nodes []string) {
	n.mu.Lock()
	c, ok := n.dir[key]
	n.mu.Unlock()
	if !ok && n.connected() {
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		defer cancel()
		e, err := n.nicks.Get(ctx, hexKey(key))
		if err != nil || sonic.Unmarshal(e.Value(), &c) != nil {
			return "", nil
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	nodes, _ = n.onlineElsewhereLocked(c, true) // a DM for a dead node's user is left offline
	return c.Nick, nodes
}

// buryNicksLocked takes a dead node's slots out of the replica and
// returns the nicks that had one. n.mu held.
func (n *Broker) buryNicksLocked(id string) []string {
	if n.slots[id] == 0 {
		return nil
	}
	var keys []string
	for k, c := range n.dir {
		if _, in := c.Nodes[id]; in {
			c.Nodes = cloneSlots(c.Nodes)
			delete(c.Nodes, id)
			if len(c.Nodes) == 0 {
				n.dropDirLocked(k)
			} else {
				n.setDirLocked(k, c)
			}
			keys = append(keys, k)
		}
	}
	return keys
}

// dropSlots removes node id's slot from the entries of keys in the
// bucket, while id is still dead (every survivor tries; the writes are
// compare-and-set, so they do not cross).
func (n *Broker) dropSlots(ctx context.Context, id string, keys []string) {
	for _, k := range keys {
		_, _, _ = n.editClaim(ctx, k, func(cur *nickClaim) bool {
			if _, in := cur.Nodes[id]; !in || n.alive(id) {
				return false
			}
			delete(cur.Nodes, id)
			return true
		})
	}
}

// reclaimNick writes this node's slot back into a nick's entry after
// another node removed it (it took this node for dead), unless the nick
// went to someone else meanwhile: then it is online twice until one of
// them leaves.
func (n *Broker) reclaimNick(ctx context.Context, k string) {
	unlock, err := n.lockKey(ctx, k)
	if err != nil {
		return
	}
	defer unlock()
	_, _, _ = n.editClaim(ctx, k, func(cur *nickClaim) bool {
		n.mu.Lock()
		want, ok := n.mine[k]
		n.mu.Unlock()
		if _, in := cur.Nodes[n.id]; in || !ok {
			return false
		}
		switch {
		case len(cur.Nodes) == 0:
			cur.Nick, cur.Account, cur.Nodes = want.nick, want.account, map[string]nodeClaim{}
		case want.account == "" || cur.Account != want.account:
			n.log.Warn("nick claimed on another node during the outage", "nick", cur.Nick)
			return false
		}
		cur.Nodes[n.id] = want.nodeClaim
		return true
	})
}

// purgeOwnSlots removes the slots left by an earlier run under this node
// id: nothing of that run is online any more.
func (n *Broker) purgeOwnSlots(ctx context.Context) error {
	lister, err := n.nicks.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("natsbroker: list %s: %w", n.nicks.Bucket(), err)
	}
	for k := range lister.Keys() {
		_, _, _ = n.editClaim(ctx, unkey(k), func(cur *nickClaim) bool {
			if _, in := cur.Nodes[n.id]; !in {
				return false
			}
			delete(cur.Nodes, n.id)
			return true
		})
	}
	return nil
}
