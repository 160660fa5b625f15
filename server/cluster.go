package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// node is this server's part in a cluster (docs/CLUSTER.md): its NATS
// connection and its replicas of the cluster's state. A single node has no
// node (hub.cluster is nil). Methods are safe from any goroutine unless
// they say otherwise; none takes a room lock while holding n.mu.
type node struct {
	h    *hub
	id   string
	hb   time.Duration
	subj subjects
	log  *slog.Logger

	nc     *nats.Conn
	js     jetstream.JetStream
	nicks  jetstream.KeyValue // folded nick → the node it is online on
	owners jetstream.KeyValue // room → the node that sequences it
	seqs   jetstream.Stream   // the last message of every room
	inbox  chan *nats.Msg     // room, node, heartbeat and who traffic, in bus order
	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup // the dispatcher, the heartbeat and the watchers
	ops    sync.WaitGroup // requests on behalf of sessions

	mu        sync.Mutex
	since     time.Time                   // when the bus connection was last made; zero while down
	peers     map[string]time.Time        // node id → when it was last heard
	dir       map[string]dirEntry         // nick key → where it is online
	users     *userIndex                  // dir's nicks, sorted, for who
	owner     map[string]ownerEntry       // room → its owner
	pending   map[pendingKey][]pendingSay // says forwarded to owners, oldest first
	mine      map[string]uint64           // folded nick → revision of this node's claim
	joining   map[string]bool             // folded nicks being claimed by local logins
	stopped   bool
	quiescing bool // stop is waiting for the requests in flight
}

// dirEntry is one online user in the replica of the nicks bucket.
type dirEntry struct {
	Node string `json:"node"`
	Nick string `json:"nick"`
	rev  uint64
}

// ownerEntry is one room in the replica of the owners bucket.
type ownerEntry struct {
	node string
	rev  uint64
}

// opTimeout bounds every request a node makes to NATS or to another node.
const opTimeout = 2 * time.Second

// deadAfter is how many heartbeats a node may miss before it is dead.
const deadAfter = 3

var errNotOwner = errors.New("server: not the room's owner")

func randomNodeID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func newNode(h *hub) *node {
	cfg := h.cfg
	return &node{
		h: h, id: cfg.NodeID, hb: cfg.NodeHeartbeat,
		subj: subjects{cfg.ClusterName}, log: cfg.Logger.With("node", cfg.NodeID),
		inbox: make(chan *nats.Msg, 1<<16),
		peers: map[string]time.Time{}, dir: map[string]dirEntry{}, users: newUserIndex(),
		owner: map[string]ownerEntry{}, pending: map[pendingKey][]pendingSay{},
		mine: map[string]uint64{}, joining: map[string]bool{},
	}
}

// start connects to NATS, creates the buckets and the stream if needed, and
// starts the replicas, the dispatcher and the heartbeat. The first
// connection must succeed; later outages are survived.
func (n *node) start() error {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	nc, err := nats.Connect(n.h.cfg.NATS,
		nats.Name("parley-"+n.id),
		nats.NoEcho(), // a node delivers its own room messages without the bus
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.ReconnectBufSize(-1), // fail fast while down: never replay stale traffic
		// A silent link to NATS (no FIN) is noticed after 3 unanswered pings;
		// at least a second apart, so a busy machine is not taken for an
		// outage.
		nats.PingInterval(max(n.hb, time.Second)),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(n.disconnected),
		nats.ReconnectHandler(n.reconnected),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			n.log.Warn("cluster bus error", "err", err)
		}),
	)
	if err != nil {
		return fmt.Errorf("server: connect to NATS at %s: %w", n.h.cfg.NATS, err)
	}
	n.nc = nc
	if err := n.setup(); err != nil {
		nc.Close()
		return err
	}
	n.mu.Lock()
	n.since = time.Now()
	n.mu.Unlock()
	for _, subject := range []string{n.subj.heartbeat(), n.subj.who(), n.subj.node(n.id) + ".>"} {
		if _, err := nc.ChanSubscribe(subject, n.inbox); err != nil {
			nc.Close()
			return fmt.Errorf("server: subscribe %s: %w", subject, err)
		}
	}
	if err := n.purgeOwnKeys(); err != nil {
		nc.Close()
		return err
	}
	n.goLoop(n.dispatch)
	n.goLoop(n.heartbeat)
	if err := n.watch(); err != nil {
		n.kill()
		return err
	}
	if err := n.establish(n.h.lobby.name); err != nil {
		n.kill()
		return err
	}
	n.log.Info("joined cluster", "nats", nc.ConnectedUrl(), "cluster", n.subj.cluster)
	return nil
}

// setup creates (or finds) the key-value buckets and the stream.
func (n *node) setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("server: JetStream: %w", err)
	}
	n.js = js
	if n.nicks, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.subj.cluster + "_nicks", Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("server: nicks bucket (is JetStream enabled on the NATS server?): %w", err)
	}
	if n.owners, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.subj.cluster + "_owners", Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("server: owners bucket: %w", err)
	}
	n.seqs, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              n.subj.cluster + "_seq",
		Subjects:          []string{n.subj.roomMsgs()},
		MaxMsgsPerSubject: 1, // only the last message of each room: its seq
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("server: seq stream: %w", err)
	}
	return nil
}

// goRun runs a request on behalf of a session; stop waits for it. Once
// stop has begun waiting, nothing new starts.
func (n *node) goRun(fn func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.quiescing {
		return
	}
	n.ops.Add(1)
	go func() {
		defer n.ops.Done()
		fn()
	}()
}

// goLoop runs one of the node's long-lived goroutines.
func (n *node) goLoop(fn func()) {
	n.loops.Add(1)
	go func() {
		defer n.loops.Done()
		fn()
	}()
}

// stop says goodbye (unless the node is being killed), closes the bus
// connection and waits for the node's goroutines.
func (n *node) stop() {
	n.mu.Lock()
	already := n.quiescing
	n.quiescing = true
	n.mu.Unlock()
	if already {
		return
	}
	done := make(chan struct{})
	go func() { n.ops.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(opTimeout):
	}
	if n.connected() {
		n.publish(n.subj.heartbeat(), &busMsg{Node: n.id, Leaving: true})
		_ = n.nc.FlushTimeout(opTimeout)
	}
	n.kill()
}

// kill drops the bus connection without a word to the other nodes, as a
// crash would. Tests use it to kill a node.
func (n *node) kill() {
	n.mu.Lock()
	n.stopped, n.quiescing = true, true
	n.mu.Unlock()
	n.cancel()
	n.nc.Close()
	n.loops.Wait()
	n.ops.Wait()
}

// connected reports whether the bus is up.
func (n *node) connected() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.since.IsZero() && !n.stopped
}

func (n *node) disconnected(_ *nats.Conn, err error) {
	n.mu.Lock()
	n.since = time.Time{}
	n.mu.Unlock()
	n.log.Warn("cluster bus lost: serving local users only", "err", err)
}

func (n *node) reconnected(nc *nats.Conn) {
	n.mu.Lock()
	n.since = time.Now()
	n.mu.Unlock()
	n.log.Warn("cluster bus back", "nats", nc.ConnectedUrl())
	n.goLoop(n.reassert)
}

// ClusterStats describes a node's view of its cluster.
type ClusterStats struct {
	Node      string // this node's id
	Connected bool   // the bus is up; false means degraded: local users only
	Peers     int    // other nodes heard within the dead-node bound
	Users     int    // users online in the whole cluster, as this node knows
}

func (n *node) stats() *ClusterStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &ClusterStats{Node: n.id, Connected: !n.since.IsZero(), Peers: len(n.livePeersLocked()), Users: len(n.dir)}
}

// subjects names the cluster's NATS subjects. Room and nick names go into
// subjects and keys hex-encoded, so any valid name is one token.
type subjects struct{ cluster string }

func (s subjects) heartbeat() string     { return s.cluster + ".hb" }
func (s subjects) who() string           { return s.cluster + ".who" }
func (s subjects) node(id string) string { return s.cluster + ".node." + id }
func (s subjects) roomMsgs() string      { return s.cluster + ".room.*.msg" }
func (s subjects) room(name string) string {
	return s.cluster + ".room." + hex.EncodeToString([]byte(name))
}
func (s subjects) roomMsg(name string) string { return s.room(name) + ".msg" }
func (s subjects) roomPres(name string) string {
	return s.room(name) + ".pres"
}

// hexKey returns the bucket key of a room name or folded nick.
func hexKey(name string) string { return hex.EncodeToString([]byte(name)) }

func unkey(k string) string {
	b, _ := hex.DecodeString(k)
	return string(b)
}
