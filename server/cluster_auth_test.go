package server

import (
	"testing"
	"time"

	"parley/codec"
	"parley/server/natstest"
)

// TestClusterAccounts: in a cluster, a DM between accounts on two nodes
// is kept in each account's direct messages (the recipient's on its node,
// the sender's on its own). TestClusterAccountOnTwoNodes has an account's
// sessions on several nodes.
func TestClusterAccounts(t *testing.T) {
	s := newSigner(t)
	nats := natstest.Start(t)
	nodes := startClusterWith(t, nats, 2, func(c *Config) { c.AuthKeys, c.AuthAudience = s.keySpec, "chat" })
	amy, w := clusterLogin(t, nodes[0], s.token("amy", "", time.Hour))
	if w.Type != codec.TypeWelcome {
		t.Fatalf("login: %+v", w)
	}
	amy2, _ := tokenLogin(t, nodes[0], s.token("amy", "", time.Hour))
	ben, _ := clusterLogin(t, nodes[1], s.token("ben", "", time.Hour))
	ben.send(&codec.DM{To: "amy", Body: "across", Ref: "d"})
	if ack := ben.untilAck("d"); ack.Seq != 1 {
		t.Fatalf("ben's ack %+v: his sent DM is kept as seq 1", ack)
	}
	for _, c := range []*tclient{amy, amy2} {
		if m := c.until("dm", func(e codec.Event) bool { return e.Type == codec.TypeMsg }); m.Seq != 1 || m.From != "ben" {
			t.Fatalf("amy got %+v", m)
		}
	}
	amy.send(&codec.History{DM: true, Ref: "h"})
	if page := amy.until("history", func(e codec.Event) bool { return e.Type == codec.TypeHistory }); len(page.Msgs) != 1 || page.Msgs[0].Body != "across" {
		t.Fatalf("amy's DM history: %+v", page)
	}
}

// clusterLogin logs in with token, again while the answer is unavailable
// (the nick's claim in the cluster did not answer within its timeout, as
// on a loaded machine: the protocol's "retry later"), and returns the
// client and the last answer.
func clusterLogin(t *testing.T, srv *Server, token string) (*tclient, codec.Event) {
	t.Helper()
	var c *tclient
	var ev codec.Event
	eventually(t, "a login the cluster answers", func() bool {
		c, ev = tokenLogin(t, srv, token)
		return ev.Code != codec.CodeUnavailable
	})
	return c, ev
}
