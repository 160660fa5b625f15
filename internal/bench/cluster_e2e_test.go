package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"parley/server"
	"parley/server/natstest"
	"parley/server/servertest"
)

// TestClusterLoadLosesNothing is the cluster benchmark made small, as a
// property check rather than a measurement: 3 nodes on a real NATS, 3,000
// users each in a group room of 10 spread over the nodes, says, DMs and
// churn; every member's seq stream has each seq once and nothing missing
// up to the last seq acked in its room. No timing is asserted.
func TestClusterLoadLosesNothing(t *testing.T) {
	nats := natstest.Start(t)
	cluster := fmt.Sprintf("b%d", time.Now().UnixNano())
	var addrs []string
	for i := range 3 {
		srv := servertest.Start(t, server.Config{NATS: nats.URL(), NodeID: fmt.Sprintf("n%d", i), ClusterName: cluster,
			RateLimit: -1, ConnRatePerIP: -1})
		addrs = append(addrs, srv.Addr().String())
	}
	spec := ClusterLoadSpec{Addrs: addrs, Users: 3000, From: 0, To: 3000, Group: 10, Rate: 150, DMShare: 0.2, Churn: 120,
		Duration: 3 * time.Second, Drain: 3 * time.Second}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := RunClusterLoad(ctx, spec, strings.NewReader("start\n"), &out); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(&out)
	var ready struct{ Users, Fails int }
	var res ClusterLoadResult
	if err := readJSONLine(r, &ready); err != nil {
		t.Fatal(err)
	}
	if err := readJSONLine(r, &res); err != nil {
		t.Fatal(err)
	}
	row := ClusterRow{SayFails: map[string]int64{}, DMFails: map[string]int64{}, Same: newHist(), Cross: newHist(), DM: newHist()}
	got := mergeClusterResults(&row, []ClusterLoadResult{res})
	t.Logf("%d users, %d says and %d DMs acked (refused %v %v), %d churned, %d deliveries", ready.Users, row.Says, row.DMs, row.SayFails, row.DMFails, row.Churned, got)
	switch {
	case ready.Fails != 0 || ready.Users != 3000:
		t.Fatalf("%d users logged in and joined, %d failed; want all 3000", ready.Users, ready.Fails)
	case row.Members != 3000:
		t.Fatalf("%d member streams, want 3000", row.Members)
	case row.Missing != 0 || row.Dups != 0 || row.Behind != 0:
		t.Fatalf("streams: %d seqs missing, %d duplicated, %d members behind their room's last acked seq", row.Missing, row.Dups, row.Behind)
	case row.Says == 0 || row.DMs == 0 || res.MsgsGot == 0 || res.DMsGot == 0:
		t.Fatalf("no traffic got through: %+v", row)
	}
	// Every acked say reached its other members: each is in the streams.
	if res.MsgsGot < row.Says {
		t.Fatalf("%d room messages delivered for %d acked says in rooms of 10", res.MsgsGot, row.Says)
	}
}
