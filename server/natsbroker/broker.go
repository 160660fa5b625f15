// Package natsbroker is a hub's broker for a cluster of nodes on NATS with
// JetStream (docs/CLUSTER.md): one owner node sequences each room into the
// room's log, a JetStream stream from which every node delivers; nicks
// are claimed in a key-value bucket, and presence, direct messages and
// forwarded says cross as NATS messages. It talks to the hub only through
// parley/server/broker's interfaces.
package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/server/broker"
	"parley/server/metric"
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
	// Logger receives the broker's log; nil discards it.
	Logger *slog.Logger
	// QueueLen bounds the messages waiting for the bus (docs/CLUSTER.md).
	// Default 65536.
	QueueLen int
	// PingInterval is how often the node pings NATS; 3 unanswered pings
	// mean a dead link. Default the heartbeat, but at least a second, so
	// that a busy machine is not taken for an outage.
	PingInterval time.Duration
	// LogLen is how many messages the log keeps per room. Default 1000.
	LogLen int
	// LogBytes caps the whole log, every room together; the oldest
	// messages go first. Default 1 GiB.
	LogBytes int64
	// AuditLen is how many moderation actions the audit stream keeps.
	// Default DefaultAuditLen.
	AuditLen int
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

	nc          *nats.Conn
	js          jetstream.JetStream
	nicks       jetstream.KeyValue // nick key → the node it is online on
	owners      jetstream.KeyValue // room → the node that sequences it
	rules       jetstream.KeyValue // room (or the server-wide key) → its rules (govern.go)
	auditStream jetstream.Stream   // the audit log
	accounts    jetstream.KeyValue // read markers and remembered nicks (accounts.go)
	offline     jetstream.Stream   // direct messages that wait for offline accounts
	collecting  sync.Mutex         // one Collect at a time (accounts.go)
	govOut      chan govWrite      // rules and audit entries for JetStream, in order
	stream      jetstream.Stream   // the rooms' log (log.go)
	inbox       chan *nats.Msg     // room, node, heartbeat and who traffic, in bus order
	fetched     chan fetchResult   // catch-up steps for the dispatcher
	out         chan outMsg        // messages for the bus, in the order they were produced
	writerDone  chan struct{}      // closed when the writer goroutine has returned
	dropped     atomic.Int64       // messages dropped because out was full
	fenced      atomic.Int64       // appends the log refused: another node had claimed the room
	forwarded   atomic.Uint64      // says sent to the room's owner on another node and answered
	sayTime     metric.Histogram   // how long a forwarded say took, sent to answered
	reasserting atomic.Bool        // a reassert is waiting to run
	keyLocks    *keyLocks          // orders this node's writes of one nick's entry
	link        atomic.Uint64      // nats.go's reconnections as last observed (observeLink)
	ctx         context.Context
	cancel      context.CancelFunc
	daemons     sync.WaitGroup // the dispatcher, the writer, the heartbeat and the watchers
	ops         sync.WaitGroup // requests on behalf of sessions

	mu           sync.Mutex
	since        time.Time                     // when the bus connection was last made; zero while down
	lastWarn     time.Time                     // when a full queue was last logged
	peers        map[string]time.Time          // node id → when it was last heard
	dir          map[string]nickClaim          // the replica of the nicks bucket, by nick key
	slots        map[string]int                // node → its slots in dir
	users        *broker.Directory             // dir's users, sorted, for who
	owner        map[string]ownerEntry         // room → its owner
	owned        map[string]uint64             // rooms this node sequences → its fencing record's stream sequence
	claims       map[string][]queuedSay        // rooms being claimed: says waiting, in order
	subs         map[string]*nats.Subscription // followed rooms' traffic
	cursors      map[string]*cursor            // followed rooms: where this node is in their log
	pending      map[string]pendingSay         // this node's says waiting for their message, by token
	says         uint64                        // the last say token's counter
	mine         map[string]ownSlot            // nick key → this node's slot, as it wants it
	rulesPending map[string]int                // rules keys with writes of this node's going out
	rulesRev     map[string]uint64             // rules key → revision of this node's last write
	roomsOf      map[string][]broker.RoomCount // node → the rooms it last reported
	stopped      bool
	quiescing    bool // stop is waiting for the requests in flight
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = max(cfg.Heartbeat, time.Second)
	}
	if cfg.LogLen <= 0 {
		cfg.LogLen = DefaultLogLen
	}
	if cfg.LogBytes <= 0 {
		cfg.LogBytes = DefaultLogBytes
	}
	if cfg.AuditLen <= 0 {
		cfg.AuditLen = DefaultAuditLen
	}
	return &Broker{
		cfg: cfg, id: cfg.NodeID, hb: cfg.Heartbeat,
		subj: subjects{cfg.ClusterName}, log: cfg.Logger.With("node", cfg.NodeID),
		inbox: make(chan *nats.Msg, 1<<16), fetched: make(chan fetchResult, 64),
		out: make(chan outMsg, cfg.QueueLen), writerDone: make(chan struct{}),
		peers: map[string]time.Time{}, dir: map[string]nickClaim{}, slots: map[string]int{}, keyLocks: newKeyLocks(), users: broker.NewDirectory(),
		owner: map[string]ownerEntry{}, owned: map[string]uint64{}, claims: map[string][]queuedSay{},
		subs: map[string]*nats.Subscription{}, cursors: map[string]*cursor{}, pending: map[string]pendingSay{}, mine: map[string]ownSlot{},
		govOut: make(chan govWrite, cfg.QueueLen), rulesPending: map[string]int{}, rulesRev: map[string]uint64{}, roomsOf: map[string][]broker.RoomCount{},
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
		// A silent link to NATS (no FIN) is noticed after 3 unanswered pings.
		nats.PingInterval(n.cfg.PingInterval),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(n.disconnected),
		nats.ReconnectHandler(n.reconnected),
		nats.ErrorHandler(n.busError),
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
	for _, subject := range []string{n.subj.heartbeat(), n.subj.who(), n.subj.node(n.id) + ".>", n.subj.notice(), n.subj.rooms()} {
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
	n.goLoop(n.govWriter)
	n.goLoop(n.heartbeat)
	n.goLoop(n.readAudit)
	if err := n.watch(); err != nil {
		n.Kill()
		return err
	}
	n.log.Info("joined cluster", "nats", nc.ConnectedUrl(), "cluster", n.subj.cluster)
	return nil
}

// setup creates (or finds) the key-value buckets and the rooms' log.
func (n *Broker) setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	js, err := jetstream.New(n.nc,
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { n.storeFailed(m, err) }),
		jetstream.WithPublishAsyncMaxPending(asyncMaxPending),
		jetstream.WithPublishAsyncTimeout(opTimeout))
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
	if n.rules, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.subj.cluster + "_rules", Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("natsbroker: rules bucket: %w", err)
	}
	if n.auditStream, err = js.CreateOrUpdateStream(ctx, n.auditStreamConfig()); err != nil {
		return fmt.Errorf("natsbroker: audit stream: %w", err)
	}
	if n.accounts, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.subj.cluster + "_accounts", Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("natsbroker: accounts bucket: %w", err)
	}
	if n.offline, err = js.CreateOrUpdateStream(ctx, n.offlineStreamConfig()); err != nil {
		return fmt.Errorf("natsbroker: offline direct messages' stream: %w", err)
	}
	// The stream of earlier versions, which kept each room's last message
	// on the subjects the log now republishes to, must not capture them.
	if err := js.DeleteStream(ctx, n.subj.cluster+"_seq"); err == nil {
		n.log.Warn("removed the stream of an earlier version", "stream", n.subj.cluster+"_seq")
	}
	if n.stream, err = js.CreateOrUpdateStream(ctx, n.logStream()); err != nil {
		return fmt.Errorf("natsbroker: rooms' log stream: %w", err)
	}
	return nil
}

// asyncMaxPending bounds the log messages waiting for the stream's
// answer; past it the writer waits (and the queue to the bus fills).
const asyncMaxPending = 4096

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
			for len(n.out) > 0 || len(n.govOut) > 0 { // the writers send it all, in order
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
	return n.connectedLocked()
}

// connectedLocked is connected with n.mu held.
func (n *Broker) connectedLocked() bool { return !n.since.IsZero() && !n.stopped }

// disconnected: the messages in flight to the log are uncertain, so every
// room this node owns is disowned; the next say claims it again, which
// reads where its log really ends.
func (n *Broker) disconnected(_ *nats.Conn, err error) {
	n.mu.Lock()
	n.since = time.Time{}
	rooms := make([]string, 0, len(n.owned))
	for room := range n.owned {
		rooms = append(rooms, room)
	}
	clear(n.owned)
	n.mu.Unlock()
	n.log.Warn("cluster bus lost: serving local users only", "err", err)
	for _, room := range rooms {
		n.h.Disown(room)
	}
}

func (n *Broker) reconnected(nc *nats.Conn) {
	n.mu.Lock()
	n.since = time.Now()
	n.mu.Unlock()
	n.log.Warn("cluster bus back", "nats", nc.ConnectedUrl())
	n.goLoop(n.reassert)
}

// busError logs what nats.go reports; a room subscription that fell
// behind has lost messages, so that room catches up from its log.
func (n *Broker) busError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
		if room, ok := n.subj.roomOf(sub.Subject); ok {
			n.resync(room)
		}
	}
	n.log.Warn("cluster bus error", "err", err)
}

// Stats describes this node's view of the cluster.
func (n *Broker) Stats() *broker.Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &broker.Stats{Node: n.id, Connected: !n.since.IsZero(), Peers: len(n.livePeersLocked()), Users: len(n.dir),
		Dropped: n.dropped.Load(), Fenced: n.fenced.Load(), ForwardedSays: n.forwarded.Load(), ForwardedSayTime: n.sayTime.Snapshot()}
}

// Owns reports whether this node sequences room now, for tests and
// diagnostics.
func (n *Broker) Owns(room string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.owned[room]
	return ok
}

// Cursor says where this node is in a followed room's log, for tests and
// diagnostics: the stream sequence of the last message delivered here,
// whether a catch-up is under way, and how many live messages it holds.
func (n *Broker) Cursor(room string) (last uint64, catchingUp bool, held int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.cursors[room]; l != nil {
		return l.last, l.fetching, len(l.held)
	}
	return 0, false, 0
}

// Subscriptions is the number of NATS subscriptions the broker holds, for
// tests and diagnostics.
func (n *Broker) Subscriptions() int { return n.nc.NumSubscriptions() }

// subjects names the cluster's NATS subjects. Room and nick names go into
// subjects and keys hex-encoded, so any valid name is one token.
type subjects struct{ cluster string }

func (s subjects) heartbeat() string     { return s.cluster + ".hb" }
func (s subjects) notice() string        { return s.cluster + ".notice" }
func (s subjects) rooms() string         { return s.cluster + ".rooms" }
func (s subjects) audit() string         { return s.cluster + ".audit" }
func (s subjects) who() string           { return s.cluster + ".who" }
func (s subjects) node(id string) string { return s.cluster + ".node." + id }
func (s subjects) room(name string) string {
	return s.cluster + ".room." + hex.EncodeToString([]byte(name))
}
func (s subjects) roomPres(name string) string { return s.room(name) + ".pres" }
func (s subjects) logMsgs() string             { return s.cluster + ".log.*.msg" }
func (s subjects) logOwns() string             { return s.cluster + ".log.*.own" }
func (s subjects) logMsg(name string) string   { return s.cluster + ".log." + hexKey(name) + ".msg" }
func (s subjects) logOwn(name string) string   { return s.cluster + ".log." + hexKey(name) + ".own" }

// roomOf returns the room of a room subscription's subject.
func (s subjects) roomOf(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, s.cluster+".room.")
	if !ok {
		return "", false
	}
	hexName, _, ok := strings.Cut(rest, ".")
	return unkey(hexName), ok
}

// hexKey returns the bucket key of a room name or nick key.
func hexKey(name string) string { return hex.EncodeToString([]byte(name)) }

func unkey(k string) string {
	b, _ := hex.DecodeString(k)
	return string(b)
}
