package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"parley/codec"
)

// A cluster load process (`parley bench-cluster-load`, one of several that
// `parley bench --cluster` starts, since one process holds at most about
// 19,000 sockets) logs in its share of the users, each to its node and
// into its group room, says ready, waits for the word to start, then sends
// its share of the traffic for the window, churns, drains, and reports:
// latencies by same-node and cross-node delivery, and every member's seq
// stream, for the coordinator to check that nothing was lost.

// ClusterLoadSpec is one load process's part of the run.
type ClusterLoadSpec struct {
	Addrs    []string      `json:"addrs"` // the nodes, by index
	Users    int           `json:"users"` // in the whole run
	From     int           `json:"from"`  // this process's users: [From, To)
	To       int           `json:"to"`
	Group    int           `json:"group"` // members per group room
	Rate     float64       `json:"rate"`  // this process's messages per second, says and DMs
	DMShare  float64       `json:"dm_share"`
	Churn    float64       `json:"churn"` // this process's extra sessions a minute
	Duration time.Duration `json:"duration"`
	Drain    time.Duration `json:"drain"`
	Index    int           `json:"index"`
}

// ClusterLoadResult is what one load process reports.
type ClusterLoadResult struct {
	Ready      time.Duration     `json:"ready"` // logins and joins took
	LoginFails int               `json:"login_fails"`
	Says       int64             `json:"says"`      // acked
	SayFails   map[string]int64  `json:"say_fails"` // by error code
	DMs        int64             `json:"dms"`       // acked
	DMFails    map[string]int64  `json:"dm_fails"`
	DMsGot     int64             `json:"dms_got"`
	MsgsGot    int64             `json:"msgs_got"`
	Churned    int64             `json:"churned"`
	Acked      map[string]uint64 `json:"acked"`   // room → highest seq acked here
	Streams    []MemberStream    `json:"streams"` // every member's seqs, checked here
	Same       []byte            `json:"same"`    // hdrhistogram snapshots, JSON
	Cross      []byte            `json:"cross"`
	DM         []byte            `json:"dm"`
}

// MemberStream is one member's view of its group room: the seq it joined
// after, the last it got, and what was wrong in between.
type MemberStream struct {
	Room    string `json:"room"`
	Joined  uint64 `json:"joined"`
	Last    uint64 `json:"last"`
	Missing int    `json:"missing"`
	Dups    int    `json:"dups"`
}

// loadUser is one logged-in connection of a load process.
type loadUser struct {
	idx, node int
	nick      string
	room      string
	conn      net.Conn
	wmu       sync.Mutex
	joined    chan uint64 // the join's ack seq
	mu        sync.Mutex
	seqs      []uint64 // seqs seen in room: delivered, or acked as its own
	last      uint64
}

func clusterNick(i int) string { return "u" + strconv.Itoa(i) }
func clusterRoom(i, group int) string {
	return "g" + strconv.Itoa(i/group)
}

// loadState is one load process's counters and histograms.
type loadState struct {
	spec                                ClusterLoadSpec
	says, dms, dmsGot, msgsGot, churned atomic.Int64
	mu                                  sync.Mutex
	sayFails, dmFails                   map[string]int64
	acked                               map[string]uint64
	same, cross, dm                     *hdrhistogram.Histogram
	measuring                           atomic.Bool
	refs                                sync.Map // ref → *loadUser (a say's sender)
	refN                                atomic.Int64
}

// RunClusterLoad runs one load process: in says when to start (a line),
// out gets "ready" and then the result as JSON lines.
func RunClusterLoad(ctx context.Context, spec ClusterLoadSpec, in io.Reader, out io.Writer) error {
	st := &loadState{spec: spec, sayFails: map[string]int64{}, dmFails: map[string]int64{}, acked: map[string]uint64{},
		same: newHist(), cross: newHist(), dm: newHist()}
	start := time.Now()
	users, fails := st.connectAll(ctx)
	res := ClusterLoadResult{Ready: time.Since(start), LoginFails: fails}
	enc := json.NewEncoder(out)
	if err := enc.Encode(map[string]any{"ready": true, "users": len(users), "fails": fails}); err != nil {
		return err
	}
	if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for the start: %w", err)
	}
	st.measuring.Store(true)
	trafficCtx, cancel := context.WithTimeout(ctx, spec.Duration)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); st.send(trafficCtx, users) }()
	go func() { defer wg.Done(); st.churn(trafficCtx) }()
	wg.Wait()
	cancel()
	time.Sleep(spec.Drain)
	st.measuring.Store(false)
	for _, u := range users {
		_ = u.conn.Close()
	}
	res.Says, res.DMs, res.DMsGot, res.MsgsGot, res.Churned = st.says.Load(), st.dms.Load(), st.dmsGot.Load(), st.msgsGot.Load(), st.churned.Load()
	st.mu.Lock()
	res.SayFails, res.DMFails, res.Acked = st.sayFails, st.dmFails, st.acked
	res.Same, _ = json.Marshal(st.same.Export())
	res.Cross, _ = json.Marshal(st.cross.Export())
	res.DM, _ = json.Marshal(st.dm.Export())
	st.mu.Unlock()
	for _, u := range users {
		res.Streams = append(res.Streams, u.stream())
	}
	return enc.Encode(res)
}

// connectAll logs in this process's users, 256 at a time, each joining
// its group room; it returns those that made it.
func (st *loadState) connectAll(ctx context.Context) ([]*loadUser, int) {
	sp := st.spec
	var mu sync.Mutex
	var users []*loadUser
	fails := 0
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for i := sp.From; i < sp.To && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			u := &loadUser{idx: i, node: i % len(sp.Addrs), nick: clusterNick(i), room: clusterRoom(i, sp.Group), joined: make(chan uint64, 1)}
			err := st.login(u, true)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				return
			}
			users = append(users, u)
		}()
	}
	wg.Wait()
	return users, fails
}

// loginPatience is how long a user keeps trying to log in and join: an
// unavailable answer (a claim the cluster did not answer in time, the
// protocol's "retry later") is retried, with growing pauses.
const loginPatience = time.Minute

// login connects u to its node, logs in and joins its room (with join).
func (st *loadState) login(u *loadUser, join bool) error {
	deadline := time.Now().Add(loginPatience)
	pause := 200 * time.Millisecond
	for {
		err := st.loginOnce(u, join)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Second)
	}
}

func (st *loadState) loginOnce(u *loadUser, join bool) error {
	c, err := net.DialTimeout("tcp", st.spec.Addrs[u.node], 10*time.Second)
	if err != nil {
		return err
	}
	r := codec.NewReader(c, 0)
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(codec.MustEncode(&codec.Login{Nick: u.nick})); err != nil {
		c.Close()
		return err
	}
	ev, err := readUntil(r, func(e *codec.Event) bool { return e.Type == codec.TypeWelcome || e.Type == codec.TypeError })
	if err == nil && ev.Type != codec.TypeWelcome {
		err = fmt.Errorf("login %s: %s %s", u.nick, ev.Code, ev.Message)
	}
	if err == nil && join {
		_, err = c.Write(codec.MustEncode(&codec.Join{Room: u.room, Ref: "j"}))
		if err == nil {
			ev, err = readUntil(r, func(e *codec.Event) bool { return e.Ref == "j" })
		}
		if err == nil && ev.Type != codec.TypeAck {
			err = fmt.Errorf("join %s: %s %s", u.room, ev.Code, ev.Message)
		}
	}
	if err != nil {
		c.Close()
		return err
	}
	_ = c.SetDeadline(time.Time{})
	u.conn = c
	u.last = ev.Seq
	u.joined <- ev.Seq
	go st.read(u, r)
	return nil
}

// readUntil reads frames until one that match accepts.
func readUntil(r *codec.Reader, match func(*codec.Event) bool) (codec.Event, error) {
	for {
		f, err := r.Next()
		if err != nil {
			return codec.Event{}, err
		}
		var ev codec.Event
		if codec.DecodeEvent(f, &ev) == nil && match(&ev) {
			return ev, nil
		}
	}
}

// read is u's reader: it answers pings, times messages and records seqs.
func (st *loadState) read(u *loadUser, r *codec.Reader) {
	for {
		f, err := r.Next()
		if err != nil {
			return
		}
		var ev codec.Event
		if codec.DecodeEvent(f, &ev) != nil {
			continue
		}
		switch ev.Type {
		case codec.TypePing:
			u.write(codec.MustEncode(&codec.Pong{}))
		case codec.TypeMsg:
			st.got(u, &ev)
		case codec.TypeAck:
			if ev.Ref != "" && ev.Ref[0] == 's' && ev.Seq > 0 {
				u.record(ev.Seq)
				st.mu.Lock()
				st.acked[u.room] = max(st.acked[u.room], ev.Seq)
				st.mu.Unlock()
				st.says.Add(1)
			} else if ev.Ref != "" && ev.Ref[0] == 'd' {
				st.dms.Add(1)
			}
		case codec.TypeError:
			st.mu.Lock()
			if ev.Ref != "" && ev.Ref[0] == 'd' {
				st.dmFails[string(ev.Code)]++
			} else {
				st.sayFails[string(ev.Code)]++
			}
			st.mu.Unlock()
		}
	}
}

// got records a message: its latency from the time in its body, by
// whether it crossed nodes, and its seq in the member's stream.
func (st *loadState) got(u *loadUser, ev *codec.Event) {
	now := time.Now().UnixNano()
	node, sent, ok := parseClusterBody(ev.Body)
	if ev.Room == "" {
		st.dmsGot.Add(1)
	} else {
		st.msgsGot.Add(1)
		u.record(ev.Seq)
	}
	if !ok || !st.measuring.Load() {
		return
	}
	us := max((now-sent)/1000, 1)
	st.mu.Lock()
	switch {
	case ev.Room == "":
		_ = st.dm.RecordValue(us)
	case node == u.node:
		_ = st.same.RecordValue(us)
	default:
		_ = st.cross.RecordValue(us)
	}
	st.mu.Unlock()
}

func (u *loadUser) record(seq uint64) {
	u.mu.Lock()
	u.seqs = append(u.seqs, seq)
	u.mu.Unlock()
}

func (u *loadUser) write(f []byte) {
	u.wmu.Lock()
	_ = u.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = u.conn.Write(f)
	u.wmu.Unlock()
}

// stream checks u's seqs: each once, none missing after the join.
func (u *loadUser) stream() MemberStream {
	u.mu.Lock()
	defer u.mu.Unlock()
	ms := MemberStream{Room: u.room, Joined: u.last, Last: u.last}
	slices.Sort(u.seqs)
	next := u.last + 1
	for i, s := range u.seqs {
		if i > 0 && s == u.seqs[i-1] {
			ms.Dups++
			continue
		}
		if s > next {
			ms.Missing += int(s - next)
		}
		next = s + 1
		ms.Last = s
	}
	return ms
}

func clusterBody(node int, sent int64) string {
	return strconv.Itoa(node) + ":" + strconv.FormatInt(sent, 10) + ":" + strings.Repeat("x", 32)
}

func parseClusterBody(b string) (node int, sent int64, ok bool) {
	n, rest, ok1 := strings.Cut(b, ":")
	t, _, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	node, err1 := strconv.Atoi(n)
	sent, err2 := strconv.ParseInt(t, 10, 64)
	return node, sent, err1 == nil && err2 == nil
}

// send paces this process's messages over the window: a say in the
// sender's group room, or a DM to any user of the run.
func (st *loadState) send(ctx context.Context, users []*loadUser) {
	if st.spec.Rate <= 0 || len(users) == 0 {
		<-ctx.Done()
		return
	}
	gap := time.Duration(float64(time.Second) / st.spec.Rate)
	next := time.Now()
	rng := rand.New(rand.NewPCG(uint64(st.spec.Index), 7))
	for ctx.Err() == nil {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		next = next.Add(gap)
		u := users[rng.IntN(len(users))]
		body := clusterBody(u.node, time.Now().UnixNano())
		n := st.refN.Add(1)
		if rng.Float64() < st.spec.DMShare {
			to := rng.IntN(st.spec.Users)
			u.write(codec.MustEncode(&codec.DM{To: clusterNick(to), Body: body, Ref: "d" + strconv.FormatInt(n, 10)}))
			continue
		}
		u.write(codec.MustEncode(&codec.Say{Room: u.room, Body: body, Ref: "s" + strconv.FormatInt(n, 10)}))
	}
}

// churn logs extra sessions in and out over the window: each joins a
// group room, stays two seconds and quits.
func (st *loadState) churn(ctx context.Context) {
	if st.spec.Churn <= 0 {
		<-ctx.Done()
		return
	}
	gap := time.Duration(float64(time.Minute) / st.spec.Churn)
	tick := time.NewTicker(gap)
	defer tick.Stop()
	rng := rand.New(rand.NewPCG(uint64(st.spec.Index), 11))
	var wg sync.WaitGroup
	defer wg.Wait()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		room := rng.IntN(st.spec.Users)
		u := &loadUser{node: rng.IntN(len(st.spec.Addrs)), nick: fmt.Sprintf("c%d_%d", st.spec.Index, n), room: clusterRoom(room, st.spec.Group), joined: make(chan uint64, 1)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st.loginOnce(u, true) != nil {
				return
			}
			st.churned.Add(1)
			time.Sleep(2 * time.Second)
			u.write(codec.MustEncode(&codec.Quit{}))
			_ = u.conn.Close()
		}()
	}
}
