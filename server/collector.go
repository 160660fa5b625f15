package server

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"parley/codec"
	"parley/server/metric"
	"parley/server/moderation"
	"parley/server/transport"
)

// collector reads the hub's and the transports' counters at scrape time:
// the fan-out path counts with atomics and knows nothing of Prometheus.
type collector struct {
	s     *Server
	descs map[string]*prometheus.Desc
}

// metricHelp is every metric the collector exports, with its help text
// and labels. No label takes a value a user chose (no nick, no room).
var metricHelp = []struct {
	name, help string
	labels     []string
}{
	{"parley_build_info", "Parley's version and the Go that built it; always 1.", []string{"version", "go_version"}},
	{"parley_connections", "Open connections, by transport.", []string{"transport"}},
	{"parley_connections_accepted_total", "Connections accepted and handed to the hub, by transport.", []string{"transport"}},
	{"parley_transport_writes_total", "Writes of the hub's frames to connections, by transport: one per connection and wake, however many frames.", []string{"transport"}},
	{"parley_connections_refused_total", "Connections refused, by the limit they were over.", []string{"limit"}},
	{"parley_sessions_online", "Logged-in sessions on this node.", nil},
	{"parley_users_online", "Nicks online on this node (an account with several sessions counts once).", nil},
	{"parley_rooms", "Rooms this node keeps, the lobby included.", nil},
	{"parley_closes_total", "Connections closed, by reason (disconnect when the peer dropped).", []string{"reason"}},
	{"parley_frames_received_total", "Protocol frames received from clients.", nil},
	{"parley_received_bytes_total", "Bytes of the protocol frames received, length prefixes included.", nil},
	{"parley_frames_sent_total", "Frames handed to connections (a batch of a blocked connection's frames counts once).", nil},
	{"parley_sent_bytes_total", "Bytes handed to connections.", nil},
	{"parley_room_messages_total", "Room messages sequenced on this node.", nil},
	{"parley_direct_messages_total", "Direct messages delivered to sessions on this node.", nil},
	{"parley_offline_direct_messages_total", "Direct messages left on this node for accounts with no session online.", nil},
	{"parley_deliveries_total", "Room messages queued for a member on this node.", nil},
	{"parley_errors_total", "Error frames sent, by code.", []string{"code"}},
	{"parley_moderation_actions_total", "Moderation actions taken (and timed bans and mutes that ended), by action.", []string{"action"}},
	{"parley_audit_entries", "Entries the audit log keeps.", nil},
	{"parley_broadcast_duration_seconds", "Time from a room message's hand-off to the event loops to its queueing for the members of one loop.", nil},
	{"parley_flood_dropped_frames_total", "Frames dropped by flood control.", nil},
	{"parley_room_messages_skipped_total", "Room messages not queued for a member that was behind its room budget (it gets a gap).", nil},
	{"parley_gaps_total", "Gap notices sent.", nil},
	{"parley_outbound_queued_bytes", "Memory the connections' unsent bytes hold, as the slow-consumer limits count it.", nil},
	{"parley_held_nicks", "Nicks held for the resume token of a session that dropped.", nil},
	{"parley_bad_logins_total", "Logins and refreshes refused for their token.", nil},
	{"parley_history_kept_messages_total", "Messages kept in a room's or an account's history.", nil},
	{"parley_resumes_total", "Resumes of a room, by whether every missed message was sent.", []string{"recovered"}},
	{"parley_history_bytes", "Memory every room's history and account's direct messages hold, as --history-bytes counts it.", nil},
	{"parley_history_evicted_messages_total", "Messages pushed out of a history to keep --history-bytes, the oldest of all first.", nil},
	{"parley_replays_refused_total", "Resumes not replayed because the session's flood budget could not pay for the replay's bytes (recovered false).", nil},
	{"parley_replays_queued_total", "Resumes that waited for the server's replay budget before replaying.", nil},
	{"parley_cluster_nodes", "Nodes of the cluster alive as this node sees them, itself included (0 on a single node).", nil},
	{"parley_cluster_bus_connected", "1 while this node is connected to NATS, else 0 (0 on a single node).", nil},
	{"parley_cluster_forwarded_says_total", "Says sent to their room's owner on another node and answered.", nil},
	{"parley_cluster_forwarded_say_duration_seconds", "Time from forwarding a say to its answer.", nil},
	{"parley_cluster_bus_dropped_total", "Bus messages dropped because the queue to NATS was full.", nil},
	{"parley_cluster_fenced_total", "Room messages the log refused because another node had claimed the room.", nil},
}

func newCollector(s *Server) *collector {
	c := &collector{s: s, descs: map[string]*prometheus.Desc{}}
	for _, m := range metricHelp {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, m.labels, nil)
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads every counter once.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.hub.Metrics()
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, labels...)
	}
	counter := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, v, labels...)
	}
	histogram := func(name string, h metric.Snapshot) {
		ch <- prometheus.MustNewConstHistogram(c.descs[name], h.Count, h.Sum, h.Buckets)
	}
	gauge("parley_build_info", 1, Version(), runtime.Version())
	counts := c.s.layer.Counts()
	for i, t := range transport.Names {
		gauge("parley_connections", float64(counts.Open(i)), t)
		counter("parley_connections_accepted_total", float64(counts.Accepted(i)), t)
		counter("parley_transport_writes_total", float64(counts.Writes(i)), t)
	}
	for _, limit := range transport.RefusalLimits {
		if _, ok := m.RefusedBy[limit]; !ok {
			m.RefusedBy[limit] = 0 // every series exists from the start
		}
	}
	for limit, n := range m.RefusedBy {
		counter("parley_connections_refused_total", float64(n), limit)
	}
	gauge("parley_sessions_online", float64(m.Online))
	gauge("parley_users_online", float64(m.Nicks))
	gauge("parley_rooms", float64(m.Rooms))
	for reason, n := range m.Closes {
		counter("parley_closes_total", float64(n), string(reason))
	}
	counter("parley_frames_received_total", float64(m.FramesIn))
	counter("parley_received_bytes_total", float64(m.BytesIn))
	counter("parley_frames_sent_total", float64(m.FramesOut))
	counter("parley_sent_bytes_total", float64(m.BytesOut))
	counter("parley_room_messages_total", float64(m.RoomMessages))
	counter("parley_direct_messages_total", float64(m.DirectMessages))
	counter("parley_offline_direct_messages_total", float64(m.OfflineDMs))
	counter("parley_deliveries_total", float64(m.Deliveries))
	for code, n := range m.Errors {
		counter("parley_errors_total", float64(n), string(code))
	}
	for _, action := range moderationActions {
		counter("parley_moderation_actions_total", float64(m.Moderation[action]), action) // every series exists from the start
	}
	gauge("parley_audit_entries", float64(m.AuditEntries))
	histogram("parley_broadcast_duration_seconds", m.Broadcast)
	counter("parley_flood_dropped_frames_total", float64(m.FloodDrops))
	counter("parley_room_messages_skipped_total", float64(m.Skipped))
	counter("parley_gaps_total", float64(m.Gaps))
	gauge("parley_outbound_queued_bytes", float64(m.OutboundBytes))
	gauge("parley_held_nicks", float64(m.HeldNicks))
	counter("parley_bad_logins_total", float64(m.BadLogins))
	counter("parley_history_kept_messages_total", float64(m.HistoryKept))
	counter("parley_resumes_total", float64(m.Resumed), "true")
	counter("parley_resumes_total", float64(m.ResumedLost), "false")
	gauge("parley_history_bytes", float64(m.HistoryBytes))
	counter("parley_history_evicted_messages_total", float64(m.HistoryEvicted))
	counter("parley_replays_refused_total", float64(m.ReplaysShed))
	counter("parley_replays_queued_total", float64(m.ReplaysQueued))
	c.collectCluster(m.Cluster, gauge, counter, histogram)
}

func (c *collector) collectCluster(st *ClusterStats, gauge, counter func(string, float64, ...string), histogram func(string, metric.Snapshot)) {
	if st == nil {
		gauge("parley_cluster_nodes", 0)
		gauge("parley_cluster_bus_connected", 0)
		counter("parley_cluster_forwarded_says_total", 0)
		histogram("parley_cluster_forwarded_say_duration_seconds", new(metric.Histogram).Snapshot())
		counter("parley_cluster_bus_dropped_total", 0)
		counter("parley_cluster_fenced_total", 0)
		return
	}
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	gauge("parley_cluster_nodes", float64(st.Peers+1))
	gauge("parley_cluster_bus_connected", connected)
	counter("parley_cluster_forwarded_says_total", float64(st.ForwardedSays))
	histogram("parley_cluster_forwarded_say_duration_seconds", st.ForwardedSayTime)
	counter("parley_cluster_bus_dropped_total", float64(st.Dropped))
	counter("parley_cluster_fenced_total", float64(st.Fenced))
}

// Version is this build's version: the module's, when built from a
// tagged module; else the commit the binary was built from (with
// "-dirty" for uncommitted changes), which go build records in a git
// checkout; else "(devel)".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		return "(devel)"
	}
	rev = rev[:min(12, len(rev))]
	if settings["vcs.modified"] == "true" {
		rev += "-dirty"
	}
	if t := settings["vcs.time"]; t != "" {
		rev += " (" + t + ")"
	}
	return rev
}

// moderationActions are the actions parley_moderation_actions_total
// counts: every request of docs/PROTOCOL.md "Rooms people run", and the
// ends of timed bans and mutes.
var moderationActions = func() []string {
	out := append([]string{}, codec.TargetTypes...)
	out = append(out, codec.TypeServerBan, codec.TypeServerUnban, codec.TypeRevoke, codec.TypeLockdown)
	for _, a := range []moderation.Action{moderation.ActTopic, moderation.ActPrivate, moderation.ActPublic,
		moderation.ActBanEnd, moderation.ActMuteEnd, moderation.ActServerBanEnd} {
		out = append(out, string(a))
	}
	return out
}()
