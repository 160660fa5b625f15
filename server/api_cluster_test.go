package server

import (
	"errors"
	"testing"

	"parley/api"
	"parley/codec"
	"parley/server/natstest"
)

// clusterAPI retries an API call the cluster answered unavailable (a
// claim or a follow past its timeout on a loaded machine: the API's
// "retry later"), and returns its last error.
func clusterAPI(t *testing.T, call func() error) error {
	t.Helper()
	var err error
	eventually(t, "an API call the cluster answers", func() bool {
		err = call()
		var e *api.Error
		return !errors.As(err, &e) || e.Code != string(codec.CodeUnavailable)
	})
	return err
}

// TestAPIThroughAnyNode: through node 0, the API publishes to a room
// whose members are all on node 1 (with the room's next seq), reads its
// history and members, finds an account on node 1, sends it a DM, and
// disconnects its sessions there.
func TestAPIThroughAnyNode(t *testing.T) {
	s := newSigner(t)
	keys := newAPIKeys(t)
	nats := natstest.Start(t)
	nodes := startClusterWith(t, nats, 2, func(c *Config) {
		c.AuthKeys, c.AuthAudience = s.keySpec, "chat"
		keys.withAPI(c)
	})
	amy := account(t, nodes[1], s, "amy", nil)
	amy2 := account(t, nodes[1], s, "amy", nil)
	amy.ok(&codec.Join{Room: "far", Ref: "j"}, "j")
	amy.ok(&codec.Say{Room: "far", Body: "one", Ref: "s"}, "s")
	app := apiClient(nodes[0], keys.write)
	ctx := t.Context()
	var pub api.Published
	if err := clusterAPI(t, func() (err error) {
		pub, err = app.Publish(ctx, api.Publish{Room: "far", From: "bot", Body: "two"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if pub.Seq != 2 {
		t.Fatalf("publish through node 0: %+v, want seq 2", pub)
	}
	if ev := amy.until("the message from node 0", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == "far" && ev.Seq == 2 }); ev.Body != "two" || !ev.API {
		t.Fatalf("amy got %+v", ev)
	}
	var page api.Page
	if err := clusterAPI(t, func() (err error) { page, err = app.History(ctx, api.History{Room: "far"}); return err }); err != nil || len(page.Msgs) != 2 {
		t.Fatalf("history through node 0: %d messages, %v", len(page.Msgs), err)
	}
	var members api.Members
	if err := clusterAPI(t, func() (err error) { members, err = app.RoomMembers(ctx, api.RoomMembers{Room: "far"}); return err }); err != nil ||
		len(members.Members) != 1 || members.Members[0].Nick != "amy" || members.Members[0].Node != "n1" {
		t.Fatalf("members through node 0: %+v %v", members, err)
	}
	p, err := app.Presence(ctx, "amy")
	if err != nil || !p.Online || p.Node != "n1" {
		t.Fatalf("presence through node 0: %+v %v", p, err)
	}
	var sent api.DMSent
	if err := clusterAPI(t, func() (err error) {
		sent, err = app.DM(ctx, api.DM{Account: "amy", From: "support", Body: "hi"})
		return err
	}); err != nil || !sent.Delivered {
		t.Fatalf("dm through node 0: %+v %v", sent, err)
	}
	for _, c := range []*tclient{amy, amy2} {
		if ev := c.until("the dm", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.To != "" }); ev.From != "support" {
			t.Fatalf("amy got %+v", ev)
		}
	}
	gone, err := app.Disconnect(ctx, api.Disconnect{Account: "amy", Message: "bye"})
	if err != nil || gone.Sessions != 0 {
		t.Fatalf("disconnect through node 0: %+v %v (its sessions are on node 1)", gone, err)
	}
	for _, c := range []*tclient{amy, amy2} {
		if bye := c.until("bye", func(ev codec.Event) bool { return ev.Type == codec.TypeBye }); bye.Reason != codec.ReasonDisconnected {
			t.Fatalf("amy's bye: %+v", bye)
		}
	}
}
