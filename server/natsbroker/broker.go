// Package natsbroker is a hub's broker for a cluster of nodes on NATS with
// JetStream (docs/CLUSTER.md): one owner node sequences each room, nicks
// are claimed in a key-value bucket, and presence, direct messages and
// forwarded says cross as NATS messages. It talks to the hub only through
// parley/server/broker's interfaces.
package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/server/broker"
)

var _ broker.Broker = (*Broker)(nil)

// Config configures a Broker.
type Config struct {
	// URL is the NATS server (with JetStream) to connect to.
	URL string
	// NodeID names this node; unique among the running nodes (ValidName).
	NodeID string
	// ClusterName prefixes the subjects, buckets and stream (ValidName).
	ClusterName string
	// Heartbeat is how often the node tells the others it is alive; one
	// silent for 3 heartbeats is dead.
	Heartbeat time.Duration
	// Logger receives the broker's log.
	Logger *slog.Logger
	// QueueLen bounds the messages waiting for the bus (docs/CLUSTER.md).
	// Default 65536.
	QueueLen int
}

// DefaultQueueLen is Config.QueueLen's default.
const DefaultQueueLen = 1 << 16

// Broker is a hub's broker in a cluster on NATS (docs/CLUSTER.md): its
// NATS connection, its replicas of the cluster's state, and the queue of
// messages for the bus, which one writer goroutine drains so that nothing
// on an event loop or under a room lock waits for NATS. It knows the hub
// only as a broker.Handler. Methods are safe from any goroutine; none
// calls the hub while holding n.mu.
type Broker struct {
	h    broker.Handler
	cfg  Config
	id   string
	hb   time.Duration
	subj subjects
	log  *slog.Logger

	nc         *nats.Conn
	js         jetstream.JetStream
	nicks      jetstream.KeyValue // nick key → the node it is online on
	owners     jetstream.KeyValue // room → the node that sequences it
	seqs       jetstream.Stream   // the last message of every room
	inbox      chan *nats.Msg     // room, node, heartbeat and who traffic, in bus order
	out        chan outMsg        // messages for the bus, in the order they were produced
	writerDone chan struct{}      // closed when the writer goroutine has returned
	dropped    atomic.Int64       // messages dropped because out was full
	ctx        context.Context
	cancel     context.CancelFunc
	daemons    sync.WaitGroup // the dispatcher, the writer, the heartbeat and the watchers
	ops        sync.WaitGroup // requests on behalf of sessions

	mu        sync.Mutex
	since     time.Time                     // when the bus connection was last made; zero while down
	lastWarn  time.Time                     // when a full queue was last logged
	peers     map[string]time.Time          // node id → when it was last heard
	dir       map[string]dirEntry           // nick key → where it is online
	users     *broker.Directory             // dir's users, sorted, for who
	owner     map[string]ownerEntry         // room → its owner
	owned     map[string]bool               // rooms this node sequences
	claims    map[string][]queuedSay        // rooms being claimed: says waiting, in order
	subs      map[string]*nats.Subscription // followed rooms' traffic
	pending   map[pendingKey][]pendingSay   // says forwarded to owners, oldest first
	mine      map[string]uint64             // nick key → revision of this node's claim
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

// DeadAfter is how many heartbeats a node may miss before it is dead.
const DeadAfter = 3

// RandomNodeID returns a random node id.
func RandomNodeID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidName reports whether s may be a node id or cluster name: letters,
// digits, '_' and '-', which are one token in a NATS subject.
func ValidName(s string) bool {
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

// New returns a broker for cfg; Start connects it.
func New(cfg Config) *Broker {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	return &Broker{
		cfg: cfg, id: cfg.NodeID, hb: cfg.Heartbeat,
		subj: subjects{cfg.ClusterName}, log: cfg.Logger.With("node", cfg.NodeID),
		inbox: make(chan *nats.Msg, 1<<16), out: make(chan outMsg, cfg.QueueLen), writerDone: make(chan struct{}),
		peers: map[string]time.Time{}, dir: map[string]dirEntry{}, users: broker.NewDirectory(),
		owner: map[string]ownerEntry{}, owned: map[string]bool{}, claims: map[string][]queuedSay{},
		subs: map[string]*nats.Subscription{}, pending: map[pendingKey][]pendingSay{}, mine: map[string]uint64{},
	}
}

// Start connects to NATS, creates the buckets and the stream if needed,
// and starts the replicas, the dispatcher, the writer and the heartbeat.
// The first connection must succeed; later outages are survived.
func (n *Broker) Start(h broker.Handler) error {
	n.h = h
	n.ctx, n.cancel = context.WithCancel(context.Background())
	nc, err := nats.Connect(n.cfg.URL,
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
		return fmt.Errorf("natsbroker: connect to NATS at %s: %w", n.cfg.URL, err)
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
			return fmt.Errorf("natsbroker: subscribe %s: %w", subject, err)
		}
	}
	if err := n.purgeOwnKeys(); err != nil {
		nc.Close()
		return err
	}
	n.goLoop(n.dispatch)
	n.goLoop(n.writer)
	n.goLoop(n.heartbeat)
	if err := n.watch(); err != nil {
		n.Kill()
		return err
	}
	n.log.Info("joined cluster", "nats", nc.ConnectedUrl(), "cluster", n.subj.cluster)
	return nil
}

// setup creates (or finds) the key-value buckets and the stream.
func (n *Broker) setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("natsbroker: JetStream: %w", err)
	}
	n.js = js
	if n.nicks, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.subj.cluster + "_nicks", Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("natsbroker: nicks bucket (is JetStream enabled on the NATS server?): %w", err)
	}
	if n.owners, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.subj.cluster + "_owners", Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("natsbroker: owners bucket: %w", err)
	}
	n.seqs, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              n.subj.cluster + "_seq",
		Subjects:          []string{n.subj.roomMsgs()},
		MaxMsgsPerSubject: 1, // only the last message of each room: its seq
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("natsbroker: seq stream: %w", err)
	}
	return nil
}

// goRun runs a request on behalf of a session; stop waits for it. Once
// stop has begun waiting, nothing new starts.
func (n *Broker) goRun(fn func()) {
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
func (n *Broker) goLoop(fn func()) {
	n.daemons.Add(1)
	go func() {
		defer n.daemons.Done()
		fn()
	}()
}

// Stop says goodbye, closes the bus connection and waits for the
// broker's goroutines.
func (n *Broker) Stop() {
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
		// What is queued goes out, then the goodbye, unless the link is
		// so slow that it takes longer than opTimeout: Kill then closes
		// the connection, which ends a write stuck on it.
		flushed := make(chan struct{})
		go func() {
			defer close(flushed)
			n.publish(n.subj.heartbeat(), &busMsg{Node: n.id, Leaving: true})
			for len(n.out) > 0 { // the writer sends it all, in order
				time.Sleep(time.Millisecond)
			}
			_ = n.nc.FlushTimeout(opTimeout)
		}()
		select {
		case <-flushed:
		case <-time.After(opTimeout):
		}
	}
	n.Kill()
}

// Kill drops the bus connection without a goodbye to the other nodes, as
// a crash would. Tests use it to kill a node. What is already queued for
// the bus is still handed to nats.go (whose Close flushes its buffer), as
// far as the link takes it within opTimeout: the queue only moved the
// publishes that used to sit in nats.go's buffer at a crash.
func (n *Broker) Kill() {
	n.mu.Lock()
	n.stopped, n.quiescing = true, true
	n.mu.Unlock()
	n.cancel()
	// The writer goes first, so that the drain cannot reorder a message
	// the writer already took.
	drained := make(chan struct{})
	go func() {
		<-n.writerDone
		n.drainOut()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(opTimeout):
	}
	n.nc.Close()
	n.daemons.Wait()
	n.ops.Wait()
}

// connected reports whether the bus is up.
func (n *Broker) connected() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.since.IsZero() && !n.stopped
}

func (n *Broker) disconnected(_ *nats.Conn, err error) {
	n.mu.Lock()
	n.since = time.Time{}
	n.mu.Unlock()
	n.log.Warn("cluster bus lost: serving local users only", "err", err)
}

func (n *Broker) reconnected(nc *nats.Conn) {
	n.mu.Lock()
	n.since = time.Now()
	n.mu.Unlock()
	n.log.Warn("cluster bus back", "nats", nc.ConnectedUrl())
	n.goLoop(n.reassert)
}

// Stats describes this node's view of the cluster.
func (n *Broker) Stats() *broker.Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &broker.Stats{Node: n.id, Connected: !n.since.IsZero(), Peers: len(n.livePeersLocked()), Users: len(n.dir), Dropped: n.dropped.Load()}
}

// Subscriptions is the number of NATS subscriptions the broker holds, for
// tests and diagnostics.
func (n *Broker) Subscriptions() int { return n.nc.NumSubscriptions() }

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

// hexKey returns the bucket key of a room name or nick key.
func hexKey(name string) string { return hex.EncodeToString([]byte(name)) }

func unkey(k string) string {
	b, _ := hex.DecodeString(k)
	return string(b)
}
