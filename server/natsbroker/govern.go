package natsbroker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/codec"
	"parley/server/broker"
	"parley/server/moderation"
)

// Rooms people run, across the cluster (docs/CLUSTER.md "Governance"):
// the rules live in a key-value bucket that every node replicates into
// its hub (RulesChanged), the audit log is a stream every node reads in
// order (Audited), and what a moderation action does to sessions and
// members crosses the bus to every node (Notice). Each node reports
// the rooms it has members in every few heartbeats, for the room list.
//
// The broker is the hub's RulesStore in a cluster: SaveRules and
// AppendAudit queue for one writer goroutine, so a node's writes keep
// their order and nothing under the hub's lock waits for NATS.

// DefaultAuditLen is Config.AuditLen's default.
const DefaultAuditLen = moderation.DefaultAuditLen

// roomReportEvery is how many heartbeats apart a node reports its rooms.
const roomReportEvery = 3

// govWrite is one write of the rules or the audit log.
type govWrite struct {
	key   string // the rules' key; for an audit entry, the id the stream dedupes it by, or ""
	data  []byte // nil: delete the key
	audit bool
	// account: a record of the account table (accounts.go)
	account bool
}

// SaveRules queues the rules under key for the bucket (nil: delete). It
// never blocks: a full queue drops the write and counts it.
func (n *Broker) SaveRules(key string, data []byte) {
	n.mu.Lock()
	n.rulesPending[key]++
	n.mu.Unlock()
	if !n.queueGov(govWrite{key: key, data: data}) {
		n.mu.Lock()
		n.rulesPending[key]--
		n.mu.Unlock()
	}
}

// AppendAudit queues e for the audit stream; the hub's log gets it back,
// numbered, from the stream (Audited), as every node's does. The end of a
// timed limit, which every node logs in its own sweep, carries an id
// made of what ended, so that the stream keeps it once.
func (n *Broker) AppendAudit(e codec.AuditEntry, _ *moderation.AuditLog) {
	data, err := sonic.Marshal(e)
	if err != nil {
		return
	}
	id := ""
	if strings.HasSuffix(e.Action, "_end") {
		id = fmt.Sprintf("%s|%s|%s|%d", e.Action, hexKey(e.Room), hexKey(e.Target), e.Until)
	}
	n.queueGov(govWrite{key: id, data: data, audit: true})
}

func (n *Broker) queueGov(w govWrite) bool {
	select {
	case n.govOut <- w:
		return true
	default:
		n.droppedOne("a moderation write was dropped: the queue to NATS is full", "key", w.key, "audit", w.audit)
		return false
	}
}

// govWriter writes the rules and the audit entries in the order they
// were queued, each waiting for JetStream's answer.
func (n *Broker) govWriter() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case w := <-n.govOut:
			n.writeGov(w)
		}
	}
}

func (n *Broker) writeGov(w govWrite) {
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	if w.account {
		n.writeAccount(ctx, w)
		return
	}
	if w.audit {
		var opts []jetstream.PublishOpt
		if w.key != "" {
			opts = append(opts, jetstream.WithMsgID(w.key))
		}
		if _, err := n.js.Publish(ctx, n.subj.audit(), w.data, opts...); err != nil {
			n.log.Error("an audit entry was not stored", "err", err)
		}
		return
	}
	var rev uint64
	var err error
	if w.data == nil {
		err = n.rules.Delete(ctx, hexKey(w.key))
	} else {
		rev, err = n.rules.Put(ctx, hexKey(w.key), w.data)
	}
	n.mu.Lock()
	n.rulesPending[w.key]--
	if n.rulesPending[w.key] == 0 {
		delete(n.rulesPending, w.key)
	}
	if rev > n.rulesRev[w.key] {
		n.rulesRev[w.key] = rev
	}
	n.mu.Unlock()
	if err != nil {
		n.log.Error("rules were not stored in the cluster", "key", w.key, "err", err)
	}
}

// applyRules hands a rules entry to the hub, unless it is this node's
// own write coming back, or older than a write of this node's still
// going out: the hub has newer rules already.
func (n *Broker) applyRules(e jetstream.KeyValueEntry) {
	key := unkey(e.Key())
	n.mu.Lock()
	stale := n.rulesPending[key] > 0 || e.Revision() <= n.rulesRev[key]
	n.mu.Unlock()
	if stale {
		return
	}
	var data []byte
	if !isDelete(e) {
		data = e.Value()
	}
	n.h.RulesChanged(key, data)
}

// readAudit reads the audit stream from its start, then as it grows, and
// hands each entry to the hub with the stream's sequence as its seq.
func (n *Broker) readAudit() {
	cons, err := n.auditStream.OrderedConsumer(n.ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		n.log.Error("the audit log cannot be read", "err", err)
		return
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		var e codec.AuditEntry
		if err != nil || sonic.Unmarshal(m.Data(), &e) != nil {
			return
		}
		e.Seq = meta.Sequence.Stream
		n.h.Audited(e)
	})
	if err != nil {
		n.log.Error("the audit log cannot be read", "err", err)
		return
	}
	<-n.ctx.Done()
	cc.Stop()
}

// Notice tells the other nodes of something that happened in a room.
func (n *Broker) Notice(m broker.RoomNotice) {
	data, err := sonic.Marshal(&m)
	if err == nil {
		n.enqueue(outMsg{subject: n.subj.notice(), data: data})
	}
}

// moderated applies another node's action. Dispatcher goroutine.
func (n *Broker) noticed(msg *nats.Msg) {
	var m broker.RoomNotice
	if sonic.Unmarshal(msg.Data, &m) == nil {
		n.h.Noticed(m)
	}
}

// roomReport is a node's rooms with members, for the room list.
type roomReport struct {
	Node  string             `json:"node"`
	Rooms []broker.RoomCount `json:"rooms"`
}

// reportRooms tells the other nodes which rooms have members here.
func (n *Broker) reportRooms() {
	data, err := sonic.Marshal(&roomReport{Node: n.id, Rooms: n.h.LocalRoomCounts()})
	if err == nil {
		n.enqueue(outMsg{subject: n.subj.rooms(), data: data})
	}
}

// roomsReported keeps another node's report. Dispatcher goroutine.
func (n *Broker) roomsReported(msg *nats.Msg) {
	var r roomReport
	if sonic.Unmarshal(msg.Data, &r) != nil || r.Node == n.id {
		return
	}
	n.mu.Lock()
	if _, alive := n.peers[r.Node]; alive {
		n.roomsOf[r.Node] = r.Rooms
	}
	n.mu.Unlock()
}

// RoomCounts returns the rooms the live nodes last reported.
func (n *Broker) RoomCounts() []broker.RoomCount {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []broker.RoomCount
	for node, rooms := range n.roomsOf {
		if _, alive := n.peers[node]; alive {
			out = append(out, rooms...)
		}
	}
	return out
}

// auditStreamConfig is the audit log's stream: the newest auditLen
// entries, on disk.
func (n *Broker) auditStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: n.subj.cluster + "_audit", Subjects: []string{n.subj.audit()},
		Storage: jetstream.FileStorage, MaxMsgs: int64(n.cfg.AuditLen), Discard: jetstream.DiscardOld,
		MaxAge: 0, Duplicates: time.Minute,
	}
}

// NoticeUser sends a droppable frame to the other nodes the user with
// key is online on; nothing if it is online on none.
func (n *Broker) NoticeUser(key string, frame []byte) {
	n.mu.Lock()
	nodes, _ := n.onlineElsewhereLocked(n.dir[key], false)
	n.mu.Unlock()
	for _, id := range nodes {
		n.publish(n.subj.node(id)+".unotice", &busMsg{To: key, Body: string(frame)})
	}
}
