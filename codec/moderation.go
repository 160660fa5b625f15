package codec

// Room governance (docs/PROTOCOL.md "Rooms people run"): requests that
// name a target account, set a room's topic and privacy, list rooms and
// page the audit log, and the frames that tell a room what changed.

// Moderation request types. Each is answered with ack or error.
const (
	TypeOp       = "op"
	TypeDeop     = "deop"
	TypeKick     = "kick"
	TypeBan      = "ban"
	TypeUnban    = "unban"
	TypeMute     = "mute"
	TypeUnmute   = "unmute"
	TypeInvite   = "invite"
	TypeUninvite = "uninvite"
	TypeTopic    = "topic"
	TypePrivate  = "private"
	TypeRooms    = "rooms"
	TypeAudit    = "audit"
	// Server-wide moderation, for admins.
	TypeServerBan   = "server_ban"
	TypeServerUnban = "server_unban"
	TypeServerBans  = "server_bans"
	TypeRevoke      = "revoke"
	TypeLockdown    = "lockdown"
	// TypeMod is the server's notice of a moderation action in a room.
	TypeMod = "mod"
)

// Limits of the moderation requests (docs/PROTOCOL.md "Limits").
const (
	MaxReason   = 256             // bytes of a moderation reason
	MaxTopic    = 512             // bytes of a room topic
	MaxDuration = 366 * 24 * 3600 // seconds: the longest timed ban or mute
	RoomsPage   = 100             // the most rooms one rooms answer lists
	BansPage    = 100             // the most bans one server_bans answer lists
	AuditPage   = 100             // the most entries one audit answer lists
)

// Target is a moderation request: an action on an account in Room. The
// account is named by Nick (a user online here) or by Account (a token's
// sub, online or not).
type Target struct {
	Type    string `json:"type"`
	Room    string `json:"room"`
	Nick    string `json:"nick,omitempty"`
	Account string `json:"account,omitempty"`
	// Duration, in seconds, bounds a ban or a mute; nil: until lifted.
	Duration *int64 `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Ref      string `json:"ref,omitempty"`
}

// SetTopic sets Room's topic; an empty Topic clears it.
type SetTopic struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Topic string `json:"topic"`
	Ref   string `json:"ref,omitempty"`
}

// SetPrivate makes Room invite-only (Private true) or open again.
type SetPrivate struct {
	Type    string `json:"type"`
	Room    string `json:"room"`
	Private bool   `json:"private"`
	Ref     string `json:"ref,omitempty"`
}

// ListRooms asks for a page of the public rooms, largest first, starting
// at Offset.
type ListRooms struct {
	Type   string `json:"type"`
	Offset int    `json:"offset,omitempty"`
	Limit  *int   `json:"limit,omitempty"`
	Ref    string `json:"ref,omitempty"`
}

// ReadAudit asks for a page of the audit log: Room's entries (every room's
// for an admin when Room is empty), the newest Limit before Before.
type ReadAudit struct {
	Type   string  `json:"type"`
	Room   string  `json:"room,omitempty"`
	Before *uint64 `json:"before,omitempty"`
	Limit  *int    `json:"limit,omitempty"`
	Ref    string  `json:"ref,omitempty"`
}

// Mod tells a room's members of a moderation action: Action on Nick by
// By, with the reason and, for a timed ban or mute, when it ends.
type Mod struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	Action string `json:"action"`
	Nick   string `json:"nick,omitempty"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	Until  int64  `json:"until,omitempty"` // Unix milliseconds
}

// Topic is a room's topic: sent on join when it has one, and to its
// members when it changes.
type Topic struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Topic string `json:"topic"`
	By    string `json:"by,omitempty"`
	TS    int64  `json:"ts,omitempty"`
}

// RoomInfo is one room of a rooms answer.
type RoomInfo struct {
	Room  string `json:"room"`
	Count int    `json:"count"`
	Topic string `json:"topic,omitempty"`
}

// RoomList answers ListRooms.
type RoomList struct {
	Type  string     `json:"type"`
	Total int        `json:"total"`
	Rooms []RoomInfo `json:"rooms"`
	More  bool       `json:"more"`
	Ref   string     `json:"ref,omitempty"`
}

// AuditEntry is one moderation action as the audit log keeps it.
type AuditEntry struct {
	Seq    uint64 `json:"seq"`
	TS     int64  `json:"ts"` // Unix milliseconds
	Node   string `json:"node,omitempty"`
	Action string `json:"action"`
	Room   string `json:"room,omitempty"`
	By     string `json:"by"`               // the actor's nick
	ByAcct string `json:"by_account"`       // the actor's account
	Target string `json:"target,omitempty"` // the target's account
	Nick   string `json:"nick,omitempty"`   // the target's nick, when it was online
	Reason string `json:"reason,omitempty"`
	Until  int64  `json:"until,omitempty"` // Unix milliseconds
}

// AuditPageMsg answers ReadAudit, newest entry last.
type AuditPageMsg struct {
	Type    string       `json:"type"`
	Room    string       `json:"room,omitempty"`
	Entries []AuditEntry `json:"entries"`
	More    bool         `json:"more"`
	Ref     string       `json:"ref,omitempty"`
}

// ServerBan bans (server_ban) or unbans (server_unban) an account or an
// address or CIDR network from the whole server; Type says which.
type ServerBan struct {
	Type     string `json:"type"`
	Account  string `json:"account,omitempty"`
	Address  string `json:"address,omitempty"`
	Duration *int64 `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Ref      string `json:"ref,omitempty"`
}

// ListBans asks for a page of the server bans and the lockdown level.
type ListBans struct {
	Type   string `json:"type"`
	Offset int    `json:"offset,omitempty"`
	Limit  *int   `json:"limit,omitempty"`
	Ref    string `json:"ref,omitempty"`
}

// BanInfo is one server ban: an account or an address or network, who
// gave it, why, when (Unix ms) and until when (0: until lifted).
type BanInfo struct {
	Account string `json:"account,omitempty"`
	Address string `json:"address,omitempty"`
	By      string `json:"by"`
	Reason  string `json:"reason,omitempty"`
	At      int64  `json:"at"`
	Until   int64  `json:"until,omitempty"`
}

// BanList answers ListBans.
type BanList struct {
	Type     string    `json:"type"`
	Lockdown string    `json:"lockdown"`
	Total    int       `json:"total"`
	Bans     []BanInfo `json:"bans"`
	More     bool      `json:"more"`
	Ref      string    `json:"ref,omitempty"`
}

// Revoke refuses an account's tokens issued before IssuedBefore (Unix
// ms; 0: now), or the one token whose jti is JTI.
type Revoke struct {
	Type         string `json:"type"`
	Account      string `json:"account,omitempty"`
	IssuedBefore int64  `json:"issued_before,omitempty"`
	JTI          string `json:"jti,omitempty"`
	Ref          string `json:"ref,omitempty"`
}

// SetLockdown sets the lockdown level: off, accounts or admins.
type SetLockdown struct {
	Type  string `json:"type"`
	Level string `json:"level"`
	Ref   string `json:"ref,omitempty"`
}

// MessageType returns Type, which the sender sets: one struct serves the
// nine request types that name a target.
func (m *Target) MessageType() string { return m.Type }
func (m *Target) stamp()              {}

func (m *ServerBan) MessageType() string { return m.Type }
func (m *ServerBan) stamp()              {}
func (*ListBans) MessageType() string    { return TypeServerBans }
func (m *ListBans) stamp()               { m.Type = TypeServerBans }
func (*BanList) MessageType() string     { return TypeServerBans }
func (m *BanList) stamp()                { m.Type = TypeServerBans }
func (*Revoke) MessageType() string      { return TypeRevoke }
func (m *Revoke) stamp()                 { m.Type = TypeRevoke }
func (*SetLockdown) MessageType() string { return TypeLockdown }
func (m *SetLockdown) stamp()            { m.Type = TypeLockdown }

func (*SetTopic) MessageType() string     { return TypeTopic }
func (*SetPrivate) MessageType() string   { return TypePrivate }
func (*ListRooms) MessageType() string    { return TypeRooms }
func (*ReadAudit) MessageType() string    { return TypeAudit }
func (*Mod) MessageType() string          { return TypeMod }
func (*Topic) MessageType() string        { return TypeTopic }
func (*RoomList) MessageType() string     { return TypeRooms }
func (*AuditPageMsg) MessageType() string { return TypeAudit }

func (m *SetTopic) stamp()     { m.Type = TypeTopic }
func (m *SetPrivate) stamp()   { m.Type = TypePrivate }
func (m *ListRooms) stamp()    { m.Type = TypeRooms }
func (m *ReadAudit) stamp()    { m.Type = TypeAudit }
func (m *Mod) stamp()          { m.Type = TypeMod }
func (m *Topic) stamp()        { m.Type = TypeTopic }
func (m *RoomList) stamp()     { m.Type = TypeRooms }
func (m *AuditPageMsg) stamp() { m.Type = TypeAudit }

// TargetTypes are the request types that name a target account.
var TargetTypes = []string{TypeOp, TypeDeop, TypeKick, TypeBan, TypeUnban, TypeMute, TypeUnmute, TypeInvite, TypeUninvite}

func init() {
	for _, t := range append(TargetTypes, TypeTopic, TypePrivate, TypeRooms, TypeAudit,
		TypeServerBan, TypeServerUnban, TypeServerBans, TypeRevoke, TypeLockdown) {
		requestTypes[t] = true
	}
	for _, t := range []string{TypeMod, TypeTopic, TypeRooms, TypeAudit, TypeServerBans} {
		eventTypes[t] = true
	}
}
