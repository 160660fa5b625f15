package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"parley/codec"
)

// scrape reads srv's /metrics into series: "name{label=value,...}" →
// value (histograms: their _count), and returns the families too.
func scrape(t *testing.T, srv *Server) (map[string]float64, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + srv.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out, fams
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminMetrics scrapes /metrics before and after a scripted session
// and checks that each counter moved by exactly what was done.
func TestAdminMetrics(t *testing.T) {
	srv := startServer(t, Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", RateLimit: 200, RateBurst: 200,
		FloodGrace: 200 * time.Millisecond, MaxOutbound: 256 << 10, SocketSendBuffer: 16 << 10, WriteDeadline: 300 * time.Millisecond, DMRate: -1})
	before, _ := scrape(t, srv)
	amy, ben := loggedIn(t, srv, "amy"), loggedIn(t, srv, "ben")
	amy.until("ben joined", func(e codec.Event) bool { return e.Type == codec.TypeJoined })
	for i := range 3 {
		amy.send(&codec.Say{Body: fmt.Sprint("hello ", i), Ref: "s"})
		amy.untilAck("s")
		ben.until("msg", func(e codec.Event) bool { return e.Type == codec.TypeMsg })
	}
	ben.send(&codec.DM{To: "amy", Body: "psst", Ref: "d"})
	ben.untilAck("d")
	amy.sendRaw(rawFrame(`{"type":"dance"}`))
	amy.until("unknown_type", func(e codec.Event) bool { return e.Type == codec.TypeError && e.Code == codec.CodeUnknownType })
	after, _ := scrape(t, srv)
	delta := func(key string) float64 { return after[key] - before[key] }
	for key, want := range map[string]float64{
		"parley_sessions_online":                            2,
		"parley_connections{transport=tcp}":                 2,
		"parley_connections_accepted_total{transport=tcp}":  2,
		"parley_room_messages_total":                        3,
		"parley_deliveries_total":                           3, // each to ben only
		"parley_direct_messages_total":                      1,
		"parley_errors_total{code=unknown_type}":            1,
		"parley_broadcast_duration_seconds":                 3,             // checked apart: one observation per message and loop with members
		"parley_frames_received_total":                      2 + 3 + 1 + 1, // 2 logins, 3 says, a dm, the bad frame
		"parley_history_kept_messages_total":                3,
		"parley_connections_refused_total{limit=max-conns}": 0,
	} {
		got := delta(key)
		if key == "parley_broadcast_duration_seconds" {
			if got < 3 || got > 6 { // one per loop holding a member: 1 or 2 loops
				t.Errorf("%s moved by %v, want 3 to 6", key, got)
			}
			continue
		}
		if got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}
	if delta("parley_sent_bytes_total") <= 0 || delta("parley_received_bytes_total") <= 0 {
		t.Error("the byte counters did not move")
	}

	// A flood, and a slow consumer.
	flooder := loggedIn(t, srv, "flooder")
	batch := bytesRepeat(codec.MustEncode(&codec.Ping{}), 50)
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, err := flooder.conn.Write(batch); err != nil {
			break // closed for the flood
		}
		select {
		case <-flooder.done:
		default:
			continue
		}
		break
	}
	flooder.untilBye(codec.ReasonFlood)
	slow := dialWith(t, srv, func(c *net.TCPConn) { _ = c.SetReadBuffer(16 << 10) })
	slow.conn.Write(codec.MustEncode(&codec.Login{Nick: "slow"}))
	eventually(t, "slow logged in", func() bool { return srv.Stats().Online == 3 })
	slow.conn.(*net.TCPConn).CloseRead() // it reads nothing more
	big := strings.Repeat("x", 3000)
	said := 0
	for srv.Stats().Closes[codec.ReasonSlowConsumer] == 0 {
		if said > 5000 {
			t.Fatal("the slow reader was never closed")
		}
		amy.send(&codec.Say{Body: big, Ref: "b"})
		amy.untilAck("b")
		said++
		time.Sleep(6 * time.Millisecond) // under amy's own flood limit
	}
	final, fams := scrape(t, srv)
	if got := final["parley_closes_total{reason=flood}"] - before["parley_closes_total{reason=flood}"]; got != 1 {
		t.Errorf("closes by flood moved by %v, want 1", got)
	}
	if got := final["parley_closes_total{reason=slow_consumer}"]; got != 1 {
		t.Errorf("closes by slow_consumer: %v, want 1", got)
	}
	if got := final["parley_room_messages_total"] - before["parley_room_messages_total"]; got != float64(3+said) {
		t.Errorf("room messages moved by %v, want %d", got, 3+said)
	}
	if final["parley_flood_dropped_frames_total"] <= 0 || final["parley_errors_total{code=rate_limited}"] <= 0 {
		t.Error("the flood left no trace in the counters")
	}
	for name, f := range fams {
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
	}
	problems, err := testutil.CollectAndLint(newCollector(srv))
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	checkDashboard(t, fams)
}

func bytesRepeat(b []byte, n int) []byte {
	return []byte(strings.Repeat(string(b), n))
}

// checkDashboard loads the Grafana dashboard in docs and checks that every
// metric its queries name is one the server exports.
func checkDashboard(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	data, err := os.ReadFile("../docs/grafana/parley.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	name := regexp.MustCompile(`\b(parley|go|process)_[a-z0-9_]+`)
	exprs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs++
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if fams[m] == nil && fams[base] == nil {
					t.Errorf("panel %q queries %s, which the server does not export", p.Title, m)
				}
			}
		}
	}
	if exprs < 10 {
		t.Errorf("the dashboard has %d queries", exprs)
	}
}

// TestAdminReadyz: /readyz is 200 while serving and turns 503 when a
// shutdown begins, before any session gets bye shutdown.
func TestAdminReadyz(t *testing.T) {
	srv := startServer(t, Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", DrainDelay: 300 * time.Millisecond})
	c := loggedIn(t, srv, "amy")
	url := "http://" + srv.AdminAddr().String() + "/readyz"
	if code, _ := get(t, url); code != http.StatusOK {
		t.Fatalf("readyz %d before the shutdown", code)
	}
	go func() { _ = srv.Shutdown(context.Background()) }()
	eventually(t, "readyz 503", func() bool { code, _ := get(t, url); return code == http.StatusServiceUnavailable })
	select {
	case ev := <-c.events:
		if ev.Type == codec.TypeBye {
			t.Fatal("bye shutdown came before readyz turned 503")
		}
	default:
	}
	c.untilBye(codec.ReasonShutdown)
}

// TestAdminHealthz: /healthz fails while an event loop is stuck in a
// callback, and recovers when it is free.
func TestAdminHealthz(t *testing.T) {
	release := make(chan struct{})
	srv := startServer(t, Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Loops: 1,
		beforeHandle: func(nick string, req *codec.Request) {
			if nick == "stuck" && req.Type == codec.TypeSay {
				<-release // blocks the loop
			}
		}})
	url := "http://" + srv.AdminAddr().String() + "/healthz"
	if code, body := get(t, url); code != http.StatusOK {
		t.Fatalf("healthz %d %q before", code, body)
	}
	c := loggedIn(t, srv, "stuck")
	c.send(&codec.Say{Body: "block"})
	eventually(t, "healthz 503", func() bool { code, _ := get(t, url); return code == http.StatusServiceUnavailable })
	close(release)
	eventually(t, "healthz 200 again", func() bool { code, _ := get(t, url); return code == http.StatusOK })
}

// TestAdminOffAndChatPortIsNotHTTP: without --admin-addr nothing serves
// the admin endpoint, and the chat port answers HTTP with the protocol's
// framing error, never with HTTP.
func TestAdminOffAndChatPortIsNotHTTP(t *testing.T) {
	srv := startServer(t, Config{Addr: "127.0.0.1:0"})
	if srv.AdminAddr() != nil {
		t.Fatal("an admin endpoint without --admin-addr")
	}
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	r := bufio.NewReader(conn)
	head, err := r.Peek(5)
	if err != nil {
		t.Fatal(err)
	}
	if string(head) == "HTTP/" {
		t.Fatal("the chat port answered HTTP")
	}
	body, err := codec.NewReader(r, 0).Next()
	if err != nil || !strings.Contains(string(body), string(codec.CodeFrameTooLarge)) {
		t.Fatalf("first frame %q, %v; want frame_too_large", body, err)
	}
}
