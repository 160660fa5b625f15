package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"parley/codec"
)

// The chat scenario run against one target: its users connect and join
// their rooms, send on the plan's schedule while some churn and some ask
// who, and every delivery is timed by class.

// chatRun is one target's scenario in progress.
type chatRun struct {
	cfg    Config
	sc     ChatScenario
	target Target
	plan   chatPlan
	srv    *running
	users  []*chatUser
	pubs   []*chatUser // Redis: publishing connections
	window atomic.Pointer[window]

	shards  [chatShards]chatShard
	ready   atomic.Int64
	churned atomic.Int64
	whos    atomic.Int64
}

// chatUser is one user's connection: it receives on its goroutine and
// sends from the driver's, under mu.
type chatUser struct {
	id   int
	conn net.Conn
	w    *wire // Parley: its transport's framing
	mu   sync.Mutex
	buf  []byte
}

// write sends length-prefixed frames to Parley (framed for the wire), or
// RESP to Redis.
func (u *chatUser) write(b []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.w != nil {
		return u.w.send(b)
	}
	_, err := u.conn.Write(b)
	return err
}

// chatTargets are the targets with a chat scenario: Parley on each of
// its transports, and Redis.
var chatTargets = []Target{TargetParley, TargetParleyOneLoop, TargetParleyWS, TargetParleyTLS, TargetRedis}

// RunChat runs the chat scenario against each of cfg's targets that
// supports it (chatTargets).
func RunChat(ctx context.Context, cfg Config, sc ChatScenario) ([]ChatResult, error) {
	cfg, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	sc = sc.withDefaults(cfg)
	var out []ChatResult
	for _, t := range cfg.Targets {
		if !slices.Contains(chatTargets, t) {
			fmt.Fprintf(cfg.Log, "chat: %s has no chat scenario; skipped\n", t)
			continue
		}
		r, err := runChatTarget(ctx, cfg, sc, t)
		if err != nil {
			return out, fmt.Errorf("%s: %w", t, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func runChatTarget(ctx context.Context, cfg Config, sc ChatScenario, t Target) (ChatResult, error) {
	srv, err := startTarget(cfg, t)
	if err != nil {
		return ChatResult{}, err
	}
	defer srv.stop()
	c := &chatRun{cfg: cfg, sc: sc, target: t, plan: newChatPlan(sc, rand.New(rand.NewPCG(1, 2))), srv: srv}
	for i := range c.shards {
		for k := range c.shards[i].hists {
			c.shards[i].hists[k] = NewHistogram()
		}
	}
	c.window.Store(&window{})
	defer c.close()
	if err := c.connect(); err != nil {
		return ChatResult{}, err
	}
	fmt.Fprintf(cfg.Log, "chat %s: %d users in %d rooms (the largest %d) connected\n", t, sc.Users, sc.Rooms, c.largest())
	return c.run(ctx), nil
}

func (c *chatRun) largest() int {
	n := 0
	for _, m := range c.plan.members {
		n = max(n, len(m))
	}
	return n
}

// addr is where users connect: the TLS or WebSocket listener for those
// targets, else the server's address.
func (c *chatRun) addr() string {
	if len(c.srv.recvAddrs) > 0 {
		return c.srv.recvAddrs[0]
	}
	return c.srv.addrs[0]
}

// connect logs every user in and puts it in its rooms, 8 at a time.
func (c *chatRun) connect() error {
	c.users = make([]*chatUser, c.sc.Users)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < c.sc.Users; i = int(next.Add(1) - 1) {
				u, err := c.dial(i, c.plan.rooms[i], true)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
				c.users[i] = u
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	if c.target == TargetRedis {
		for i := range 4 {
			conn, err := net.DialTimeout("tcp", c.addr(), 10*time.Second)
			if err != nil {
				return err
			}
			go func() { _, _ = io.Copy(io.Discard, conn) }()
			c.pubs = append(c.pubs, &chatUser{id: -1 - i, conn: conn})
		}
	}
	deadline := time.Now().Add(time.Minute)
	for c.ready.Load() < int64(c.sc.Users) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d users ready within a minute", c.ready.Load(), c.sc.Users)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// dial connects user id (a churner when counted is false) and puts it in
// rooms.
func (c *chatRun) dial(id int, rooms []int, counted bool) (*chatUser, error) {
	u := &chatUser{id: id}
	if c.target == TargetRedis {
		conn, err := net.DialTimeout("tcp", c.addr(), 10*time.Second)
		if err != nil {
			return nil, err
		}
		u.conn = conn
	} else {
		w, err := dialParley(c.target, c.addr(), c.srv.certPEM)
		if err != nil {
			return nil, err
		}
		u.w, u.conn = w, w.conn
	}
	var hello []byte
	if c.target == TargetRedis {
		args := [][]byte{[]byte("SUBSCRIBE"), []byte(userChannel(id))}
		for _, r := range rooms {
			args = append(args, []byte(roomName(r)))
		}
		hello = respCommand(nil, args...)
	} else {
		hello, _ = codec.Append(nil, &codec.Login{Nick: userName(id)})
		for _, r := range rooms {
			hello, _ = codec.Append(hello, &codec.Join{Room: roomName(r), Ref: "j"})
		}
	}
	if err := u.write(hello); err != nil {
		u.conn.Close()
		return nil, err
	}
	go c.read(u, len(rooms), counted)
	return u, nil
}

// read records the messages a user receives until its connection ends.
// A user is ready once every room it joined has answered.
func (c *chatRun) read(u *chatUser, rooms int, counted bool) {
	answers := 0
	ready := func() {
		if answers++; counted && answers == rooms+1 {
			c.ready.Add(1)
		}
	}
	if c.target == TargetRedis {
		br := bufio.NewReaderSize(u.conn, 8<<10)
		var parts [3][]byte
		for {
			n, err := readRESPArray(br, parts[:], &u.buf)
			if err != nil {
				return
			}
			switch {
			case n == 3 && bytes.Equal(parts[0], []byte("message")):
				c.record(u, parts[2], counted)
			case n == 3 && bytes.Equal(parts[0], []byte("subscribe")):
				ready()
			}
		}
	}
	cc := &chatConn{c: c, u: u, counted: counted, ready: ready}
	for {
		body, err := u.w.next()
		if err != nil {
			return
		}
		cc.frame(body, cc)
	}
}

// chatConn is a chat user's Parley connection: its parleyRecv and its
// hooks. Its reader goroutine only.
type chatConn struct {
	parleyRecv
	c       *chatRun
	u       *chatUser
	counted bool
	ready   func() // the login or a join answered
}

func (cc *chatConn) write(frames []byte) { _ = cc.u.write(frames) }

func (cc *chatConn) msg(frame []byte) {
	if i := bytes.Index(frame, bodyKey); i >= 0 {
		cc.c.record(cc.u, frame[i+len(bodyKey):], cc.counted)
	}
}

func (cc *chatConn) filled([]byte) {}

func (cc *chatConn) answered(ev *codec.Event) {
	if ev.Type == codec.TypeWelcome || ev.Ref == "j" {
		cc.ready()
	}
}

func (cc *chatConn) other(*codec.Event) {}

// record counts a delivery to u, unless u sent it (Redis hands a
// publisher's own subscription its message; Parley does not).
func (c *chatRun) record(u *chatUser, body []byte, counted bool) {
	due, class, from, ok := parseChatBody(body)
	if !ok || !counted || from == u.id {
		return
	}
	if w := c.window.Load(); due >= w.from && due < w.to {
		now := time.Now().UnixNano()
		sh := &c.shards[u.id%chatShards]
		sh.mu.Lock()
		Record(sh.hists[class], time.Duration(now-due))
		sh.received[class]++
		sh.mu.Unlock()
	}
}

// run drives the traffic for the warmup and the measured window, then
// waits for the late deliveries.
func (c *chatRun) run(ctx context.Context) ChatResult {
	cfg, sc := c.cfg, c.sc
	start := time.Now().Add(50 * time.Millisecond)
	from, to := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	c.window.Store(&window{from.UnixNano(), to.UnixNano()})
	stats := (&point{srv: c.srv}).sampleWindow(from, to)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); c.churn(stop) }()
	go func() { defer bg.Done(); c.who(stop) }()
	var expected [numClasses]int64
	var messages int64
	rng := rand.New(rand.NewPCG(3, 4))
	var body, frame []byte
	interval := time.Duration(float64(time.Second) / sc.Rate)
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(to) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Until(due))
		user, class, deliveries, dest := c.pick(rng)
		body = chatBody(body, due.UnixNano(), uint64(i), class, user, cfg.Size)
		frame = c.frame(frame[:0], dest, body)
		sender := c.users[user]
		if c.target == TargetRedis {
			sender = c.pubs[i%len(c.pubs)]
		}
		if err := sender.write(frame); err != nil {
			break
		}
		if !due.Before(from) {
			expected[class] += int64(deliveries)
			messages++
		}
	}
	close(stop)
	bg.Wait()
	c.drain(expected, time.Now().Add(cfg.Drain))
	w := <-stats
	return c.result(expected, messages, w)
}

// pick chooses the next message: a DM between two users, or a say by a
// user in one of its rooms. It returns the sender, the class, how many
// deliveries it should make, and where it goes (">user" or a room).
func (c *chatRun) pick(rng *rand.Rand) (from, class, deliveries int, dest string) {
	from = rng.IntN(c.sc.Users)
	if rng.Float64() < c.sc.DMShare {
		to := rng.IntN(c.sc.Users - 1)
		if to >= from {
			to++
		}
		return from, classDM, 1, ">" + userName(to)
	}
	r := c.plan.rooms[from][rng.IntN(len(c.plan.rooms[from]))]
	return from, c.plan.class[r], len(c.plan.members[r]) - 1, roomName(r)
}

// frame encodes a message to dest for the target.
func (c *chatRun) frame(dst []byte, dest string, body []byte) []byte {
	to, dm := bytes.CutPrefix([]byte(dest), []byte(">"))
	if c.target == TargetRedis {
		channel := dest
		if dm {
			channel = "user:" + string(to)
		}
		return respCommand(dst, []byte("PUBLISH"), []byte(channel), body)
	}
	if dm {
		b, _ := codec.Append(dst, &codec.DM{To: string(to), Body: string(body)})
		return b
	}
	b, _ := codec.Append(dst, &codec.Say{Room: dest, Body: string(body)})
	return b
}

// churn logs extra sessions in and out throughout: each joins rooms the
// way a user does, stays a second, and leaves.
func (c *chatRun) churn(stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(5, 6))
	zipf := rand.NewZipf(rng, c.sc.Zipf, 1, uint64(c.sc.Rooms-1))
	tick := time.NewTicker(time.Duration(float64(time.Second) / c.sc.ChurnRate))
	defer tick.Stop()
	var live sync.WaitGroup
	defer live.Wait()
	for k := 1; ; k++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		rooms := []int{int(zipf.Uint64())}
		u, err := c.dial(-k, rooms, false)
		if err != nil {
			continue
		}
		c.churned.Add(1)
		live.Add(1)
		go func() {
			defer live.Done()
			time.Sleep(time.Second)
			if c.target != TargetRedis {
				_ = u.write(codec.MustEncode(&codec.Quit{}))
			}
			time.Sleep(50 * time.Millisecond)
			u.conn.Close()
		}()
	}
}

// who asks for a room's members throughout (Redis: its subscriber count).
func (c *chatRun) who(stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(7, 8))
	tick := time.NewTicker(time.Duration(float64(time.Second) / c.sc.WhoRate))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		u := rng.IntN(c.sc.Users)
		room := roomName(c.plan.rooms[u][0])
		var err error
		if c.target == TargetRedis {
			err = c.pubs[0].write(respCommand(nil, []byte("PUBSUB"), []byte("NUMSUB"), []byte(room)))
		} else {
			err = c.users[u].write(codec.MustEncode(&codec.Who{Room: room}))
		}
		if err == nil {
			c.whos.Add(1)
		}
	}
}

// drain waits until every expected delivery came, or until deadline.
func (c *chatRun) drain(expected [numClasses]int64, deadline time.Time) {
	for time.Now().Before(deadline) {
		received := c.received()
		done := true
		for i := range expected {
			done = done && received[i] >= expected[i]
		}
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// received sums the shards' counts.
func (c *chatRun) received() (n [numClasses]int64) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k := range n {
			n[k] += sh.received[k]
		}
		sh.mu.Unlock()
	}
	return n
}

func (c *chatRun) result(expected [numClasses]int64, messages int64, w [2]ProcStat) ChatResult {
	r := ChatResult{Target: c.target, Users: c.sc.Users, Rooms: c.sc.Rooms, LargestRoom: c.largest(), Messages: messages,
		Expected: expected, Received: c.received(), Churned: c.churned.Load(), Whos: c.whos.Load()}
	var total int64
	for k := range r.hists {
		hs := make([]*hdrhistogram.Histogram, 0, chatShards)
		for i := range c.shards {
			c.shards[i].mu.Lock()
			hs = append(hs, c.shards[i].hists[k])
			c.shards[i].mu.Unlock()
		}
		r.hists[k] = Merge(hs...)
		r.Latency[k] = Summarize(r.hists[k])
		total += r.Received[k]
	}
	r.PerSec = float64(total) / c.cfg.Duration.Seconds()
	if cpu := (w[1].CPU - w[0].CPU).Seconds(); total > 0 && cpu > 0 {
		r.CPUPerDelivery = cpu / float64(total) * 1e6
	}
	if writes := w[1].Writes - w[0].Writes; writes > 0 {
		r.DeliveriesPerWrite = float64(total) / float64(writes)
	}
	r.RSS = w[1].RSS
	return r
}

func (c *chatRun) close() {
	for _, u := range append(c.users, c.pubs...) {
		if u != nil {
			u.conn.Close()
		}
	}
}
