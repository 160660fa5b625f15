package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"parley/codec"
	"parley/server/natstest"
)

// TestClusterGovernance: on a real embedded NATS with three nodes, a ban
// given on one node removes the member on another at once and keeps the
// account out through every node; a kick and the room's notices reach
// members on every node; topics, privacy and ownership hold on every
// node; a server ban ends sessions on every node; the audit log is one
// log, in one order, read through any node; the room list counts members
// on every node.
func TestClusterGovernance(t *testing.T) {
	s := newSigner(t)
	nats := natstest.Start(t)
	nodes := startClusterWith(t, nats, 3, func(c *Config) {
		c.AuthKeys, c.AuthAudience, c.RateLimit, c.JoinRate = s.keySpec, "chat", -1, -1
	})
	amy := account(t, nodes[0], s, "amy", nil)
	amy.joinRoom("den") // amy owns den
	bob := account(t, nodes[1], s, "bob", nil)
	bob.joinRoom("den")
	eve := account(t, nodes[2], s, "eve", nil)
	eve.joinRoom("den")
	for _, c := range []*tclient{amy, bob} {
		c.until("eve joined den", func(ev codec.Event) bool { return ev.Type == codec.TypeJoined && ev.Nick == "eve" && ev.Room == "den" })
	}

	// Ownership held on every node: bob, on another node, cannot take
	// over, and the owner's op reaches him there.
	bob.refused(act(codec.TypeKick, "den", "eve", "k0"), "k0", codec.CodeForbidden)
	amy.ok(&codec.Target{Type: codec.TypeOp, Room: "den", Account: "bob", Ref: "o"}, "o")
	bob.until("the op notice", func(ev codec.Event) bool { return ev.Type == codec.TypeMod && ev.Action == codec.TypeOp })
	eventually(t, "bob an operator on his node", func() bool {
		bob.send(&codec.SetTopic{Room: "den", Topic: "from node 1", Ref: "t"})
		return bob.answer("t").Type == codec.TypeAck
	})
	amy.until("bob's topic on node 0", func(ev codec.Event) bool { return ev.Type == codec.TypeTopic && ev.Topic == "from node 1" })
	// who through node 2 marks the owner and the operator on other nodes,
	// once the rules bucket's watch has brought node 2 the op.
	var roles map[string]string
	eventually(t, "who through node 2 marking amy owner and bob operator", func() bool {
		eve.send(&codec.Who{Room: "den", Ref: "w"})
		roles = eve.until("who", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers && ev.Ref == "w" }).Roles
		return roles["amy"] == "owner" && roles["bob"] == "operator"
	})
	if len(roles) != 2 {
		t.Fatalf("who through node 2: roles %v", roles)
	}

	// A kick on node 1 of a member on node 2.
	bob.ok(&codec.Target{Type: codec.TypeKick, Room: "den", Account: "eve", Reason: "cool off", Ref: "k1"}, "k1")
	eve.until("the kick notice", func(ev codec.Event) bool {
		return ev.Type == codec.TypeMod && ev.Action == codec.TypeKick && ev.Reason == "cool off"
	})
	eve.untilLeft("eve", "den", codec.ReasonKick)
	amy.untilLeft("eve", "den", codec.ReasonKick)
	eve.joinRoom("den")

	// A ban on node 0 removes eve on node 2 and keeps her out of every
	// node, from a new session too.
	amy.ok(&codec.Target{Type: codec.TypeBan, Room: "den", Account: "eve", Reason: "spam", Ref: "b"}, "b")
	eve.untilLeft("eve", "den", codec.ReasonBan)
	eve.refused(&codec.Join{Room: "den", Ref: "j1"}, "j1", codec.CodeBanned)
	eve2 := account(t, nodes[1], s, "eve2", jwt.MapClaims{"name": "eve2", "sub": "eve"}) // the same account through another node
	eve2.refused(&codec.Join{Room: "den", Ref: "j2"}, "j2", codec.CodeBanned)
	eve2.conn.Close()

	// Private on node 1: an outsider on node 0 does not see it listed.
	bob.ok(&codec.SetPrivate{Room: "den", Private: true, Ref: "p"}, "p")
	out := account(t, nodes[0], s, "out", nil)
	eventually(t, "den private on node 0", func() bool {
		out.send(&codec.Join{Room: "den", Ref: "jo"})
		return out.answer("jo").Code == codec.CodeInviteOnly
	})
	bob.ok(&codec.SetPrivate{Room: "den", Private: false, Ref: "p2"}, "p2")

	// The room list counts members on every node: amy (node 0) and bob
	// (node 1) are in den.
	eventually(t, "den with 2 members listed on node 2", func() bool {
		eve.send(&codec.ListRooms{Ref: "l"})
		list := eve.until("rooms", func(ev codec.Event) bool { return ev.Type == codec.TypeRooms })
		for _, r := range list.Rooms {
			if r.Room == "den" {
				return r.Count == 2 && r.Topic == "from node 1"
			}
		}
		return false
	})

	// A server ban on node 2 ends eve's session on node 2 and bars her
	// logins on every node.
	root := account(t, nodes[2], s, "root", jwt.MapClaims{"role": "admin"})
	root.ok(&codec.ServerBan{Type: codec.TypeServerBan, Account: "eve", Ref: "sb"}, "sb")
	eve.untilBye(codec.ReasonBanned)
	for i, n := range nodes {
		eventually(t, fmt.Sprintf("eve refused on node %d", i), func() bool {
			c, ev := tokenLogin(t, n, s.tokenWith("eve", nil))
			c.conn.Close()
			return ev.Code == codec.CodeBanned
		})
	}

	// A timed ban given on node 0 ends on time on node 1.
	amy.ok(&codec.Target{Type: codec.TypeBan, Room: "den", Account: "zed", Duration: i64(1), Ref: "tb"}, "tb")
	zed := account(t, nodes[1], s, "zed", nil)
	var until int64
	eventually(t, "zed banned on node 1", func() bool {
		zed.send(&codec.Join{Room: "den", Ref: "zj"})
		return zed.answer("zj").Code == codec.CodeBanned
	})
	amy.send(&codec.ReadAudit{Room: "den", Ref: "ta"})
	for _, e := range amy.until("audit", func(ev codec.Event) bool { return ev.Type == codec.TypeAudit && ev.Ref == "ta" }).Entries {
		if e.Action == codec.TypeBan && e.Target == "zed" {
			until = e.Until
		}
	}
	time.Sleep(time.Until(time.UnixMilli(until)) + 50*time.Millisecond) // the audit entry says when it ends
	zed.ok(&codec.Join{Room: "den", Ref: "zj2"}, "zj2")

	// One audit log, in one order, through any node; each node swept the
	// timed ban's end, and the log kept it once.
	want := "[op topic kick ban private public server_ban ban ban_end]"
	for i, c := range []*tclient{amy, bob, root} {
		eventually(t, fmt.Sprintf("the whole audit log on node %d", i), func() bool {
			ref := fmt.Sprint("a", i)
			c.send(&codec.ReadAudit{Room: "den", Ref: ref})
			if i == 2 {
				c.send(&codec.ReadAudit{Ref: ref}) // an admin reads every room's
			}
			ev := c.until("audit", func(ev codec.Event) bool { return ev.Type == codec.TypeAudit && ev.Ref == ref })
			var got []string
			var last uint64
			for _, e := range ev.Entries {
				if e.Seq <= last {
					t.Fatalf("audit seqs out of order on node %d: %+v", i, ev.Entries)
				}
				last = e.Seq
				got = append(got, e.Action)
			}
			w := want
			if i < 2 {
				w = "[op topic kick ban private public ban ban_end]"
			}
			if fmt.Sprint(got) != w {
				t.Logf("node %d: audit %v, want %v", i, got, w)
				return false
			}
			return true
		})
	}
}
