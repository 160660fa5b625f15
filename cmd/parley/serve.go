package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"parley/codec"
	"parley/server"
	"parley/server/moderation"
)

func newServeCmd() *cobra.Command {
	cfg := server.Config{}
	maxFrame := byteSize(codec.DefaultMaxFrame)
	maxBody := byteSize(codec.DefaultMaxBody)
	maxOutbound := byteSize(server.DefaultMaxOutbound)
	maxOutboundTotal := byteSize(server.DefaultMaxOutboundTotal)
	maxLoginFrame := byteSize(server.DefaultMaxLoginFrame)
	sendBuffer := byteSize(server.DefaultSocketSendBuffer)
	historyBytes := byteSize(server.DefaultHistoryBytes)
	memoryLimit := byteSize(defaultMemoryLimit())
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the chat server",
		Long: `Run the Parley chat server. It speaks the protocol in docs/PROTOCOL.md on
TCP, and stops gracefully on SIGINT or SIGTERM: it sends every session, and
every connection that arrives meanwhile, bye shutdown, stops listening, and
exits 0 within 5 seconds. If its event loops or listener fail on their own
it exits 1.

With --nats the server joins a cluster: several nodes on one NATS server (with
JetStream) behave as one chat server, with shared rooms, ordering, direct
messages, presence and unique nicks (docs/CLUSTER.md). Without it the server is
a single node that needs nothing else.

With --auth-key, users log in with tokens signed by the application that owns
them (docs/PROTOCOL.md "Tokens and accounts"; parley keygen and parley token
make keys and tokens for development). With --tls-addr the server also listens
for TLS, and with --ws-addr it serves the web chat at / and WebSocket at /ws.
SIGHUP rereads the TLS certificate, the auth keys and the API keys.
--admin-addr serves /metrics, /healthz, /readyz and /debug/pprof/ for operators
(docs/OPERATIONS.md; parley status reads it).

For the application that owns the users (docs/API.md): --api-addr serves the
server API (parley api calls it), --hook-url asks the application about every
say and dm before it is sent, and --webhook-url posts the chat's events to it,
signed, at least once.

Durations use Go syntax (300ms, 10s, 1m); sizes are bytes, with KiB, MiB or
GiB suffixes accepted (64KiB, 4MiB).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logLevel, logFormat)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			cfg.Logger = logger
			cfg.MaxFrame, cfg.MaxBody, cfg.MaxOutbound = int(maxFrame), int(maxBody), int(maxOutbound)
			cfg.MaxOutboundTotal, cfg.MaxLoginFrame = int64(maxOutboundTotal), int(maxLoginFrame)
			cfg.SocketSendBuffer = int(sendBuffer)
			cfg.HistoryBytes = int64(historyBytes)
			offWhenZero(&cfg)
			if limit := applyMemoryLimit(int64(memoryLimit)); limit > 0 {
				logger.Info("memory limit", "bytes", limit)
			}
			return runServer(cfg, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", server.DefaultAddr, "TCP address to listen on")
	f.IntVar(&cfg.Loops, "loops", server.DefaultLoops(), "event loops (goroutines that own connections); the default is one per core but one, at least one")
	f.DurationVar(&cfg.Heartbeat, "heartbeat", server.DefaultHeartbeat, "interval between pings to each session")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", server.DefaultIdleTimeout, "close a session that sent nothing for this long (bye timeout)")
	f.DurationVar(&cfg.LoginTimeout, "login-timeout", server.DefaultLoginTimeout, "close a connection not logged in after this long (bye login_timeout)")
	f.IntVar(&cfg.MaxConns, "max-conns", server.DefaultMaxConns(), "most connections at once, 0 for no limit; over it: bye server_full (default: the open-file limit less a reserve of a quarter of it, at most 512)")
	f.IntVar(&cfg.MaxHTTPConns, "max-http-conns", 0, "most HTTP connections on --ws-addr that are not WebSockets (page loads, upgrades under way), negative for no limit of their own; over it: a bare 503 (default: --max-conns/8, at least 64; 1024 without --max-conns)")
	f.Var(&maxFrame, "max-frame", "largest frame accepted")
	f.Var(&maxBody, "max-body", "largest message body")
	f.Var(&maxOutbound, "max-outbound", "memory the bytes queued for one client may hold before it is closed as a slow consumer")
	f.Var(&maxOutboundTotal, "max-outbound-total", "memory all clients' queued bytes may hold; past it the largest queues are closed as slow consumers, 0 for no limit")
	f.DurationVar(&cfg.WriteDeadline, "write-deadline", server.DefaultWriteDeadline, "close, as a slow consumer, a client that has not taken the bytes queued for it within this long")
	f.Var(&maxLoginFrame, "max-login-frame", "largest frame accepted before login")
	f.DurationVar(&cfg.FrameTimeout, "frame-timeout", server.DefaultFrameTimeout, "close a connection whose started frame is not complete within this long")
	f.IntVar(&cfg.PresenceLimit, "presence-limit", server.DefaultPresenceLimit, "room size above which joins and leaves are sent as presence counts; negative for never")
	f.Float64Var(&cfg.RateLimit, "rate-limit", server.DefaultRateLimit, "flood control: frames per second per connection, 0 for off; over it: error rate_limited (who and refresh cost 10, a history page or a resume's replay one per 2 KiB, a WebSocket ping 1)")
	f.IntVar(&cfg.RateBurst, "rate-burst", server.DefaultRateBurst, "frames a connection may send at once above --rate-limit")
	f.DurationVar(&cfg.FloodGrace, "flood-grace", server.DefaultFloodGrace, "close a connection once its time over --rate-limit adds up to this (bye flood): frames dropped together count as the time they would take at the rate; quiet time past a second drains it at half speed")
	f.IntVar(&cfg.MaxRooms, "max-rooms", 0, "most rooms the server keeps, empty ones with a history included, negative for no limit; a join that would create one more gets error too_many_rooms (default: --history-bytes/8KiB, at least 1024)")
	f.IntVar(&cfg.RoomsPerSession, "rooms-per-session", codec.DefaultMaxRooms, "most rooms one session may be in; one more gets error too_many_rooms")
	f.Float64Var(&cfg.RoomCreateRate, "room-create-rate", server.DefaultRoomCreateRate, "rooms one session may create per second (a join of a room that does not exist), 0 for no limit; over it: error rate_limited")
	f.IntVar(&cfg.RoomCreateBurst, "room-create-burst", server.DefaultRoomCreateBurst, "rooms a session may create at once above --room-create-rate")
	f.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", 0, "most connections from one IP address (a /64 for IPv6), 0 for no limit; over it: bye server_full")
	f.Float64Var(&cfg.ConnRatePerIP, "max-conn-rate-per-ip", server.DefaultConnRatePerIP, "new connections per second from one IP address (a /64 for IPv6) on all listeners together, bursts of twice that, 0 for no limit; over it: bye conn_rate")
	f.Var(&sendBuffer, "socket-send-buffer", "fixed kernel send buffer per connection, 0 for the kernel's autotuning; bounds what a client that never reads costs")
	f.IntVar(&cfg.HistoryLen, "history", server.DefaultHistoryLen, "messages each room keeps for history and resume (in a cluster, in its log), 0 for none")
	f.IntVar(&cfg.AuditLen, "audit-len", moderation.DefaultAuditLen, "moderation actions the audit log keeps (in memory, and on disk with --data-dir)")
	f.DurationVar(&cfg.HistoryAge, "history-age", server.DefaultHistoryAge, "single node: forget room messages older than this, 0 to keep them however old")
	f.Var(&memoryLimit, "memory-limit", "the Go runtime's soft memory limit, past which it collects harder and gives memory back; 0 for none (default: three quarters of the cgroup's or the machine's memory; GOMEMLIMIT, when set, wins)")
	f.Var(&historyBytes, "history-bytes", "memory for every room's history together (in a cluster, the whole log); past it the oldest message of all rooms goes first, and a room left without members or history dies")
	f.StringVar(&cfg.DataDir, "data-dir", "", "single node: keep the rooms' histories in this directory, so a restart continues them (empty: memory only)")
	f.IntVar(&cfg.ReplayLimit, "replay-limit", 0, "most messages a resume replays (0: --history)")
	f.DurationVar(&cfg.NickHold, "nick-hold", server.DefaultNickHold, "keep the nick of a session that dropped without quit for its resume token this long, 0 for off")
	f.Float64Var(&cfg.DMRate, "dm-rate", server.DefaultDMRate, "direct messages per second one session may send to one user, 0 for no limit; over it: error rate_limited")
	f.IntVar(&cfg.DMBurst, "dm-burst", server.DefaultDMBurst, "direct messages one session may send to one user at once above --dm-rate")
	f.Float64Var(&cfg.JoinRate, "join-rate", server.DefaultJoinRate, "joins and leaves per second per session, 0 for no limit; over it: error rate_limited")
	f.IntVar(&cfg.JoinBurst, "join-burst", server.DefaultJoinBurst, "joins and leaves a session may make at once above --join-rate")
	f.DurationVar(&cfg.StatsInterval, "stats-interval", server.DefaultStatsInterval, "interval of the info log line of connection counters, 0 for off")
	f.StringVar(&cfg.NATS, "nats", "", "NATS server URL (JetStream enabled) to join a cluster, e.g. nats://127.0.0.1:4222; empty for a single node")
	f.StringVar(&cfg.NodeID, "node-id", "", "this node's name in the cluster, unique among running nodes (letters, digits, _ and -); empty for a random one")
	f.StringVar(&cfg.ClusterName, "cluster-name", server.DefaultClusterName, "prefix of the cluster's NATS subjects, buckets and stream, so clusters can share a NATS server")
	f.DurationVar(&cfg.NodeHeartbeat, "node-heartbeat", server.DefaultNodeHeartbeat, "interval between a node's heartbeats; a node silent for 3 is dead and its users leave")
	f.StringVar(&cfg.Auth, "auth", "", "how users log in: off (any free nick), optional (a token logs in an account, others are guests named ~nick) or required (default: required with a key, else off)")
	f.StringArrayVar(&cfg.AuthKeys, "auth-key", nil, "[KID=]FILE: a PEM Ed25519 or RSA public key that signs login tokens (repeat for several, chosen by kid; KID defaults to the file name); reread on SIGHUP")
	f.StringArrayVar(&cfg.AuthSecrets, "auth-secret", nil, "[KID=]FILE: an HS256 secret (32 bytes or more) that signs login tokens; prefer --auth-key")
	f.StringVar(&cfg.AuthAudience, "auth-audience", "", "when set, a token's aud must hold it")
	f.StringVar(&cfg.AuthIssuer, "auth-issuer", "", "when set, a token's iss must be it")
	f.IntVar(&cfg.MaxSessionsPerUser, "max-sessions-per-user", server.DefaultMaxSessions, "sessions one account may have at once; one more gets error too_many_sessions")
	f.DurationVar(&cfg.TokenGrace, "token-grace", server.DefaultTokenGrace, "how long past its exp a session's token holds before bye token_expired")
	f.StringVar(&cfg.TLSAddr, "tls-addr", "", "second listener speaking the protocol over TLS (1.2 or later), e.g. :8443; empty for none")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate chain for --tls-addr; reread on SIGHUP")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for --tls-cert; reread on SIGHUP")
	f.StringVar(&cfg.WSAddr, "ws-addr", "", "HTTP listener for the web chat at / and WebSocket at /ws (HTTPS and wss with --tls-cert), e.g. :8080; empty for none")
	f.StringSliceVar(&cfg.WSOrigins, "ws-origins", nil, "Origin values a browser's WebSocket may come from besides the page's own, which is always allowed, e.g. https://chat.example.com (* for any)")
	f.StringVar(&cfg.APIAddr, "api-addr", "", "serve the server API (docs/API.md) here, e.g. 127.0.0.1:8070: HTTPS with --tls-cert, else HTTP; needs --api-key")
	f.StringArrayVar(&cfg.APIKeys, "api-key", nil, "[ID=]FILE: a server API key, the file's first line (32 bytes or more; parley keygen --secret writes one); repeat for several; reread on SIGHUP")
	f.StringArrayVar(&cfg.APIReadKeys, "api-read-key", nil, "[ID=]FILE: a server API key that may only read (room_info, rooms, room_members, presence, history, stats)")
	f.Float64Var(&cfg.APIRate, "api-rate", 0, "requests per second each API key may make, with bursts of twice as many (a batch counts each request); 0 for 200")
	f.StringVar(&cfg.HookURL, "hook-url", "", "the application's pre-send hook: every say and dm is POSTed here first, to allow, reject or replace (docs/API.md)")
	f.DurationVar(&cfg.HookTimeout, "hook-timeout", 0, "how long the pre-send hook has to decide; 0 for 1.5s")
	f.StringVar(&cfg.HookFailure, "hook-failure", "open", "what a message does when the hook fails or is late: open (sent as it is) or closed (the sender gets unavailable)")
	f.StringArrayVar(&cfg.WebhookURLs, "webhook-url", nil, "post the chat's events here, in signed batches, at least once (repeat for several; docs/API.md)")
	f.StringVar(&cfg.WebhookSecret, "webhook-secret", "", "FILE: the secret (32 bytes or more) that signs webhook posts and pre-send hook calls")
	f.StringSliceVar(&cfg.WebhookEvents, "webhook-events", nil, "event types to post, e.g. message,dm,offline_dm,offline_mention,moderation,join,leave,session_open,session_close; empty for message,dm,offline_dm,offline_mention,moderation")
	f.StringSliceVar(&cfg.WebhookRooms, "webhook-rooms", nil, "rooms whose join and leave events are posted (* for every room)")
	f.IntVar(&cfg.WebhookQueue, "webhook-queue", 0, "events each webhook's queue holds (in --data-dir when set) before the oldest are dropped; 0 for 100000")
	f.StringVar(&cfg.AdminAddr, "admin-addr", "", "serve /metrics (Prometheus), /healthz, /readyz and /debug/pprof/ here, e.g. 127.0.0.1:9090 (keep it loopback or private); empty for off")
	f.DurationVar(&cfg.DrainDelay, "drain-delay", 0, "on SIGTERM, how long /readyz says 503 before the sessions get bye shutdown, so a load balancer stops sending new users first")
	f.BoolVar(&cfg.ProxyProtocol, "proxy-protocol", false, "on --addr, read a PROXY protocol header (v1 or v2) from --proxy-trusted sources, so per-address limits see the client's address")
	f.StringSliceVar(&cfg.ProxyTrusted, "proxy-trusted", nil, "networks or addresses of the load balancers that send PROXY headers, e.g. 10.0.0.0/8,192.0.2.7")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("invalid --log-format %q: use text or json", format)
}

// runServer serves until SIGINT or SIGTERM, then shuts down gracefully.
func runServer(cfg server.Config, logger *slog.Logger) error {
	srv, err := server.New(cfg)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go reloadOnHangup(ctx, srv, logger)
	go func() {
		select {
		case <-srv.Ready():
			attrs := []any{"addr", srv.Addr().String(), "loops", cfg.Loops}
			if a := srv.TLSAddr(); a != nil {
				attrs = append(attrs, "tls_addr", a.String())
			}
			if a := srv.WSAddr(); a != nil {
				attrs = append(attrs, "ws_addr", a.String())
			}
			if a := srv.AdminAddr(); a != nil {
				attrs = append(attrs, "admin_addr", a.String())
			}
			if a := srv.APIAddr(); a != nil {
				attrs = append(attrs, "api_addr", a.String())
			}
			if st := srv.Stats().Cluster; st != nil {
				attrs = append(attrs, "node", st.Node, "nats", cfg.NATS)
			}
			logger.Info("listening", attrs...)
		case <-srv.Done():
		}
	}()
	if err := srv.Serve(ctx); err != nil {
		logger.Error("stopped", "err", err.Error())
		return exitError{code: 1, msg: "serve: " + err.Error()}
	}
	logger.Info("stopped")
	return nil
}

// reloadOnHangup reads the TLS certificate and the auth keys again on
// every SIGHUP until ctx ends.
func reloadOnHangup(ctx context.Context, srv *server.Server, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := srv.Reload(); err != nil {
				logger.Error("reload failed; keeping the certificate and keys in use", "err", err.Error())
				continue
			}
			logger.Info("reloaded the TLS certificate and auth keys")
		}
	}
}

// offWhenZero maps the flags whose 0 means "off" or "no limit" to
// Config, where zero means the default and negative means off.
func offWhenZero(cfg *server.Config) {
	off := func(v *float64) {
		if *v == 0 {
			*v = -1
		}
	}
	off(&cfg.RateLimit)
	off(&cfg.ConnRatePerIP)
	off(&cfg.DMRate)
	off(&cfg.JoinRate)
	off(&cfg.RoomCreateRate)
	for _, v := range []*int{&cfg.MaxConns, &cfg.SocketSendBuffer, &cfg.HistoryLen} {
		if *v == 0 {
			*v = -1
		}
	}
	for _, v := range []*time.Duration{&cfg.NickHold, &cfg.StatsInterval, &cfg.HistoryAge} {
		if *v == 0 {
			*v = -1
		}
	}
	if cfg.MaxOutboundTotal == 0 {
		cfg.MaxOutboundTotal = -1
	}
}
