package hub

import (
	"fmt"
	"log/slog"
	"time"

	"parley/codec"
	"parley/server/auth"
	"parley/server/moderation"
)

// AuthMode says how sessions log in (--auth).
type AuthMode int

const (
	// AuthOff: a login names its nick and gets it if it is free; tokens
	// are ignored. Anyone can take any free nick.
	AuthOff AuthMode = iota
	// AuthOptional: a login with a token logs in its account; one
	// without is a guest, whose nick starts with codec.GuestPrefix.
	AuthOptional
	// AuthRequired: every login carries a valid token.
	AuthRequired
)

var authModes = []string{"off", "optional", "required"}

func (m AuthMode) String() string {
	if int(m) < len(authModes) {
		return authModes[m]
	}
	return fmt.Sprintf("AuthMode(%d)", int(m))
}

// ParseAuthMode reads "off", "optional" or "required".
func ParseAuthMode(s string) (AuthMode, error) {
	for i, name := range authModes {
		if s == name {
			return AuthMode(i), nil
		}
	}
	return 0, fmt.Errorf("auth is off, optional or required, not %q", s)
}

// Config is what the hub needs of the server's configuration, with every
// default already applied: parley/server.Config documents each field and
// its default, and fills this in.
type Config struct {
	Loops            int
	Heartbeat        time.Duration
	IdleTimeout      time.Duration
	LoginTimeout     time.Duration
	MaxConns         int // 0: no limit
	MaxFrame         int
	MaxLoginFrame    int
	FrameTimeout     time.Duration
	MaxBody          int
	MaxOutbound      int
	MaxOutboundTotal int64 // 0 or negative: no limit
	RoomBudget       int64 // unsent memory past which a member's room messages are dropped for a gap; 0: never
	WriteDeadline    time.Duration
	PresenceLimit    int // negative: never count
	PresenceInterval time.Duration
	RoomsPerSession  int
	MaxRooms         int     // rooms kept at once; 0: no limit
	RoomCreateRate   float64 // rooms one session may create per second; negative: off
	RoomCreateBurst  int
	RateLimit        float64 // negative: off
	RateBurst        int
	FloodGrace       time.Duration
	MaxConnsPerIP    int           // 0: no limit
	NickHold         time.Duration // 0 or negative: off
	DMRate           float64       // negative: off
	DMBurst          int
	JoinRate         float64 // negative: off
	JoinBurst        int
	StatsInterval    time.Duration // 0 or negative: off
	HistoryLen       int           // messages kept per room; 0: no history
	HistoryAge       time.Duration // 0: no age limit
	HistoryBytes     int64         // every room's history together; 0: no limit
	ReplayLimit      int           // the most messages a resume replays
	Store            HistoryStore  // nil: MemoryHistory, the history in memory only
	Auth             AuthMode      // who may log in how; AuthOff: by nick, as anyone
	Verifier         auth.Verifier // checks login tokens; nil: auth.RefuseAll
	MaxSessions      int           // sessions of one account at once (logins with a token)
	TokenGrace       time.Duration // how long past its exp a session's token still holds
	Rules            RulesStore    // nil: MemoryRules, the rooms' rules and audit log in memory only
	AuditLen         int           // audit entries kept; 0: moderation.DefaultAuditLen
	Accounts         AccountStore  // nil: MemoryAccounts, read markers and remembered nicks in memory only
	Offline          OfflineStore  // nil: MemoryOffline, direct messages for offline accounts in memory only
	Events           EventSink     // nil: NoEvents, no webhooks
	Hook             PreSend       // nil: NoHook, every say and dm goes through as sent
	Logger           *slog.Logger

	// BeforeHandle, when set, runs on the session's loop before each
	// request is handled. It exists for tests (one makes a request panic).
	BeforeHandle func(nick string, req *codec.Request)
}

// HistoryStore keeps the rooms' histories beyond the process (a single
// node's --data-dir, parley/server/store). Append and Forget are called
// under a room's lock: they must not block. Append calls stored, when it
// is not nil, once the message is on disk (nil) or will not be (the
// error), exactly once, from any goroutine and with no lock of the hub's
// held: the hub acks a say from there.
type HistoryStore interface {
	Append(room, epoch string, seq uint64, at time.Time, frame []byte, stored func(error))
	Forget(room string)
	// Replace overwrites the stored message seq of room, if the store
	// still holds it, with frame: the message as an edit, a delete or a
	// reaction left it, so that a deleted text leaves the disk.
	Replace(room, epoch string, seq uint64, frame []byte)
}

// MemoryHistory is the HistoryStore of a hub without one: the rooms'
// histories are the hub's own, in memory, so a message is stored as soon
// as it is kept there.
type MemoryHistory struct{}

// Append reports the message stored at once.
func (MemoryHistory) Append(_, _ string, _ uint64, _ time.Time, _ []byte, stored func(error)) {
	if stored != nil {
		stored(nil)
	}
}

// Forget has nothing to forget.
func (MemoryHistory) Forget(string) {}

// Replace has nothing to replace: the hub's history is the only copy.
func (MemoryHistory) Replace(string, string, uint64, []byte) {}

// withDefaults fills what is left nil with its default implementation:
// the hub never checks for nil.
func (c Config) withDefaults() Config {
	if c.Store == nil {
		c.Store = MemoryHistory{}
	}
	if c.Rules == nil {
		c.Rules = MemoryRules{}
	}
	if c.Accounts == nil {
		c.Accounts = MemoryAccounts{}
	}
	if c.Offline == nil {
		c.Offline = NewMemoryOffline()
	}
	if c.Events == nil {
		c.Events = NoEvents{}
	}
	if c.Hook == nil {
		c.Hook = NoHook{}
	}
	if c.AuditLen <= 0 {
		c.AuditLen = moderation.DefaultAuditLen
	}
	if c.Verifier == nil {
		c.Verifier = auth.RefuseAll{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// TickInterval is how often the transport should call Tick: often enough
// that a timeout fires within about a quarter of its length, and at least
// once a second.
func (c Config) TickInterval() time.Duration {
	d := time.Second
	for _, t := range []time.Duration{c.TokenGrace / 4, c.Heartbeat / 2, c.IdleTimeout / 4, c.LoginTimeout / 4, c.PresenceInterval,
		c.WriteDeadline / 4, c.FrameTimeout / 4, c.NickHold / 4} {
		if t > 0 && t < d {
			d = t
		}
	}
	return max(d, 5*time.Millisecond)
}
