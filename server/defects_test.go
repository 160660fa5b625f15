package server

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"parley/codec"
	"parley/server/natstest"
)

// TestSelfDM: a dm to oneself is acked and delivered to the sender's own
// session, on a single node and on a cluster node alike.
func TestSelfDM(t *testing.T) {
	check := func(t *testing.T, srv *Server) {
		amy := loggedIn(t, srv, "amy")
		amy.send(&codec.DM{To: "AMY", Body: "note to self", Ref: "d"})
		var msg, ack bool
		for !msg || !ack {
			switch ev := amy.next(); ev.Type {
			case codec.TypeAck:
				ack = ev.Ref == "d"
			case codec.TypeMsg:
				if ev.From != "amy" || ev.To != "amy" || ev.Body != "note to self" {
					t.Fatalf("self dm arrived as %+v", ev)
				}
				msg = true
			case codec.TypeError:
				t.Fatalf("self dm refused: %+v", ev)
			}
		}
	}
	t.Run("single", func(t *testing.T) { check(t, startServer(t, Config{})) })
	t.Run("cluster", func(t *testing.T) { check(t, startCluster(t, natstest.Start(t), 2)[1]) })
}

// rawFrames dials srv and returns a function that sends a frame and one
// that reads the next frame other than ping as a JSON object, so that a
// test can tell a field sent as zero from a field left out.
func rawFrames(t *testing.T, addr string) (send func(codec.Message), next func() map[string]any) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := codec.NewReader(conn, 0)
	send = func(m codec.Message) {
		if _, err := conn.Write(codec.MustEncode(m)); err != nil {
			t.Fatal(err)
		}
	}
	next = func() map[string]any {
		t.Helper()
		for {
			_ = conn.SetReadDeadline(time.Now().Add(waitFor))
			body, err := r.Next()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			if m["type"] != codec.TypePing {
				return m
			}
		}
	}
	return send, next
}

// TestAlwaysPresentFields: the fields PROTOCOL.md says are always present
// are sent when zero: welcome's epoch and seq on an empty lobby, a token
// login's dm_epoch and dm_seq before any dm, a join ack's seq for a new
// room.
func TestAlwaysPresentFields(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", nil)
	send, next := rawFrames(t, srv.Addr().String())
	send(&codec.Login{Token: s.token("u1", "amy", time.Hour)})
	w := next()
	for _, f := range []string{"epoch", "seq", "dm_epoch", "dm_seq"} {
		if _, ok := w[f]; !ok {
			t.Errorf("welcome %v has no %s", w, f)
		}
	}
	if w["seq"] != 0.0 || w["dm_seq"] != 0.0 {
		t.Errorf("welcome %v: seq and dm_seq should be 0", w)
	}
	send(&codec.Join{Room: "fresh", Ref: "j"})
	for {
		m := next()
		if m["type"] != codec.TypeAck {
			continue
		}
		if seq, ok := m["seq"]; !ok || seq != 0.0 {
			t.Fatalf("join ack of a new room %v: want seq 0 present", m)
		}
		if _, ok := m["epoch"]; !ok {
			t.Fatalf("join ack %v has no epoch", m)
		}
		break
	}
	// A guest's welcome has no account, so no dm fields, but epoch and seq.
	send2, next2 := rawFrames(t, srv.Addr().String())
	send2(&codec.Login{Nick: "bob"})
	g := next2()
	if _, ok := g["seq"]; !ok {
		t.Errorf("guest welcome %v has no seq", g)
	}
	if _, ok := g["dm_seq"]; ok {
		t.Errorf("guest welcome %v has dm_seq", g)
	}
}
