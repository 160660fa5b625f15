package server

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"parley/server/auth"
	"parley/server/hub"
	"parley/server/moderation"
	"parley/server/natsbroker"

	"parley/codec"
)

// Config configures a Server. The zero value of every field means its
// documented default, so Config{} is a working server on :8060.
type Config struct {
	// Addr is the TCP address to listen on. Default ":8060". Port 0 picks a
	// free port; Server.Addr reports it.
	Addr string
	// Loops is the number of event loops (goroutines that own connections).
	// Default DefaultLoops().
	Loops int
	// Heartbeat is how often the server pings each logged-in session.
	// Default 10s.
	Heartbeat time.Duration
	// IdleTimeout closes a session that sent no frame for this long, with
	// reason timeout. Default 30s.
	IdleTimeout time.Duration
	// LoginTimeout closes a connection that has not logged in for this long,
	// with reason login_timeout. Default 10s.
	LoginTimeout time.Duration
	// MaxConns is the most connections served at once; one more gets bye
	// server_full. Default: derived from the process's open-file limit at
	// New, less a reserve for the listener, files and the cluster link
	// (DefaultMaxConns); negative means no limit but the operating system's.
	MaxConns int
	// MaxHTTPConns is the most HTTP connections on WSAddr that have not
	// become WebSockets (page loads, upgrades under way); each also counts
	// against MaxConns and the per-address limits from its accept. It
	// keeps a flood of page requests from taking the descriptors that
	// logins on every listener need. Default MaxConns/8, at least 64
	// (1024 when MaxConns is unlimited); negative: no limit of its own.
	MaxHTTPConns int
	// MaxFrame is the largest frame body accepted, in bytes. Default 65536.
	MaxFrame int
	// MaxBody is the largest message body, in bytes. Default 4096.
	MaxBody int
	// MaxOutbound is how much memory the bytes waiting to be sent to one
	// client may hold (buffer capacity, not frame bytes) before it is closed
	// as a slow consumer. Default 4 MiB.
	MaxOutbound int
	// MaxOutboundTotal is the memory all clients' waiting bytes may hold
	// together. Past it, each event loop closes its largest queues as slow
	// consumers until the total is under it again. Default 1 GiB; negative
	// means no server-wide limit.
	MaxOutboundTotal int64
	// WriteDeadline closes, as a slow consumer, a client that has not taken
	// the bytes queued for it within this long, whatever it answers to
	// pings. Default 10s.
	WriteDeadline time.Duration
	// MaxLoginFrame is the largest frame accepted before login. Default
	// 4096 bytes.
	MaxLoginFrame int
	// FrameTimeout closes a connection that started a frame and has not
	// completed it within this long (bye login_timeout before login, bye
	// timeout after). Default 10s.
	FrameTimeout time.Duration
	// PresenceLimit is the room size above which joins and leaves are
	// counted into presence frames instead of sent one by one. Default 500;
	// negative means never.
	PresenceLimit int
	// PresenceInterval is the shortest time between two presence frames of
	// one room of up to 1,000 members; a larger room waits ⌈members/1,000⌉
	// times as long. Default 1s.
	PresenceInterval time.Duration
	// RoomsPerSession is the most rooms one session may be in. Default 64.
	RoomsPerSession int
	// MaxRooms is the most rooms the server keeps at once, the lobby, the
	// rooms with members and the empty rooms that keep a history alike; a
	// join that would create one more gets error too_many_rooms. Default:
	// HistoryBytes / 8 KiB (32,768 with the default 256 MiB), at least
	// 1024, so that the rooms' own tables stay within the history's
	// budget; negative: no limit.
	MaxRooms int
	// RoomCreateRate and RoomCreateBurst are one session's budget for
	// creating rooms (a join of a room that does not exist): RoomCreateRate
	// per second on average, RoomCreateBurst at once. Default 0.2 a second
	// (12 a minute) and bursts of 16; a negative rate turns it off.
	RoomCreateRate  float64
	RoomCreateBurst int
	// RateLimit is the flood control: frames per second one connection may
	// send, on average. Frames over it are dropped and answered with error
	// rate_limited (at most once a second). who and refresh cost 10
	// frames, a history page or a resume's replay one per 2 KiB it sends,
	// a WebSocket ping one. Default 50; negative turns flood control off.
	RateLimit float64
	// RateBurst is how many frames a connection may send at once above
	// RateLimit. Default 100.
	RateBurst int
	// FloodGrace closes a connection with bye flood once its time over
	// RateLimit adds up to this: the gaps between dropped frames, up to a
	// second each, and for frames dropped together the time they would
	// take at the rate; quiet time beyond a second drains it at half
	// speed. Default 5s.
	FloodGrace time.Duration
	// MaxConnsPerIP is the most connections from one IP address (one /64
	// for IPv6); one more gets bye server_full. Default 0: no limit, since
	// many users can share one address behind a NAT.
	MaxConnsPerIP int
	// ConnRatePerIP is how many new connections per second one IP address
	// (one /64 for IPv6) may open, on all listeners together, with bursts
	// of twice as many; one more gets bye conn_rate (an HTTP connection a
	// bare 429). Default 10; negative turns it off.
	ConnRatePerIP float64
	// SocketSendBuffer fixes the kernel send buffer of each connection, in
	// bytes, turning off its autotuning (Linux doubles the value for its
	// bookkeeping). With MaxOutbound it bounds what a client that never
	// reads can cost. Default 64 KiB; negative leaves the kernel's
	// autotuning on.
	SocketSendBuffer int
	// HistoryLen is how many messages each room keeps for history and
	// resume (docs/PROTOCOL.md); in a cluster, how many the room's log
	// keeps. Default 1000; negative keeps none.
	HistoryLen int
	// AuditLen is how many moderation actions the audit log keeps, in
	// memory and, with DataDir, on disk. Default 10,000.
	AuditLen int
	// HistoryAge forgets messages older than this on a single node.
	// Default 24h; negative keeps them however old.
	HistoryAge time.Duration
	// HistoryBytes caps the memory of every room's history together on a
	// single node, and the whole log in a cluster; past it a room's new
	// message pushes out its oldest. Default 256 MiB.
	HistoryBytes int64
	// DataDir keeps the rooms' histories on disk (a bbolt file,
	// history.db), so that a restarted server continues every room's seq
	// and epoch and serves its history. Empty: in memory only. Single node
	// only.
	DataDir string
	// ReplayLimit is the most messages a resume replays; a client further
	// behind is told recovered false. Default HistoryLen.
	ReplayLimit int
	// NickHold keeps the nick of a session that ended without quit
	// reserved this long; only a login that presents the session's resume
	// token (given in welcome) takes it back meanwhile. Default 30s;
	// negative turns holds off.
	NickHold time.Duration
	// DMRate and DMBurst limit the direct messages one session sends to
	// one user: DMRate per second on average, DMBurst at once. Default 5
	// and 10; a negative DMRate turns the limit off.
	DMRate  float64
	DMBurst int
	// JoinRate and JoinBurst limit the joins and leaves of one session,
	// each of which costs a frame to every member of the room. Default 1
	// per second and bursts of 64 (a client rejoining every room after a
	// reconnect); a negative JoinRate turns the limit off.
	JoinRate  float64
	JoinBurst int
	// StatsInterval is how often the server logs one info line of
	// connection counters (opened, logins, closes by reason, refusals);
	// the lines per connection are at debug level. Default 1m; negative
	// turns the line off.
	StatsInterval time.Duration
	// Logger receives the server's log. Default: discard.
	Logger *slog.Logger

	// NATS is the URL of the NATS server (with JetStream) that joins this
	// node to a cluster; docs/CLUSTER.md has the design. Default "": a
	// single node that needs nothing else.
	NATS string
	// NodeID names this node in its cluster. It must be unique among the
	// running nodes and is letters, digits, '_' and '-'. Default: a random id.
	NodeID string
	// ClusterName prefixes the cluster's NATS subjects, key-value buckets
	// and stream, so several clusters can share one NATS server. Letters,
	// digits, '_' and '-'. Default "parley".
	ClusterName string
	// NodeHeartbeat is how often a node tells the others it is alive. A node
	// silent for 3 heartbeats is dead: its users leave every room with
	// reason disconnect and its nicks are released. Default 1s.
	NodeHeartbeat time.Duration

	// Auth says how sessions log in: "off" (by nick, as anyone),
	// "optional" (a token logs in an account, a login without one is a
	// guest whose nick starts with "~") or "required". Default "required"
	// when a key or a Verifier is configured, else "off", and New logs a
	// warning that anyone can take any nick.
	Auth string
	// AuthKeys are the public keys login tokens may be signed with, each
	// "[KID=]FILE": a PEM Ed25519 (EdDSA) or RSA (RS256) public key; KID
	// defaults to the file name without its extension. Reload reads them
	// again.
	AuthKeys []string
	// AuthSecrets are HS256 shared secrets, each "[KID=]FILE", at least
	// 32 bytes. Whoever holds one can sign tokens: prefer AuthKeys.
	AuthSecrets []string
	// AuthAudience and AuthIssuer, when set, must be a token's aud and iss.
	AuthAudience string
	AuthIssuer   string
	// Verifier checks tokens instead of AuthKeys and AuthSecrets (to
	// embed the server with another source of keys).
	Verifier auth.Verifier
	// MaxSessionsPerUser is the most sessions one account has at once
	// (logins with a token). Default 5.
	MaxSessionsPerUser int
	// TokenGrace is how long past its exp a session's token still holds
	// it; then the session gets bye token_expired. Default 30s.
	TokenGrace time.Duration

	// TLSAddr, when set, is a second listener that speaks the protocol
	// over TLS (1.2 at least) with the certificate and key in TLSCert and
	// TLSKey (PEM), which Reload reads again.
	TLSAddr string
	TLSCert string
	TLSKey  string

	// WSAddr, when set, is an HTTP listener that serves the web chat at /
	// and WebSocket at /ws: one text message per protocol object, without
	// the 4-byte length. With TLSCert and TLSKey it serves HTTPS and wss.
	WSAddr string
	// WSOrigins are the Origin values a browser's WebSocket may come from
	// besides the page's own (the scheme it was served with, its host and
	// port), which is always allowed: "https://chat.example.com"; "*" for
	// any. They are compared by scheme, host and port. An Origin with
	// userinfo or a path is refused. A request without Origin (not a
	// browser) is let in.
	WSOrigins []string

	// AdminAddr, when set, serves /metrics (Prometheus), /healthz,
	// /readyz and /debug/pprof/ for operators: give it a loopback or
	// private address. Off by default.
	AdminAddr string
	// APIAddr, when set, serves the server API (docs/API.md) for the
	// application that owns the users: HTTPS when the server has a
	// certificate (TLSCert), HTTP otherwise. It needs APIKeys. Off by
	// default.
	APIAddr string
	// APIKeys are the server API's keys: [ID=]FILE, each file holding
	// one key of at least 32 bytes; APIReadKeys are keys that may only
	// read. Both are read again on Reload.
	APIKeys, APIReadKeys []string
	// APIRate bounds each API key's requests per second (a batch counts
	// each of its requests), with bursts of twice as many. Default 200.
	APIRate float64

	// HookURL, when set, is the application's pre-send hook: every say
	// and dm is POSTed to it before it is sequenced or delivered
	// (docs/API.md "Pre-send hook"). HookTimeout bounds its decision
	// (default 1.5 s); HookFailure is what a message does when the hook
	// fails: "open" (the default, it goes through) or "closed" (the
	// sender gets unavailable).
	HookURL     string
	HookTimeout time.Duration
	HookFailure string

	// WebhookURLs receive the chat's events (docs/API.md "Webhooks"),
	// signed with the secret in WebhookSecret (a file), in batches, at
	// least once, from a queue of WebhookQueue events each (default
	// 100,000; kept in DataDir across restarts when set). WebhookEvents
	// are the types sent (default: message, dm, offline_dm,
	// offline_mention, moderation); WebhookRooms the rooms whose join
	// and leave events are sent ("*": all).
	WebhookURLs   []string
	WebhookSecret string
	WebhookEvents []string
	WebhookRooms  []string
	WebhookQueue  int
	// webhookBackoff is the first retry's wait after a failed POST
	// (default 1 s); tests shorten it.
	webhookBackoff time.Duration

	// DrainDelay is how long a shutdown keeps serving with /readyz at 503
	// before it sends the sessions bye shutdown, so that a load balancer
	// polling /readyz stops sending new users first. Default 0.
	DrainDelay time.Duration

	// ProxyProtocol makes the plain listener read a PROXY protocol header
	// (v1 or v2) from the networks in ProxyTrusted ("10.0.0.0/8" or
	// "10.0.0.1"), which must send one: the per-address limits then count
	// the client's address. Other sources are not asked for one.
	ProxyProtocol bool
	ProxyTrusted  []string

	// beforeHandle is the hub's test hook (hub.Config.BeforeHandle).
	beforeHandle func(nick string, req *codec.Request)
	// busQueueLen sets natsbroker.Config.QueueLen, for tests.
	busQueueLen int
	// busPingInterval sets natsbroker.Config.PingInterval, for tests.
	busPingInterval time.Duration
	// busLogLen sets natsbroker.Config.LogLen, for tests.
	busLogLen int
}

// Defaults of Config.
const (
	DefaultAddr             = ":8060"
	DefaultHeartbeat        = 10 * time.Second
	DefaultIdleTimeout      = 30 * time.Second
	DefaultLoginTimeout     = 10 * time.Second
	DefaultMaxOutbound      = 4 << 20
	DefaultMaxOutboundTotal = 1 << 30
	DefaultWriteDeadline    = 10 * time.Second
	DefaultMaxLoginFrame    = 4096
	DefaultFrameTimeout     = 10 * time.Second
	DefaultConnRatePerIP    = 10
	DefaultSocketSendBuffer = 64 << 10
	DefaultNickHold         = 30 * time.Second
	DefaultHistoryLen       = 1000
	DefaultHistoryAge       = 24 * time.Hour
	DefaultHistoryBytes     = 256 << 20
	DefaultDMRate           = 5
	DefaultDMBurst          = 10
	DefaultJoinRate         = 1
	DefaultJoinBurst        = 64
	DefaultStatsInterval    = time.Minute
	DefaultPresenceLimit    = 500
	DefaultPresenceInterval = time.Second
	DefaultRateLimit        = 50
	DefaultRateBurst        = 100
	DefaultFloodGrace       = 5 * time.Second
	DefaultRoomCreateRate   = 0.2
	DefaultRoomCreateBurst  = 16
	DefaultClusterName      = "parley"
	DefaultNodeHeartbeat    = time.Second
	DefaultMaxSessions      = 5
	DefaultTokenGrace       = 30 * time.Second
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	setDefault(&c.Addr, DefaultAddr)
	setDefault(&c.Loops, DefaultLoops())
	setDefault(&c.Heartbeat, DefaultHeartbeat)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.LoginTimeout, DefaultLoginTimeout)
	setDefault(&c.MaxFrame, codec.DefaultMaxFrame)
	setDefault(&c.MaxBody, codec.DefaultMaxBody)
	setDefault(&c.MaxOutbound, DefaultMaxOutbound)
	setDefault(&c.MaxOutboundTotal, DefaultMaxOutboundTotal)
	setDefault(&c.WriteDeadline, DefaultWriteDeadline)
	setDefault(&c.MaxLoginFrame, min(DefaultMaxLoginFrame, c.MaxFrame))
	setDefault(&c.FrameTimeout, DefaultFrameTimeout)
	setDefault(&c.ConnRatePerIP, DefaultConnRatePerIP)
	setDefault(&c.SocketSendBuffer, DefaultSocketSendBuffer)
	setDefault(&c.NickHold, DefaultNickHold)
	setDefault(&c.HistoryLen, DefaultHistoryLen)
	setDefault(&c.AuditLen, moderation.DefaultAuditLen)
	setDefault(&c.HistoryAge, DefaultHistoryAge)
	setDefault(&c.HistoryBytes, DefaultHistoryBytes)
	setDefault(&c.ReplayLimit, max(c.HistoryLen, 1))
	setDefault(&c.DMRate, DefaultDMRate)
	setDefault(&c.DMBurst, DefaultDMBurst)
	setDefault(&c.JoinRate, DefaultJoinRate)
	setDefault(&c.JoinBurst, DefaultJoinBurst)
	setDefault(&c.StatsInterval, DefaultStatsInterval)
	setDefault(&c.MaxConns, DefaultMaxConns())
	if c.MaxConns > 0 {
		setDefault(&c.MaxHTTPConns, max(c.MaxConns/8, 64))
	}
	setDefault(&c.MaxHTTPConns, 1024)
	setDefault(&c.PresenceLimit, DefaultPresenceLimit)
	setDefault(&c.PresenceInterval, DefaultPresenceInterval)
	setDefault(&c.RoomsPerSession, codec.DefaultMaxRooms)
	setDefault(&c.MaxRooms, int(max(c.HistoryBytes/(8<<10), 1024)))
	setDefault(&c.RoomCreateRate, DefaultRoomCreateRate)
	setDefault(&c.RoomCreateBurst, DefaultRoomCreateBurst)
	setDefault(&c.RateLimit, DefaultRateLimit)
	setDefault(&c.RateBurst, DefaultRateBurst)
	setDefault(&c.FloodGrace, DefaultFloodGrace)
	setDefault(&c.ClusterName, DefaultClusterName)
	setDefault(&c.NodeHeartbeat, DefaultNodeHeartbeat)
	setDefault(&c.NodeID, natsbroker.RandomNodeID())
	setDefault(&c.MaxSessionsPerUser, DefaultMaxSessions)
	setDefault(&c.TokenGrace, DefaultTokenGrace)
	if c.Auth == "" {
		c.Auth = "off"
		if len(c.AuthKeys)+len(c.AuthSecrets) > 0 || c.Verifier != nil {
			c.Auth = "required"
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// hubConfig is the part of c the hub uses; c has its defaults.
func (c Config) hubConfig() hub.Config {
	return hub.Config{
		Loops: c.Loops, Heartbeat: c.Heartbeat, IdleTimeout: c.IdleTimeout, LoginTimeout: c.LoginTimeout,
		MaxConns: max(c.MaxConns, 0), MaxFrame: c.MaxFrame, MaxLoginFrame: c.MaxLoginFrame, FrameTimeout: c.FrameTimeout,
		MaxBody: c.MaxBody, MaxOutbound: c.MaxOutbound, MaxOutboundTotal: c.MaxOutboundTotal, WriteDeadline: c.WriteDeadline,
		RoomBudget:    int64(c.MaxOutbound) / 2,
		PresenceLimit: c.PresenceLimit, PresenceInterval: c.PresenceInterval, RoomsPerSession: c.RoomsPerSession, MaxRooms: max(c.MaxRooms, 0),
		RoomCreateRate: c.RoomCreateRate, RoomCreateBurst: c.RoomCreateBurst,
		RateLimit: c.RateLimit, RateBurst: c.RateBurst, FloodGrace: c.FloodGrace, MaxConnsPerIP: c.MaxConnsPerIP,
		NickHold: c.NickHold, HistoryLen: max(c.HistoryLen, 0), HistoryAge: max(c.HistoryAge, 0), HistoryBytes: c.HistoryBytes,
		ReplayLimit: c.ReplayLimit, DMRate: c.DMRate, DMBurst: c.DMBurst, JoinRate: c.JoinRate, JoinBurst: c.JoinBurst,
		StatsInterval: c.StatsInterval, Logger: c.Logger, BeforeHandle: c.beforeHandle,
		MaxSessions: c.MaxSessionsPerUser, TokenGrace: c.TokenGrace, AuditLen: c.AuditLen,
	}
}

// authConfig reads the configured keys for the verifier.
func (c Config) authConfig() (auth.Config, error) {
	cfg := auth.Config{Audience: c.AuthAudience, Issuer: c.AuthIssuer}
	for _, spec := range c.AuthKeys {
		k, err := auth.LoadPublicKey(auth.ParseKeySpec(spec))
		if err != nil {
			return cfg, fmt.Errorf("server: auth key: %w", err)
		}
		cfg.Keys = append(cfg.Keys, k)
	}
	for _, spec := range c.AuthSecrets {
		k, err := auth.LoadSecret(auth.ParseKeySpec(spec))
		if err != nil {
			return cfg, fmt.Errorf("server: auth secret: %w", err)
		}
		cfg.Keys = append(cfg.Keys, k)
	}
	return cfg, nil
}

// DefaultMaxConns is MaxConns's default: the soft open-file limit of the
// process less a reserve of a quarter of it, at most 512 and at least 16
// descriptors, for the listener, the event loops' pollers, log and data
// files and the cluster link. With 20,000 descriptors that is 19,488
// connections. It is 0 (no limit) when the limit cannot be read.
func DefaultMaxConns() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return 0
	}
	n := int(min(lim.Cur, 1<<24))
	return max(n-min(max(n/4, 16), 512), 1)
}

// DefaultLoops is the default number of event loops: one per core the Go
// runtime may use but one, and at least one. The core left over is for
// what runs beside the loops: the kernel's network processing, the
// collector, TLS handshakes and the web port, the store's writer, the
// cluster's goroutines. A loop writes to its connections until its
// outbox is empty, so a room's messages reach each member in as few
// writes as the time between drains allows: a loop sharing its core
// drains more often with less in each write, and spends more per
// delivery. On a 2-core machine one loop delivered more than two with
// the load generator beside it (docs/PERFORMANCE.md).
func DefaultLoops() int { return max(runtime.GOMAXPROCS(0)-1, 1) }
