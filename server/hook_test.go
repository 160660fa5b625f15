package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/api"
	"parley/codec"
)

// The pre-send hook (docs/API.md "Pre-send hook") against a real HTTP
// server on 127.0.0.1 that decides by the body's first word.

// hookApp is the application's hook endpoint.
type hookApp struct {
	mu      sync.Mutex
	seen    []api.HookRequest
	release chan struct{} // a "hold" message waits for it
	url     string
}

func startHookApp(t *testing.T) *hookApp {
	h := &hookApp{release: make(chan struct{})}
	h.url = serveHTTP(t, h) + "hook"
	return h
}

func (h *hookApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req api.HookRequest
	data, _ := io.ReadAll(r.Body)
	if json.Unmarshal(data, &req) != nil {
		http.Error(w, "bad", 400)
		return
	}
	h.mu.Lock()
	h.seen = append(h.seen, req)
	h.mu.Unlock()
	v := api.HookVerdict{Action: api.HookAllow}
	switch word, _, _ := strings.Cut(req.Body, " "); word {
	case "block":
		v = api.HookVerdict{Action: api.HookReject, Code: "spam", Message: "no spam here"}
	case "swear":
		v = api.HookVerdict{Action: api.HookReplace, Body: "****"}
	case "hold":
		select {
		case <-h.release:
		case <-r.Context().Done():
			return
		}
	case "stall":
		<-r.Context().Done() // past the server's timeout
		return
	case "nonsense":
		_, _ = w.Write([]byte(`{"action":"maybe"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

func (h *hookApp) requests() []api.HookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]api.HookRequest(nil), h.seen...)
}

// untilMsg waits for the room message of room with seq.
func (c *tclient) untilMsg(room string, seq uint64) codec.Event {
	c.t.Helper()
	return c.until("message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == room && ev.Seq == seq })
}

// TestHookDecides: allow, reject (the sender's error carries the
// application's code and words; members get nothing and no seq is
// spent), replace, a dm rejected, and the hook's request fields.
func TestHookDecides(t *testing.T) {
	app := startHookApp(t)
	// A timeout no loaded machine reaches: every decision here is the
	// application's.
	srv := startServer(t, Config{HookURL: app.url, HookTimeout: time.Minute, AdminAddr: "127.0.0.1:0"})
	amy, bob := loggedIn(t, srv, "amy"), loggedIn(t, srv, "bob")
	amy.joinRoom("den")
	bob.joinRoom("den")
	amy.ok(&codec.Say{Room: "den", Body: "hello @bob", Ref: "a"}, "a")
	if ev := bob.untilMsg("den", 1); ev.Body != "hello @bob" {
		t.Fatalf("bob got %+v", ev)
	}
	ev := amy.refused(&codec.Say{Room: "den", Body: "block this", Ref: "b"}, "b", codec.CodeRejected)
	if ev.Reason != "spam" || ev.Message != "no spam here" {
		t.Fatalf("the rejection: %+v", ev)
	}
	amy.ok(&codec.Say{Room: "den", Body: "swear words", Ref: "c"}, "c")
	if ev := bob.untilMsg("den", 2); ev.Body != "****" {
		t.Fatalf("the replaced message reached bob as %+v (and the rejected one must not have taken seq 2)", ev)
	}
	amy.refused(&codec.DM{To: "bob", Body: "block dm", Ref: "d"}, "d", codec.CodeRejected)
	amy.ok(&codec.DM{To: "bob", Body: "swear dm", Ref: "e"}, "e")
	if ev := bob.until("dm", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.To != "" }); ev.Body != "****" {
		t.Fatalf("bob's dm: %+v", ev)
	}
	seen := app.requests()
	if len(seen) != 5 || seen[0].Type != "say" || seen[0].Room != "den" || seen[0].Nick != "amy" ||
		len(seen[0].Mentions) != 1 || seen[0].Mentions[0] != "bob" || seen[3].Type != "dm" || seen[3].To != "bob" {
		t.Fatalf("the hook saw %+v", seen)
	}
	series, _ := scrape(t, srv)
	for name, want := range map[string]float64{"parley_hook_decisions_total{decision=reject}": 2,
		"parley_hook_decisions_total{decision=replace}": 2, "parley_hook_decisions_total{decision=allow}": 1, "parley_hook_seconds": 5} {
		if series[name] != want {
			t.Errorf("/metrics: %s is %v, want %v", name, series[name], want)
		}
	}
}

// TestHookOrder: while amy's message waits for its decision, her next
// one waits behind it (her order is kept), and cyd's messages in the
// same room and bob's in another go through; once the hook answers,
// amy's two follow, in her order.
func TestHookOrder(t *testing.T) {
	app := startHookApp(t)
	srv := startServer(t, Config{HookURL: app.url, HookTimeout: time.Minute})
	amy, bob, cyd := loggedIn(t, srv, "amy"), loggedIn(t, srv, "bob"), loggedIn(t, srv, "cyd")
	amy.joinRoom("den")
	cyd.joinRoom("den")
	bob.joinRoom("other")
	amy.send(&codec.Say{Room: "den", Body: "hold first", Ref: "1"})
	amy.send(&codec.Say{Room: "den", Body: "then second", Ref: "2"})
	eventually(t, "the hook holds amy's first", func() bool { return len(app.requests()) == 1 })
	bob.ok(&codec.Say{Room: "other", Body: "elsewhere", Ref: "b"}, "b")
	cyd.ok(&codec.Say{Room: "den", Body: "meanwhile", Ref: "c"}, "c")
	if ev := amy.untilMsg("den", 1); ev.From != "cyd" {
		t.Fatalf("seq 1 of den is %+v, want cyd's", ev)
	}
	if n := len(app.requests()); n != 3 {
		t.Fatalf("the hook saw %d requests while amy's first waited, want 3 (amy's second waits behind it)", n)
	}
	close(app.release)
	if ev := cyd.untilMsg("den", 2); ev.Body != "hold first" {
		t.Fatalf("seq 2: %+v", ev)
	}
	if ev := cyd.untilMsg("den", 3); ev.Body != "then second" {
		t.Fatalf("seq 3: %+v", ev)
	}
}

// TestHookFailurePolicies: a hook that never answers (and one that
// answers nonsense) lets the message through under open, and refuses it
// with unavailable under closed.
func TestHookFailurePolicies(t *testing.T) {
	app := startHookApp(t)
	open := startServer(t, Config{HookURL: app.url, HookTimeout: 200 * time.Millisecond})
	amy, bob := loggedIn(t, open, "amy"), loggedIn(t, open, "bob")
	amy.joinRoom("den")
	bob.joinRoom("den")
	amy.ok(&codec.Say{Room: "den", Body: "stall open", Ref: "a"}, "a")
	amy.ok(&codec.Say{Room: "den", Body: "nonsense open", Ref: "b"}, "b")
	if ev := bob.untilMsg("den", 2); ev.Body != "nonsense open" {
		t.Fatalf("bob got %+v", ev)
	}
	// Long enough for the hook's answers to come in time on a loaded
	// machine; a stalled call waits it out.
	closed := startServer(t, Config{HookURL: app.url, HookTimeout: 3 * time.Second, HookFailure: "closed"})
	cyd, dan := loggedIn(t, closed, "cyd"), loggedIn(t, closed, "dan")
	cyd.joinRoom("den")
	dan.joinRoom("den")
	cyd.refused(&codec.Say{Room: "den", Body: "stall closed", Ref: "a"}, "a", codec.CodeUnavailable)
	cyd.refused(&codec.Say{Room: "den", Body: "nonsense closed", Ref: "b"}, "b", codec.CodeUnavailable)
	cyd.ok(&codec.Say{Room: "den", Body: "fine", Ref: "c"}, "c")
	if ev := dan.untilMsg("den", 1); ev.Body != "fine" {
		t.Fatalf("dan got %+v: a refused message reached the room", ev)
	}
}
