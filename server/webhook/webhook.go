// Package webhook delivers the chat's events to the application
// (docs/API.md "Webhooks"): signed JSON POSTs of batches of events, in
// order, at least once, retried with backoff, from a bounded queue per
// webhook that --data-dir keeps across restarts. The hub hands events to
// a Sink (hub.EventSink) without blocking; a writer goroutine moves them
// into each webhook's queue, and one deliverer per webhook sends them.
package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"parley/api"
)

// Config is the webhooks'. Zero values take the defaults below.
type Config struct {
	// URLs are the webhooks; each gets every event, from a queue of its
	// own.
	URLs []string
	// Secret signs every POST (api.SignatureHeader).
	Secret []byte
	// Events are the types sent; empty: message, dm, offline_dm,
	// offline_mention and moderation.
	Events []string
	// Rooms are those whose join and leave events are sent ("*": every
	// room); none: no join and leave events.
	Rooms []string
	// Queues opens a webhook's queue by its name (the index of its URL),
	// bounded to max events; default: in memory. It is called by Start.
	Queues func(name string, max int) (Queue, error)
	// MaxQueue bounds each webhook's queue, in events; default 100,000:
	// past it the oldest are dropped and counted.
	MaxQueue int
	// Batch bounds a POST: at most this many events (default 100) and
	// about 256 KiB.
	Batch int
	// Timeout bounds one POST; default 5 s.
	Timeout time.Duration
	// Backoff is the first wait after a failed POST, doubled on each
	// failure up to MaxBackoff; defaults 1 s and 1 min.
	Backoff, MaxBackoff time.Duration
	// Node names this server in its events (a cluster's node ID).
	Node   string
	Logger *slog.Logger
}

// DefaultEvents are the event types sent when Config.Events is empty.
var DefaultEvents = []string{api.EventMessage, api.EventDM, api.EventOfflineDM, api.EventOfflineMention, api.EventModeration}

// pending bounds the events emitted and not yet in a queue: past it an
// event is dropped and counted, so that a stalled disk never blocks a
// room's lock.
const pending = 1 << 16

const maxPostBytes = 256 << 10

func (c Config) withDefaults() Config {
	if len(c.Events) == 0 {
		c.Events = DefaultEvents
	}
	if c.Queues == nil {
		c.Queues = func(string, int) (Queue, error) { return NewMemoryQueue(), nil }
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 100_000
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// CheckEvents refuses an event type that does not exist.
func CheckEvents(types []string) error {
	for _, t := range types {
		known := false
		for _, k := range api.EventTypes {
			known = known || k == t
		}
		if !known {
			return fmt.Errorf("webhook: no event type %q (the types: %v)", t, api.EventTypes)
		}
	}
	return nil
}

// Sink takes the hub's events and delivers them to every webhook.
type Sink struct {
	cfg      Config
	types    map[string]bool
	allRooms bool
	rooms    map[string]bool
	in       chan []byte
	hooks    []*target
	client   *http.Client
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	seq      atomic.Uint64
	started  atomic.Bool
	warned   atomic.Int64 // when a dropped event was last logged, Unix ns
	prefix   string       // names this process's events: with seq, an event's ID

	closeMu sync.RWMutex // Emit's read lock against Close closing in
	closed  bool

	dropped    *prometheus.CounterVec
	deliveries *prometheus.CounterVec
}

// target is one webhook.
type target struct {
	url   string
	label string
	q     Queue
	wake  chan struct{}
}

// New returns the sink for cfg; Start starts it. Events emitted before
// Start wait for it.
func New(cfg Config) (*Sink, error) {
	cfg = cfg.withDefaults()
	if err := CheckEvents(cfg.Events); err != nil {
		return nil, err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	s := &Sink{cfg: cfg, types: map[string]bool{}, rooms: map[string]bool{}, in: make(chan []byte, pending),
		client: &http.Client{Timeout: cfg.Timeout, CheckRedirect: noRedirects}, prefix: hex.EncodeToString(id[:]) + "-"}
	for _, t := range cfg.Events {
		s.types[t] = true
	}
	for _, r := range cfg.Rooms {
		s.allRooms = s.allRooms || r == "*"
		s.rooms[r] = true
	}
	s.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_webhook_dropped_total",
		Help: "Webhook events dropped: the oldest past a queue's bound (queue_full), or emitted faster than the queues took them (backlog)."}, []string{"webhook", "why"})
	s.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_webhook_posts_total",
		Help: "Webhook POSTs, by outcome: delivered (2xx) or failed (retried)."}, []string{"webhook", "outcome"})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start opens every webhook's queue and starts the writer and the
// deliverers. Call it once, when the queues' store (a cluster's broker)
// is up.
func (s *Sink) Start() error {
	for i, u := range s.cfg.URLs {
		q, err := s.cfg.Queues(strconv.Itoa(i), s.cfg.MaxQueue)
		if err != nil {
			return fmt.Errorf("webhook %s: its queue: %w", u, err)
		}
		s.hooks = append(s.hooks, &target{url: u, label: strconv.Itoa(i), q: q, wake: make(chan struct{}, 1)})
	}
	s.started.Store(true)
	s.wg.Add(1 + len(s.hooks))
	go s.writer()
	for _, t := range s.hooks {
		t.wake <- struct{}{} // what a restart left in its queue
		go s.deliver(t)
	}
	return nil
}

// Shared is a Queue that the nodes of a cluster share: only the node it
// says delivers it, and a node that stops releases the batch it held
// to the next.
type Shared interface {
	Delivers() bool
	Release()
}

// sharedPoll is how often a shared queue's node looks for events the
// other nodes appended, and whether it delivers now.
const sharedPoll = 250 * time.Millisecond

// Collectors are the webhooks' metrics, for the admin port.
func (s *Sink) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.dropped, s.deliveries, queueLen{s}}
}

// Wants reports whether the webhooks take events of type typ in room.
func (s *Sink) Wants(typ, room string) bool {
	if !s.types[typ] {
		return false
	}
	if typ == api.EventJoin || typ == api.EventLeave {
		return s.allRooms || s.rooms[room]
	}
	return true
}

// Emit queues e for every webhook. It never blocks: with the backlog
// full, e is dropped and counted.
func (s *Sink) Emit(e api.Event) {
	e.ID = s.prefix + strconv.FormatUint(s.seq.Add(1), 36)
	if e.TS == 0 {
		e.TS = time.Now().UnixMilli()
	}
	e.Node = s.cfg.Node
	data, err := json.Marshal(&e)
	if err != nil {
		return
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return // the server is stopping: its sessions' last events are not sent
	}
	select {
	case s.in <- data:
	default:
		for _, t := range s.hooks {
			s.dropped.WithLabelValues(t.label, "backlog").Inc()
		}
		// Logged at most once per 10 s: the caller may hold a room's lock.
		if now, last := time.Now().UnixNano(), s.warned.Load(); now-last >= int64(10*time.Second) && s.warned.CompareAndSwap(last, now) {
			s.cfg.Logger.Warn("webhook events dropped: they come faster than the queues take them (parley_webhook_dropped_total)", "type", e.Type)
		}
	}
}

// Close stops the deliverers and writes what was emitted to the queues;
// a POST under way is abandoned and sent again after a restart.
func (s *Sink) Close() {
	s.stopOnce.Do(func() {
		s.cancel()
		s.closeMu.Lock()
		s.closed = true
		close(s.in)
		s.closeMu.Unlock()
		if !s.started.Load() {
			return // nothing to wait for, and no queue to write to
		}
		s.wg.Wait()
	})
}

// writer moves emitted events into every webhook's queue, as many at a
// time as have come.
func (s *Sink) writer() {
	defer s.wg.Done()
	for first := range s.in {
		batch := [][]byte{first}
		for more := true; more && len(batch) < 1024; {
			select {
			case e, ok := <-s.in:
				if !ok {
					more = false
					break
				}
				batch = append(batch, e)
			default:
				more = false
			}
		}
		for _, t := range s.hooks {
			dropped, err := t.q.Append(batch, s.cfg.MaxQueue)
			if err != nil {
				s.dropped.WithLabelValues(t.label, "store").Add(float64(len(batch)))
				s.cfg.Logger.Error("webhook events could not be queued", "webhook", t.url, "events", len(batch), "err", err)
				continue
			}
			if dropped > 0 {
				s.dropped.WithLabelValues(t.label, "queue_full").Add(float64(dropped))
				s.cfg.Logger.Warn("webhook queue full: the oldest events were dropped", "webhook", t.url, "dropped", dropped, "bound", s.cfg.MaxQueue)
			}
			select {
			case t.wake <- struct{}{}:
			default:
			}
		}
	}
}

// deliver sends t's queue, a batch at a time, until Close.
func (s *Sink) deliver(t *target) {
	defer s.wg.Done()
	backoff := s.cfg.Backoff
	shared, _ := t.q.(Shared)
	if shared != nil {
		defer shared.Release()
	}
	var poll <-chan time.Time // nil: wait for a wake only
	for {
		if shared != nil {
			poll = time.After(sharedPoll)
			if !shared.Delivers() {
				select {
				case <-poll:
					continue
				case <-s.ctx.Done():
					return
				}
			}
		}
		events, last, err := t.q.Peek(s.cfg.Batch, maxPostBytes)
		if err == nil && len(events) == 0 {
			select {
			case <-t.wake:
				continue
			case <-poll:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		if err == nil {
			err = s.post(t, events)
		}
		if err == nil {
			s.deliveries.WithLabelValues(t.label, "delivered").Inc()
			if err = t.q.Remove(last); err == nil {
				backoff = s.cfg.Backoff
				continue
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		s.deliveries.WithLabelValues(t.label, "failed").Inc()
		s.cfg.Logger.Warn("webhook delivery failed; retrying", "webhook", t.url, "events", len(events), "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// post sends one batch, signed; any status but 2xx is a failure.
func (s *Sink) post(t *target, events [][]byte) error {
	var body bytes.Buffer
	body.WriteString(`{"events":[`)
	for i, e := range events {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(e)
	}
	body.WriteString("]}")
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, t.url, bytes.NewReader(body.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "parley-webhook")
	req.Header.Set(api.SignatureHeader, api.Sign(s.cfg.Secret, time.Now(), body.Bytes()))
	if s.cfg.Node != "" {
		req.Header.Set(api.NodeHeader, s.cfg.Node)
	}
	var first struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(events[0], &first) == nil {
		req.Header.Set(api.EventIDHeader, first.ID)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New("the receiver answered " + resp.Status)
	}
	return nil
}

// noRedirects keeps a POST at its URL: a redirect is a failure, so that
// signed events never go where the operator did not send them.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// queueLen reports each webhook's queue length when scraped.
type queueLen struct{ s *Sink }

var queueLenDesc = prometheus.NewDesc("parley_webhook_queue_length", "Webhook events waiting in each webhook's queue.", []string{"webhook"}, nil)

func (q queueLen) Describe(ch chan<- *prometheus.Desc) { ch <- queueLenDesc }

func (q queueLen) Collect(ch chan<- prometheus.Metric) {
	for _, t := range q.s.hooks {
		ch <- prometheus.MustNewConstMetric(queueLenDesc, prometheus.GaugeValue, float64(t.q.Len()), t.label)
	}
}
