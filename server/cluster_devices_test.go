package server

import (
	"testing"
	"time"

	"parley/codec"
	"parley/server/natstest"
)

// An account's sessions on several nodes (docs/CLUSTER.md "Accounts in a
// cluster") and a resume through another node than the one a session
// dropped from.

// devicesCluster starts count nodes that take tokens from s, with at most
// two sessions per account.
func devicesCluster(t *testing.T, s *signer, count int, tweak func(*Config)) []*Server {
	nats := natstest.Start(t)
	return startClusterWith(t, nats, count, func(c *Config) {
		c.AuthKeys, c.AuthAudience, c.MaxSessionsPerUser = s.keySpec, "chat", 2
		if tweak != nil {
			tweak(c)
		}
	})
}

// welcomed logs in with token through srv and fails unless welcomed.
func welcomed(t *testing.T, srv *Server, token string) (*tclient, codec.Event) {
	t.Helper()
	c, w := clusterLogin(t, srv, token)
	if w.Type != codec.TypeWelcome {
		t.Fatalf("login through %s: %+v", srv.Stats().Cluster.Node, w)
	}
	return c, w
}

// whoOnline returns the nicks online as c's node lists them.
func whoOnline(c *tclient, ref string) []string {
	c.send(&codec.Who{Ref: ref})
	return c.until("who "+ref, func(e codec.Event) bool { return e.Type == codec.TypeUsers && e.Ref == ref }).Nicks
}

func count(nicks []string, nick string) int {
	n := 0
	for _, k := range nicks {
		if k == nick {
			n++
		}
	}
	return n
}

// noLeftUntil reads c's frames up to the one match accepts, failing on a
// left of nick in room on the way.
func noLeftUntil(t *testing.T, c *tclient, what, nick, room string, match func(codec.Event) bool) codec.Event {
	t.Helper()
	return c.until(what, func(e codec.Event) bool {
		if e.Type == codec.TypeLeft && e.Nick == nick && e.Room == room {
			t.Fatalf("%s left %s while a session of its account was still there: %+v", nick, room, e)
		}
		if e.Type == codec.TypePresence && e.Room == room && e.Left > 0 {
			t.Fatalf("presence counted a leave in %s: %+v", room, e)
		}
		return match(e)
	})
}

// TestClusterAccountOnTwoNodes: an account's sessions through two nodes
// are one user: listed once, a member once, every direct message reaches
// both (the copy of one it sent too), the session limit counts both, and
// it leaves a room when its last session there does.
func TestClusterAccountOnTwoNodes(t *testing.T) {
	s := newSigner(t)
	nodes := devicesCluster(t, s, 3, nil)
	amy, _ := welcomed(t, nodes[0], s.token("amy", "", time.Hour))
	amy2, _ := welcomed(t, nodes[1], s.token("amy", "", time.Hour))
	ben, _ := welcomed(t, nodes[2], s.token("ben", "", time.Hour))

	eventually(t, "every node lists amy once", func() bool {
		return count(whoOnline(ben, "w1"), "amy") == 1 && count(whoOnline(amy, "w2"), "amy") == 1 && count(whoOnline(amy2, "w3"), "amy") == 1
	})
	if third, ev := tokenLogin(t, nodes[2], s.token("amy", "", time.Hour)); ev.Code != codec.CodeTooManySessions {
		third.conn.Close()
		t.Fatalf("a third session of amy, limit 2 over the cluster: %+v, want too_many_sessions", ev)
	}

	ben.send(&codec.DM{To: "amy", Body: "to both", Ref: "d1"})
	ben.untilAck("d1")
	for _, c := range []*tclient{amy, amy2} {
		if m := c.until("ben's dm", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.From == "ben" }); m.Body != "to both" {
			t.Fatalf("amy got %+v", m)
		}
	}
	amy.send(&codec.DM{To: "ben", Body: "from one device", Ref: "d2"})
	amy.untilAck("d2")
	if m := amy2.until("the copy of amy's dm", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.From == "amy" }); m.To != "ben" || m.Body != "from one device" {
		t.Fatalf("amy's other device got %+v", m)
	}
	ben.until("amy's dm", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.From == "amy" })

	ben.joinRoom("r")
	amy.joinRoom("r")
	ben.until("amy joins", func(e codec.Event) bool { return e.Type == codec.TypeJoined && e.Nick == "amy" && e.Room == "r" })
	amy2.joinRoom("r")
	carl, _ := welcomed(t, nodes[1], s.token("carl", "", time.Hour))
	carl.joinRoom("r") // after amy2's join on the same node: ben sees carl's join after amy2's
	noLeftUntil(t, ben, "carl joins", "amy", "r", func(e codec.Event) bool {
		if e.Type == codec.TypeJoined && e.Nick == "amy" && e.Room == "r" {
			t.Fatalf("amy joined r twice for ben: %+v", e)
		}
		return e.Type == codec.TypeJoined && e.Nick == "carl" && e.Room == "r"
	})
	ben.send(&codec.Who{Room: "r", Ref: "wr"})
	if u := ben.until("who r", func(e codec.Event) bool { return e.Type == codec.TypeUsers && e.Ref == "wr" }); u.Count != 3 || count(u.Nicks, "amy") != 1 {
		t.Fatalf("who r through ben's node: %+v, want amy once of 3", u)
	}

	amy.send(&codec.Quit{})
	carl.send(&codec.Say{Room: "r", Body: "after amy's first device", Ref: "c1"})
	carl.untilAck("c1")
	noLeftUntil(t, ben, "carl's say", "amy", "r", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.From == "carl" })
	amy2.send(&codec.Quit{})
	if e := ben.until("amy leaves with her last session", func(e codec.Event) bool { return e.Type == codec.TypeLeft && e.Nick == "amy" }); e.Room != "r" {
		t.Fatalf("ben saw %+v", e)
	}
	eventually(t, "amy is offline everywhere", func() bool { return count(whoOnline(ben, "w4"), "amy") == 0 })
}

// TestClusterResumeThroughAnotherNode: a session that dropped from one
// node resumes through another with its resume token: the nick comes
// back (nobody else gets it meanwhile), the lobby and its room replay
// what it missed, the direct messages sent meanwhile arrive, and the
// first node's hold ends.
func TestClusterResumeThroughAnotherNode(t *testing.T) {
	s := newSigner(t)
	nodes := devicesCluster(t, s, 2, func(c *Config) {
		c.NickHold = time.Minute
		c.Auth = "optional"
	})
	ben, _ := welcomed(t, nodes[1], s.token("ben", "", time.Hour))
	ben.joinRoom("r")
	amy, w := welcomed(t, nodes[0], s.token("amy", "", time.Hour))
	amy.send(&codec.Join{Room: "r", Ref: "j"})
	joined := amy.untilAck("j")
	ben.send(&codec.Say{Room: "r", Body: "before", Ref: "b0"})
	seen := ben.untilAck("b0").Seq
	amy.until("before", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.Seq == seen })
	amy.conn.Close() // dropped, not quit: node 0 holds the nick for her token

	eventually(t, "amy is held, not listed", func() bool { return count(whoOnline(ben, "w1"), "amy") == 0 })
	if c, ev := tokenLogin(t, nodes[1], s.token("mallory", "amy", time.Hour)); ev.Code != codec.CodeNickTaken {
		c.conn.Close()
		t.Fatalf("another account as amy while her nick is held: %+v, want nick_taken", ev)
	}
	var missed []uint64
	for _, body := range []string{"while away 1", "while away 2"} {
		ben.send(&codec.Say{Room: "r", Body: body, Ref: body})
		missed = append(missed, ben.untilAck(body).Seq)
	}
	ben.send(&codec.DM{To: "amy", Body: "dm while away", Ref: "dm"})
	ben.untilAck("dm")

	back := dial(t, nodes[1])
	lobbySince := w.Seq
	back.send(&codec.Login{Token: s.token("amy", "", time.Hour), Resume: w.Resume, Since: &lobbySince, Epoch: w.Epoch, Ref: "in"})
	if ev := back.until("welcome back", func(e codec.Event) bool { return e.Type == codec.TypeWelcome || e.Type == codec.TypeError }); ev.Type != codec.TypeWelcome || ev.Nick != "amy" {
		t.Fatalf("resume through the other node: %+v", ev)
	}
	// What it missed comes in one stream: the lobby's recovered notice,
	// the direct message collected at login, then the room's replay.
	since := seen
	back.send(&codec.Join{Room: "r", Since: &since, Epoch: joined.Epoch, Ref: "rj"})
	var lobby, room, dm bool
	next := 0
	back.until("everything amy missed", func(e codec.Event) bool {
		switch {
		case e.Type == codec.TypeRecover && e.Room == codec.Lobby:
			if !e.Recovered {
				t.Fatalf("lobby resume through the other node: %+v", e)
			}
			lobby = true
		case e.Type == codec.TypeRecover:
			if !e.Recovered || e.Room != "r" || next != len(missed) {
				t.Fatalf("room resume through the other node: %+v after %d of %d missed messages", e, next, len(missed))
			}
			room = true
		case e.Type == codec.TypeMsg && e.Room == "r":
			if next == len(missed) || e.Seq != missed[next] {
				t.Fatalf("replay of r: %+v, want seq %v in order", e, missed)
			}
			next++
		case e.Type == codec.TypeMsg && e.From == "ben":
			if e.Body != "dm while away" {
				t.Fatalf("amy's dm after the resume: %+v", e)
			}
			dm = true
		}
		return lobby && room && dm
	})

	// Node 0 let its hold go when node 1 took the nick over, well within
	// the minute the hold would have lasted.
	eventually(t, "node 0 drops its hold", func() bool { return nodes[0].Stats().HeldNicks == 0 })
	back.send(&codec.Quit{})
	eventually(t, "amy is free again", func() bool { return count(whoOnline(ben, "w2"), "amy") == 0 })
}

// TestClusterAccountNodeDies: an account with sessions on two nodes loses
// one node; its session on the other stays, it stays a member of its room
// for the others, and it leaves only when that session does.
func TestClusterAccountNodeDies(t *testing.T) {
	s := newSigner(t)
	nodes := devicesCluster(t, s, 3, nil)
	amy, _ := welcomed(t, nodes[0], s.token("amy", "", time.Hour))
	amy2, _ := welcomed(t, nodes[1], s.token("amy", "", time.Hour))
	ben, _ := welcomed(t, nodes[2], s.token("ben", "", time.Hour))
	dan, _ := welcomed(t, nodes[0], s.token("dan", "", time.Hour))
	ben.joinRoom("r")
	amy.joinRoom("r")
	amy2.joinRoom("r")
	dan.joinRoom("r") // node 0's last presence: ben sees it after amy's
	ben.until("dan joins", func(e codec.Event) bool { return e.Type == codec.TypeJoined && e.Nick == "dan" })
	amy.send(&codec.Say{Room: "r", Body: "first", Ref: "a1"}) // node 0 owns r
	amy.untilAck("a1")

	natsBroker(nodes[0]).Kill()
	stopNow(t, nodes[0])
	amy2.send(&codec.Say{Room: "r", Body: "still here", Ref: "a2"})
	for {
		ev := amy2.until("the say's answer", func(e codec.Event) bool { return e.Ref == "a2" })
		if ev.Type == codec.TypeAck {
			break
		}
		if ev.Code != codec.CodeUnavailable { // the room's owner died: documented retry
			t.Fatalf("amy's say after her other node died: %+v", ev)
		}
		time.Sleep(50 * time.Millisecond)
		amy2.send(&codec.Say{Room: "r", Body: "still here", Ref: "a2"})
	}
	// Node 0's members leave ben's node in one pass when it is buried:
	// dan's leave says amy's membership there has ended too.
	var said, danLeft bool
	noLeftUntil(t, ben, "amy's say and node 0's burial", "amy", "r", func(e codec.Event) bool {
		said = said || e.Type == codec.TypeMsg && e.Body == "still here"
		danLeft = danLeft || e.Type == codec.TypeLeft && e.Nick == "dan" && e.Reason == codec.ReasonDisconnect
		return said && danLeft
	})
	ben.send(&codec.Who{Room: "r", Ref: "wr"})
	if u := ben.until("who r", func(e codec.Event) bool { return e.Type == codec.TypeUsers && e.Ref == "wr" }); u.Count != 2 || count(u.Nicks, "amy") != 1 {
		t.Fatalf("who r after node 0 died: %+v, want amy and ben", u)
	}
	if count(whoOnline(ben, "w"), "amy") != 1 {
		t.Fatal("amy is not online after one of her nodes died")
	}
	amy2.send(&codec.Quit{})
	if e := ben.until("amy's last session leaves", func(e codec.Event) bool { return e.Type == codec.TypeLeft && e.Nick == "amy" }); e.Room != "r" || e.Reason != codec.ReasonQuit {
		t.Fatalf("ben saw %+v, want amy's quit", e)
	}
}
