package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var addr string
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running server's state from its admin endpoint",
		Long: `Read a running server's /metrics and /readyz (parley serve --admin-addr) and
print one screen: ready or not, sessions and users online, connections by
transport, rooms, messages and deliveries per second (from two scrapes
--interval apart), closes by reason, refused connections, and the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := printStatus(cmd.OutOrStdout(), addr, every); err != nil {
				return exitError{code: 1, msg: "status: " + err.Error()}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "admin-addr", "127.0.0.1:9090", "the server's --admin-addr")
	cmd.Flags().DurationVar(&every, "interval", time.Second, "time between the two scrapes the rates come from")
	return cmd
}

// scrapeMetrics reads addr's /metrics into series by name and labels.
func scrapeMetrics(client *http.Client, addr string) (map[string]map[string]float64, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]float64{}
	for name, f := range fams {
		out[name] = map[string]float64{}
		for _, m := range f.GetMetric() {
			out[name][labelValue(m)] = value(m)
		}
	}
	return out, nil
}

// labelValue is a series' first label's value ("" without labels): the
// series the summary shows have one label at most.
func labelValue(m *dto.Metric) string {
	if l := m.GetLabel(); len(l) > 0 {
		return l[0].GetValue()
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

func printStatus(w io.Writer, addr string, every time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	first, err := scrapeMetrics(client, addr)
	if err != nil {
		return err
	}
	time.Sleep(every)
	now, err := scrapeMetrics(client, addr)
	if err != nil {
		return err
	}
	ready := "ready"
	if resp, err := client.Get("http://" + addr + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		ready = "NOT READY"
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			ready += ": " + strings.TrimSpace(string(b))
		}
	}
	one := func(name string) float64 { return now[name][""] }
	rate := func(name string) float64 { return (now[name][""] - first[name][""]) / every.Seconds() }
	fmt.Fprintf(w, "parley at %s: %s\n", addr, ready)
	fmt.Fprintf(w, "online     %.0f sessions, %.0f users, %.0f rooms\n", one("parley_sessions_online"), one("parley_users_online"), one("parley_rooms"))
	fmt.Fprintf(w, "conns      %s\n", series(now["parley_connections"], "%.0f"))
	fmt.Fprintf(w, "per second %.1f room messages, %.1f direct, %.0f deliveries, %.0f frames in\n",
		rate("parley_room_messages_total"), rate("parley_direct_messages_total"), rate("parley_deliveries_total"), rate("parley_frames_received_total"))
	fmt.Fprintf(w, "closes     %s\n", series(now["parley_closes_total"], "%.0f"))
	fmt.Fprintf(w, "refused    %s\n", series(now["parley_connections_refused_total"], "%.0f"))
	fmt.Fprintf(w, "queued     %.1f MiB unsent, %.0f gaps, %.0f bad logins\n", one("parley_outbound_queued_bytes")/(1<<20), one("parley_gaps_total"), one("parley_bad_logins_total"))
	if nodes := one("parley_cluster_nodes"); nodes > 0 {
		bus := "connected"
		if one("parley_cluster_bus_connected") == 0 {
			bus = "DOWN"
		}
		fmt.Fprintf(w, "cluster    %.0f nodes, bus %s, %.1f forwarded says/s\n", nodes, bus, rate("parley_cluster_forwarded_says_total"))
	} else {
		fmt.Fprintln(w, "cluster    single node")
	}
	return nil
}

// series prints labelled values sorted by label, zeros left out.
func series(m map[string]float64, format string) string {
	var keys []string
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "none"
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + fmt.Sprintf(format, m[k])
	}
	return strings.Join(parts, ", ")
}
