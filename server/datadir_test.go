package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"parley/codec"
)

// TestDataDirRestart: a server restarted on its data dir under traffic
// continues every room's seq and epoch and serves history and resume; a
// fresh server on an empty dir starts a new epoch, and a resume from the
// old one says recovered false.
func TestDataDirRestart(t *testing.T) {
	dir := t.TempDir()
	first := startServerUntil(t, Config{DataDir: dir, RateLimit: -1})
	amy := loggedIn(t, first.srv, "amy")
	amy.send(&codec.Join{Room: "r", Ref: "j"})
	epoch := amy.untilAck("j").Epoch
	var last uint64
	for i := range 50 {
		amy.send(&codec.Say{Room: "r", Body: fmt.Sprint(i + 1), Ref: "s"})
		last = amy.untilAck("s").Seq
	}
	// Under traffic: a talker's says are in flight when the server stops;
	// every one it acked must survive.
	talker := loggedIn(t, first.srv, "talker")
	talker.joinRoom("r")
	for i := range 300 {
		talker.send(&codec.Say{Room: "r", Body: fmt.Sprint("t", i), Ref: fmt.Sprint("t", i)})
	}
	talker.until("some acks", func(ev codec.Event) bool { return ev.Type == codec.TypeAck && ev.Seq > last+10 })
	first.stop(t)
	acked := map[uint64]string{}
	for done := false; !done; {
		select {
		case ev := <-talker.events:
			if ev.Type == codec.TypeAck && ev.Seq > 0 {
				acked[ev.Seq] = ev.Ref
			}
		default:
			done = true
		}
	}

	second := startServerUntil(t, Config{DataDir: dir, RateLimit: -1})
	bob := loggedIn(t, second.srv, "bob")
	bob.send(&codec.Join{Room: "r", Since: u64(40), Epoch: epoch, Ref: "j"})
	ack := bob.untilAck("j")
	if ack.Epoch != epoch || ack.Seq < last+10 {
		t.Fatalf("after the restart the join ack is %+v, want epoch %q and seq past %d", ack, epoch, last+10)
	}
	var got []uint64
	bodies := map[uint64]string{}
	for ev := bob.next(); ev.Type != codec.TypeRecover; ev = bob.next() {
		got = append(got, ev.Seq)
		bodies[ev.Seq] = ev.Body
	}
	if fmt.Sprint(got) != fmt.Sprint(span(41, ack.Seq)) {
		t.Fatalf("replay after the restart %v, want 41-%d", got, ack.Seq)
	}
	for seq, ref := range acked {
		if bodies[seq] != ref {
			t.Fatalf("acked seq %d (%s) came back as %q", seq, ref, bodies[seq])
		}
	}
	last = ack.Seq
	if page := bob.history(&codec.History{Room: "r", Before: u64(11), Limit: intp(10)}); fmt.Sprint(seqsOf(page.Msgs)) != fmt.Sprint(span(1, 10)) || page.Msgs[0].Body != "1" {
		t.Fatalf("history after the restart: %v", seqsOf(page.Msgs))
	}
	bob.send(&codec.Say{Room: "r", Body: "after", Ref: "s"})
	if ack := bob.untilAck("s"); ack.Seq != last+1 {
		t.Fatalf("seq after the restart %d, want %d", ack.Seq, last+1)
	}
	second.stop(t)

	fresh := startServerUntil(t, Config{DataDir: t.TempDir(), RateLimit: -1})
	cat := loggedIn(t, fresh.srv, "cat")
	cat.send(&codec.Join{Room: "r", Since: u64(40), Epoch: epoch, Ref: "j"})
	if ack := cat.untilAck("j"); ack.Epoch == epoch || ack.Seq != 0 {
		t.Fatalf("a fresh data dir answered %+v", ack)
	}
	if ev := cat.next(); ev.Type != codec.TypeRecover || ev.Recovered {
		t.Fatalf("a resume from another epoch got %+v", ev)
	}
}

// TestDataDirUnusable: a data dir that cannot hold the file is a clear
// error at start.
func TestDataDirUnusable(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{DataDir: file})
	if err == nil || !strings.Contains(err.Error(), "data dir") {
		t.Fatalf("New with a file for a data dir: %v", err)
	}
	if _, err := New(Config{DataDir: t.TempDir(), NATS: "nats://127.0.0.1:1"}); err == nil {
		t.Fatal("a data dir with a cluster was accepted")
	}
}

// running is a server a test stops itself, and waits for: Serve has
// returned (the data dir is closed) when stop returns.
type running struct {
	srv  *Server
	errc chan error
	once sync.Once
}

func startServerUntil(t *testing.T, cfg Config) *running {
	t.Helper()
	cfg.Addr, cfg.Loops, cfg.ConnRatePerIP = "127.0.0.1:0", 2, -1
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{srv: srv, errc: make(chan error, 1)}
	go func() { r.errc <- srv.Serve(context.Background()) }()
	select {
	case <-srv.Ready():
	case err := <-r.errc:
		t.Fatalf("Serve: %v", err)
	case <-time.After(waitFor):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := r.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-r.errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// TestDataDirFull: a data dir whose disk fills up while the server runs
// costs the durable history, not the chat: says are delivered, acked while
// the disk takes them and answered not_stored once it does not (an ack
// means stored), the server logs the failure clearly, and the file opens
// again intact at
// the next start, with every room on a new epoch (the seqs the disk missed
// were seen). It needs a small tmpfs, which only root can mount.
func TestDataDirFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512k"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	logs := &lockedBuffer{}
	first := startServerUntil(t, Config{DataDir: dir, RateLimit: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	amy := loggedIn(t, first.srv, "amy")
	bob := loggedIn(t, first.srv, "bob")
	body := strings.Repeat("x", 4000)
	const says = 400 // 1.6 MB of frames for a 512 KiB disk
	var epoch string
	acked, notStored := 0, 0
	for i := range says {
		amy.send(&codec.Say{Body: body, Ref: "s"})
		switch ev := amy.until("the answer", func(ev codec.Event) bool { return ev.Ref == "s" }); {
		case ev.Type == codec.TypeAck:
			acked++
		case ev.Code == codec.CodeNotStored:
			notStored++
		default:
			t.Fatalf("say %d answered %+v", i, ev)
		}
		if ev := bob.until("the message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg }); ev.Seq != uint64(i+1) {
			t.Fatalf("bob got seq %d, want %d", ev.Seq, i+1)
		}
	}
	if acked == 0 || notStored == 0 {
		t.Fatalf("%d says acked and %d not stored: want both, the disk filled on the way", acked, notStored)
	}
	bob.send(&codec.History{Limit: intp(1), Ref: "h"})
	epoch = bob.until("page", func(ev codec.Event) bool { return ev.Ref == "h" }).Epoch
	eventually(t, "the failure logged", func() bool { return strings.Contains(logs.String(), "history store: write failed") })
	first.stop(t)

	second := startServerUntil(t, Config{DataDir: dir, RateLimit: -1})
	cat := loggedIn(t, second.srv, "cat")
	page := cat.history(&codec.History{Limit: intp(100)})
	if page.Epoch == epoch {
		t.Fatal("after a full disk the lobby kept its epoch: the seqs the disk missed could be given again")
	}
	if len(page.Msgs) == 0 {
		t.Fatal("nothing of what the disk took came back")
	}
	t.Logf("the full disk kept %d of %d messages (the latest page ends at seq %d)", len(page.Msgs), says, page.Msgs[len(page.Msgs)-1].Seq)
}

// lockedBuffer is a log sink tests read while the server writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
