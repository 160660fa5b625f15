package natsbroker

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// heartbeat tells the other nodes this one is alive every n.hb, and buries
// the nodes that went silent.
func (n *Broker) heartbeat() {
	t := time.NewTicker(n.hb)
	defer t.Stop()
	for beat := 0; ; beat++ {
		if n.connected() {
			n.publish(n.subj.heartbeat(), &busMsg{Node: n.id})
			if beat%roomReportEvery == 0 {
				n.reportRooms()
			}
		}
		n.buryDead()
		n.expireSays()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heard records a heartbeat from another node, or buries a node that says
// it is leaving. Dispatcher goroutine.
func (n *Broker) heard(m *busMsg) {
	if m.Node == n.id {
		return
	}
	if m.Leaving {
		n.bury(m.Node)
		return
	}
	n.heardFrom(m.Node)
}

// heardFrom notes that node id was alive just now: its heartbeat, or
// presence it sent. A node whose members this node records must be one
// it knows of, or its death would leave them here for good.
func (n *Broker) heardFrom(id string) {
	n.mu.Lock()
	n.peers[id] = time.Now()
	n.mu.Unlock()
}

// alive reports whether node id is alive as far as this node can tell.
func (n *Broker) alive(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.aliveLocked(id, time.Now())
}

// aliveLocked: a node is alive until it has been silent for DeadAfter
// heartbeats while this node was connected. Silence is counted from the
// later of its last heartbeat and this node's last (re)connection, so a
// node that just connected, or just came back from an outage, gives every
// node a full bound to be heard. While the bus is down nobody is declared
// dead. n.mu held.
func (n *Broker) aliveLocked(id string, now time.Time) bool {
	if id == n.id {
		return true
	}
	last, known := n.peers[id]
	if n.since.IsZero() {
		return known
	}
	if last.Before(n.since) {
		last = n.since
	}
	return now.Sub(last) <= DeadAfter*n.hb
}

// livePeersLocked returns the other nodes that are alive: those heard from,
// and those named by a user in the directory. n.mu held.
func (n *Broker) livePeersLocked() []string {
	now := time.Now()
	seen := map[string]bool{n.id: true}
	var out []string
	consider := func(id string) {
		if !seen[id] {
			seen[id] = true
			if n.aliveLocked(id, now) {
				out = append(out, id)
			}
		}
	}
	for id := range n.peers {
		consider(id)
	}
	for id := range n.slots {
		consider(id)
	}
	return out
}

// buryDead buries every node that is no longer alive and still has users,
// rooms or a heartbeat record here.
func (n *Broker) buryDead() {
	now := time.Now()
	dead := map[string]bool{}
	n.mu.Lock()
	if n.since.IsZero() || n.stopped {
		n.mu.Unlock()
		return
	}
	for id := range n.peers {
		dead[id] = !n.aliveLocked(id, now)
	}
	for id := range n.slots {
		dead[id] = dead[id] || !n.aliveLocked(id, now)
	}
	for _, o := range n.owner {
		dead[o.node] = dead[o.node] || !n.aliveLocked(o.node, now)
	}
	n.mu.Unlock()
	for id, isDead := range dead {
		if isDead {
			n.bury(id)
		}
	}
}

// bury forgets a dead node: its users leave every room here with reason
// disconnect, and its nick and room claims are deleted from the buckets
// (every survivor tries; the deletes are conditional, so one wins).
func (n *Broker) bury(id string) {
	type claim struct {
		kv  jetstream.KeyValue
		key string
		rev uint64
	}
	var claims []claim
	var rooms []string // rooms it owned: what it stored last may not have reached this node
	n.mu.Lock()
	delete(n.peers, id)
	delete(n.roomsOf, id)
	nicks := n.buryNicksLocked(id)
	for name, o := range n.owner {
		if o.node == id {
			claims = append(claims, claim{n.owners, hexKey(name), o.rev})
			rooms = append(rooms, name)
			delete(n.owner, name)
		}
	}
	n.mu.Unlock()
	for _, room := range rooms {
		n.resync(room)
	}
	left := n.h.NodeDown(id)
	if len(claims) == 0 && len(nicks) == 0 && left == 0 {
		return
	}
	n.log.Warn("node dead: its users left", "dead", id, "nicks", len(nicks), "rooms", len(claims), "memberships", left)
	n.goRun(func() {
		ctx, cancel := context.WithTimeout(n.ctx, 2*opTimeout+opTimeout*time.Duration(len(nicks)/100))
		defer cancel()
		for _, c := range claims {
			_ = c.kv.Delete(ctx, c.key, jetstream.LastRevision(c.rev))
		}
		n.dropSlots(ctx, id, nicks)
	})
}

// reassert runs after the bus comes back: it catches every followed room
// up with its log, restores this node's nick claims if a survivor deleted
// them during the outage, and tells every room's other nodes who is here,
// so their replicas heal.
func (n *Broker) reassert() {
	// nats.go has sent the subscriptions again; once the server has them,
	// nothing stored from then on is missed, and the catch-up covers what
	// was stored before.
	_ = n.nc.FlushTimeout(opTimeout)
	n.resyncAll()
	ctx, cancel := context.WithTimeout(n.ctx, 4*opTimeout)
	defer cancel()
	n.mu.Lock()
	mine := make([]string, 0, len(n.mine))
	for k, want := range n.mine {
		if !want.held() {
			mine = append(mine, k)
		}
	}
	n.mu.Unlock()
	for _, k := range mine {
		n.reclaimNick(ctx, k)
	}
	for _, room := range n.h.LocalRooms() {
		n.publish(n.subj.roomPres(room), &busMsg{Node: n.id, Sync: true, Members: n.h.LocalMembers(room)})
	}
}

// reassertSoon runs reassert once, unless a run is already waiting: the
// other nodes buried this one while it still serves its users.
func (n *Broker) reassertSoon() {
	if n.reasserting.CompareAndSwap(false, true) {
		n.log.Warn("the other nodes took this node for dead: telling them again who is here")
		n.goLoop(func() {
			n.reasserting.Store(false)
			n.reassert()
		})
	}
}
