package bench

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestClusterLoadLosesNothing is the cluster benchmark made small, as a
// property check rather than a measurement: a NATS server, 3 nodes and 2
// load processes (the parley binary, built here without the race
// detector, each a process of its own as in make bench-cluster), 1,500
// users each in a group room of 10 spread over the nodes, says, DMs and
// churn; every member's seq stream has each seq once and nothing missing
// up to the last seq acked in its room. No timing is asserted. (With
// 3,000 users its burst of logins, beside the server package's cluster
// tests in the same make test, starved their 100 ms heartbeats.)
func TestClusterLoadLosesNothing(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "parley")
	if out, err := exec.Command("go", "build", "-o", exe, "parley/cmd/parley").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rows, err := RunCluster(ctx, ClusterConfig{Exe: exe, Nodes: []int{3}, Users: 1500, Loaders: 2, Rate: 100, Churn: 60,
		Idle: time.Second, Duration: 3 * time.Second}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	switch {
	case r.LoginFails != 0 || r.Members != 1500:
		t.Fatalf("%d member streams, %d logins failed; want all 1500", r.Members, r.LoginFails)
	case r.Missing != 0 || r.Dups != 0 || r.Behind != 0:
		t.Fatalf("streams: %d seqs missing, %d duplicated, %d members behind their room's last acked seq", r.Missing, r.Dups, r.Behind)
	case r.Says == 0 || r.DMs == 0 || r.Deliveries == 0:
		t.Fatalf("no traffic got through: %d says, %d DMs acked, %.0f deliveries/s", r.Says, r.DMs, r.Deliveries)
	}
}
