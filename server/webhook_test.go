package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/api"
	"parley/codec"
	"parley/server/natstest"
)

// Webhooks (docs/API.md "Webhooks") delivered to a real HTTP receiver on
// 127.0.0.1 that checks every signature the way API.md says a receiver
// must.

// receiver is the application's webhook endpoint.
type receiver struct {
	t      *testing.T
	secret []byte
	addr   string
	mu     sync.Mutex
	events []api.Event
	posts  int
	nodes  map[string]int // posts taken, by the node that sent them
	fail   int            // answer 500 to this many more posts
	bad    int            // posts whose signature did not verify
	srv    *http.Server
}

func startReceiver(t *testing.T, secret []byte) *receiver {
	r := &receiver{t: t, secret: secret}
	r.up("127.0.0.1:0")
	t.Cleanup(r.down)
	return r
}

// up listens on addr (the address it had, after down).
func (r *receiver) up(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(ln)
}

// down closes the receiver: the server's POSTs are refused.
func (r *receiver) down() { _ = r.srv.Close() }

func (r *receiver) url() string { return "http://" + r.addr + "/events" }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	if r.nodes == nil {
		r.nodes = map[string]int{}
	}
	if err := api.Verify(r.secret, req.Header.Get(api.SignatureHeader), body, 5*time.Minute, time.Now()); err != nil {
		r.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.fail > 0 {
		r.fail--
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	var d api.Delivery
	if err := json.Unmarshal(body, &d); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.events = append(r.events, d.Events...)
	r.nodes[req.Header.Get(api.NodeHeader)]++
}

// unique returns the events received, each once (by ID), in the order
// first received.
func (r *receiver) unique() []api.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []api.Event
	for _, e := range r.events {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

// waitEvents waits until match holds for the events received.
func (r *receiver) waitEvents(what string, match func([]api.Event) bool) []api.Event {
	r.t.Helper()
	var got []api.Event
	eventually(r.t, what, func() bool {
		got = r.unique()
		return match(got)
	})
	return got
}

func ofType(events []api.Event, typ string) []api.Event {
	var out []api.Event
	for _, e := range events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// roomBodies lists the bodies of room's message events in the order
// received, checking that their seqs rise.
func roomBodies(t *testing.T, events []api.Event, room string) []string {
	t.Helper()
	var out []string
	var last uint64
	for _, e := range ofType(events, api.EventMessage) {
		if e.Room != room {
			continue
		}
		if e.Seq <= last {
			t.Fatalf("%s's events out of order: seq %d after %d", room, e.Seq, last)
		}
		last = e.Seq
		out = append(out, e.Body)
	}
	return out
}

func writeSecret(t *testing.T) (string, []byte) {
	secret := []byte(strings.Repeat("s", 40))
	path := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(path, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, secret
}

// TestWebhooksDeliverEveryKind: messages in two rooms (in each room's
// order, after two posts answered 500), a DM, a DM and a mention to an
// account that is offline (with what a push notification needs), joins
// and leaves of the room subscribed to, moderation and sessions; every
// post signed; a body changed in flight fails the check.
func TestWebhooksDeliverEveryKind(t *testing.T) {
	s := newSigner(t)
	secretFile, secret := writeSecret(t)
	rcv := startReceiver(t, secret)
	rcv.fail = 2
	srv := authServer(t, s, "required", func(c *Config) {
		c.WebhookURLs, c.WebhookSecret = []string{rcv.url()}, secretFile
		c.WebhookEvents = api.EventTypes
		c.WebhookRooms = []string{"den"}
		c.webhookBackoff = 10 * time.Millisecond
	})
	amy := account(t, srv, s, "amy", nil)
	amy.ok(&codec.Join{Room: "den", Ref: "j"}, "j")
	amy.ok(&codec.Say{Room: "den", Body: "first", Ref: "f"}, "f")
	// cyd reads den, then goes: a mention of cyd reaches an account away.
	cyd := account(t, srv, s, "cyd", nil)
	cyd.ok(&codec.Join{Room: "den", Ref: "j"}, "j")
	cyd.ok(&codec.Mark{Room: "den", Seq: 1, Ref: "m"}, "m")
	cyd.send(&codec.Quit{})
	cyd.untilBye(codec.ReasonQuit)
	bob := account(t, srv, s, "bob", nil)
	bob.ok(&codec.Join{Room: "den", Ref: "j"}, "j")
	amy.ok(&codec.Join{Room: "ops", Ref: "j"}, "j")
	bob.ok(&codec.Join{Room: "ops", Ref: "j"}, "j")
	for i := range 10 {
		amy.ok(&codec.Say{Room: "den", Body: "den " + string(rune('a'+i)), Ref: "d"}, "d")
		bob.ok(&codec.Say{Room: "ops", Body: "ops " + string(rune('a'+i)), Ref: "o"}, "o")
	}
	amy.ok(&codec.Say{Room: "den", Body: "@cyd " + strings.Repeat("long ", 60), Ref: "men"}, "men")
	amy.ok(&codec.DM{To: "bob", Body: "psst", Ref: "dm"}, "dm")
	amy.ok(&codec.DM{Account: "cyd", Body: "call me", Ref: "off"}, "off")
	bob.ok(&codec.Leave{Room: "den", Ref: "l"}, "l")
	events := rcv.waitEvents("every event", func(ev []api.Event) bool {
		return len(ofType(ev, api.EventLeave)) >= 2 && len(ofType(ev, api.EventOfflineDM)) == 1
	})
	den, ops := roomBodies(t, events, "den"), roomBodies(t, events, "ops")
	if len(den) != 12 || den[1] != "den a" || den[10] != "den j" || len(ops) != 10 || ops[9] != "ops j" {
		t.Fatalf("den's messages %q, ops's %q", den, ops)
	}
	mention := ofType(events, api.EventOfflineMention)
	if len(mention) != 1 || mention[0].Account != "cyd" || mention[0].From != "amy" || mention[0].Room != "den" ||
		len(mention[0].Preview) > api.PreviewBytes || !strings.HasPrefix(mention[0].Preview, "@cyd long") {
		t.Fatalf("offline mentions: %+v", mention)
	}
	off := ofType(events, api.EventOfflineDM)[0]
	if off.Account != "cyd" || off.From != "amy" || off.Preview != "call me" || off.Body != "" {
		t.Fatalf("offline dm: %+v", off)
	}
	if dms := ofType(events, api.EventDM); len(dms) != 1 || dms[0].To != "bob" || dms[0].Account != "bob" || dms[0].Body != "psst" {
		t.Fatalf("dms: %+v", dms)
	}
	joins, leaves := ofType(events, api.EventJoin), ofType(events, api.EventLeave)
	for _, e := range append(joins, leaves...) {
		if e.Room != "den" {
			t.Fatalf("a join or leave of %s, which the webhook did not subscribe to", e.Room)
		}
	}
	if len(joins) != 3 || leaves[0].Nick != "cyd" || leaves[1].Nick != "bob" || leaves[1].Reason != string(codec.ReasonLeave) {
		t.Fatalf("joins %+v, leaves %+v", joins, leaves)
	}
	if opens := ofType(events, api.EventSessionOpen); len(opens) != 3 {
		t.Fatalf("session opens: %+v", opens)
	}
	if closes := ofType(events, api.EventSessionClose); len(closes) != 1 || closes[0].Account != "cyd" || closes[0].Reason != string(codec.ReasonQuit) {
		t.Fatalf("session closes: %+v", closes)
	}
	// Two posts failed and were sent again; every one verified.
	rcv.mu.Lock()
	posts, bad := rcv.posts, rcv.bad
	rcv.mu.Unlock()
	if bad != 0 || posts < 3 {
		t.Fatalf("%d posts, %d with a bad signature", posts, bad)
	}
	body := []byte(`{"events":[]}`)
	header := api.Sign(secret, time.Now(), body)
	if api.Verify(secret, header, []byte(`{"events":[{}]}`), time.Minute, time.Now()) == nil {
		t.Fatal("a changed body verified")
	}
	if api.Verify(secret, header, body, time.Minute, time.Now().Add(2*time.Minute)) == nil {
		t.Fatal("a signature older than the tolerance verified")
	}
	if api.Verify([]byte("another secret of enough length......"), header, body, time.Minute, time.Now()) == nil {
		t.Fatal("another secret's signature verified")
	}
}

// TestWebhooksSurviveOutageAndRestart: with --data-dir, events that
// waited while the receiver was down are delivered after a restart of
// the server and the receiver's return, none lost.
func TestWebhooksSurviveOutageAndRestart(t *testing.T) {
	secretFile, secret := writeSecret(t)
	rcv := startReceiver(t, secret)
	addr := rcv.addr
	dir := t.TempDir()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: dir, WebhookURLs: []string{rcv.url()}, WebhookSecret: secretFile,
		WebhookEvents: []string{api.EventMessage}, webhookBackoff: 10 * time.Millisecond}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()
	<-srv.Ready()
	amy := loggedIn(t, srv, "amy")
	amy.joinRoom("den")
	amy.ok(&codec.Say{Room: "den", Body: "before", Ref: "0"}, "0")
	rcv.waitEvents("the first message", func(ev []api.Event) bool { return len(ev) == 1 })
	rcv.down()
	for i := range 20 {
		amy.ok(&codec.Say{Room: "den", Body: "while down", Ref: "d"}, "d")
		_ = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The same data directory, a new process's server; the receiver
	// comes back on its address.
	srv = startServer(t, cfg)
	rcv.up(addr)
	got := rcv.waitEvents("every message", func(ev []api.Event) bool { return len(ev) >= 21 })
	if bodies := roomBodies(t, got, "den"); len(bodies) != 21 {
		t.Fatalf("%d messages delivered, want 21", len(bodies))
	}
	loggedIn(t, srv, "bob").joinRoom("den") // the restarted server serves
}

// TestWebhookQueueBound: past --webhook-queue the oldest events are
// dropped, counted on /metrics, and the newest delivered.
func TestWebhookQueueBound(t *testing.T) {
	secretFile, secret := writeSecret(t)
	rcv := startReceiver(t, secret)
	addr := rcv.addr
	rcv.down()
	srv := startServer(t, Config{AdminAddr: "127.0.0.1:0", WebhookURLs: []string{"http://" + addr + "/events"}, WebhookSecret: secretFile,
		WebhookEvents: []string{api.EventMessage}, WebhookQueue: 5, webhookBackoff: 10 * time.Millisecond})
	amy := loggedIn(t, srv, "amy")
	amy.joinRoom("den")
	for range 20 {
		amy.ok(&codec.Say{Room: "den", Body: "m", Ref: "m"}, "m")
	}
	eventually(t, "15 events dropped", func() bool {
		series, _ := scrape(t, srv)
		return series["parley_webhook_dropped_total{webhook=0,why=queue_full}"] == 15
	})
	if series, _ := scrape(t, srv); series["parley_webhook_queue_length{webhook=0}"] != 5 {
		t.Fatalf("queue length %v, want 5", series["parley_webhook_queue_length{webhook=0}"])
	}
	rcv.up(addr)
	got := rcv.waitEvents("the five newest", func(ev []api.Event) bool { return len(ev) >= 5 })
	if len(got) != 5 || got[0].Seq != 16 || got[4].Seq != 20 {
		t.Fatalf("delivered %+v, want seqs 16 to 20", got)
	}
}

// TestWebhooksAcrossTheCluster: two nodes share each webhook's queue in
// JetStream: the events of rooms sequenced on either node arrive once
// each, in each room's order, from one node; with the receiver down, the
// delivering node stops, and the other delivers what waited.
func TestWebhooksAcrossTheCluster(t *testing.T) {
	secretFile, secret := writeSecret(t)
	rcv := startReceiver(t, secret)
	addr := rcv.addr
	nats := natstest.Start(t)
	nodes := startClusterWith(t, nats, 2, func(c *Config) {
		c.WebhookURLs, c.WebhookSecret, c.WebhookEvents = []string{rcv.url()}, secretFile, []string{api.EventMessage}
		c.webhookBackoff = 10 * time.Millisecond
		// A node is dead after 3 silent heartbeats: at 1 s, no stall of a
		// loaded machine hands the delivery to the other node while both
		// run, which the test checks does not happen.
		c.NodeHeartbeat = time.Second
	})
	// a's room is sequenced on node 0, b's on node 1 (its first say
	// claims it).
	a, b := loggedIn(t, nodes[0], "a"), loggedIn(t, nodes[1], "b")
	a.joinRoom("ra")
	b.joinRoom("rb")
	say := func(c *tclient, room string, n int) {
		for range n {
			eventually(t, "a say the cluster sequences", func() bool {
				c.send(&codec.Say{Room: room, Body: room, Ref: "s"})
				return c.answer("s").Type == codec.TypeAck
			})
		}
	}
	say(a, "ra", 5)
	say(b, "rb", 5)
	got := rcv.waitEvents("ten messages", func(ev []api.Event) bool { return len(ev) >= 10 })
	if len(roomBodies(t, got, "ra")) != 5 || len(roomBodies(t, got, "rb")) != 5 {
		t.Fatalf("got %+v", got)
	}
	rcv.mu.Lock()
	if len(rcv.nodes) != 1 || rcv.nodes["n0"] == 0 {
		t.Errorf("posts by node %v: only n0, the lowest id, delivers", rcv.nodes)
	}
	rcv.nodes = nil
	rcv.mu.Unlock()
	// The receiver goes down; both rooms talk; node 0, which delivers,
	// stops; node 1 delivers the rest once the receiver is back.
	rcv.down()
	say(a, "ra", 5)
	say(b, "rb", 5)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := nodes[0].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rcv.up(addr)
	got = rcv.waitEvents("twenty messages", func(ev []api.Event) bool { return len(ev) >= 20 })
	if ra, rb := roomBodies(t, got, "ra"), roomBodies(t, got, "rb"); len(ra) != 10 || len(rb) != 10 {
		t.Fatalf("ra %d, rb %d messages", len(ra), len(rb))
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.nodes) != 1 || rcv.nodes["n1"] == 0 {
		t.Errorf("posts by node %v after n0 stopped: only n1 delivers", rcv.nodes)
	}
}
