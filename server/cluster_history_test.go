package server

import (
	"fmt"
	"testing"

	"parley/codec"
	"parley/server/natstest"
)

// TestClusterHistoryFromTheLog: a node that never had a member in a room
// serves its history (from the room's log), and a member whose node died
// resumes on another node with nothing missing and nothing twice.
func TestClusterHistoryFromTheLog(t *testing.T) {
	nats := natstest.Start(t)
	nodes := startCluster(t, nats, 3)
	amy := loggedIn(t, nodes[0], "amy")
	amy.send(&codec.Join{Room: "r", Ref: "j"})
	epoch := amy.untilAck("j").Epoch
	if epoch == "" {
		t.Fatal("join ack without an epoch")
	}
	bob := loggedIn(t, nodes[1], "bob")
	bob.joinRoom("r")
	for i := range 30 {
		amy.send(&codec.Say{Room: "r", Body: fmt.Sprint(i + 1), Ref: "s"})
		amy.untilAck("s")
	}
	var last uint64
	for last < 20 {
		ev := bob.until("bob's messages", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == "r" })
		last = ev.Seq
	}

	// A node that never had a member in r: its history comes from the log.
	cat := loggedIn(t, nodes[2], "cat")
	cat.send(&codec.Join{Room: "r", Ref: "j"})
	if ack := cat.untilAck("j"); ack.Epoch != epoch || ack.Seq != 30 {
		t.Fatalf("cat's join ack %+v, want epoch %q seq 30", ack, epoch)
	}
	page := cat.history(&codec.History{Room: "r", Before: u64(26), Limit: intp(10)})
	if fmt.Sprint(seqsOf(page.Msgs)) != fmt.Sprint(span(16, 25)) || !page.More || page.Epoch != epoch {
		t.Fatalf("cat's page %v more=%v epoch %q; want 16-25, more, %q", seqsOf(page.Msgs), page.More, page.Epoch, epoch)
	}
	if page.Msgs[0].Body != "16" || page.Msgs[0].From != "amy" {
		t.Fatalf("cat's first message %+v", page.Msgs[0])
	}

	// Bob's node dies while bob had seen up to seq 20; bob resumes on the
	// node of cat, where r's history starts at cat's join.
	natsBroker(nodes[1]).Kill()
	stopNow(t, nodes[1])
	var bob2 *tclient
	eventually(t, "bob logs in elsewhere", func() bool {
		bob2 = dial(t, nodes[2])
		bob2.send(&codec.Login{Nick: "bob"})
		return bob2.until("login answer", func(ev codec.Event) bool {
			return ev.Type == codec.TypeWelcome || ev.Type == codec.TypeError
		}).Type == codec.TypeWelcome
	})
	bob2.send(&codec.Join{Room: "r", Since: u64(20), Epoch: epoch, Ref: "j"})
	bob2.untilAck("j")
	var got []uint64
	for {
		ev := bob2.until("the replay", func(ev codec.Event) bool {
			return ev.Type == codec.TypeMsg && ev.Room == "r" || ev.Type == codec.TypeRecover
		})
		if ev.Type == codec.TypeRecover {
			if !ev.Recovered {
				t.Fatal("bob's resume was not recovered")
			}
			break
		}
		got = append(got, ev.Seq)
	}
	if fmt.Sprint(got) != fmt.Sprint(span(21, 30)) {
		t.Fatalf("bob's replay %v, want 21-30", got)
	}
	amy.send(&codec.Say{Room: "r", Body: "live", Ref: "s"})
	seq := amy.untilAck("s").Seq
	if ev := bob2.until("live", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == "r" }); ev.Seq != seq || seq != 31 {
		t.Fatalf("after the replay bob got %+v, want seq 31", ev)
	}
}
