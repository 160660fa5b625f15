package codec

import stdjson "encoding/json"

// Message types of the wire contract.
const (
	TypeLogin    = "login"
	TypeSay      = "say"
	TypeDM       = "dm"
	TypeJoin     = "join"
	TypeLeave    = "leave"
	TypeWho      = "who"
	TypeHistory  = "history"
	TypeRefresh  = "refresh"
	TypePing     = "ping"
	TypePong     = "pong"
	TypeQuit     = "quit"
	TypeWelcome  = "welcome"
	TypeMsg      = "msg"
	TypeJoined   = "joined"
	TypeLeft     = "left"
	TypePresence = "presence"
	TypeGap      = "gap"
	TypeRecover  = "recovered"
	TypeUsers    = "users"
	TypeAck      = "ack"
	TypeError    = "error"
	TypeBye      = "bye"
)

// Message is a frame that can be encoded. Each message struct sets its own
// `type` field when encoded, so callers never fill Type by hand.
type Message interface {
	// MessageType returns the value of the frame's `type` field.
	MessageType() string
	stamp()
}

// Client to server.

// Login must be the first frame of a session.
type Login struct {
	Type  string `json:"type"`
	Nick  string `json:"nick"`
	Token string `json:"token,omitempty"`
	// Resume is the token of the session's previous connection (from its
	// Welcome): it takes back a nick the server holds after a drop.
	Resume string `json:"resume,omitempty"`
	// Since and Epoch resume the lobby: the last seq the client saw there
	// and the lobby's epoch then. Since is nil for no resume.
	Since *uint64 `json:"since,omitempty"`
	Epoch string  `json:"epoch,omitempty"`
	Ref   string  `json:"ref,omitempty"`
}

// Say sends Body to every other member of Room.
type Say struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	Body string `json:"body"`
	// ReplyTo is the seq of the room message this one answers.
	ReplyTo uint64 `json:"reply_to,omitempty"`
	// ID is the client's idempotency key for the message (at most MaxRef
	// bytes): every member receives it with the message, so a client can
	// tell a retry that was stored twice.
	ID  string `json:"id,omitempty"`
	Ref string `json:"ref,omitempty"`
}

// DM sends Body to the user named To, or to the account Account (token
// logins; online or not).
type DM struct {
	Type    string `json:"type"`
	To      string `json:"to,omitempty"`
	Account string `json:"account,omitempty"`
	Body    string `json:"body"`
	Ref     string `json:"ref,omitempty"`
}

// Join enters Room, creating it on first use.
type Join struct {
	Type string `json:"type"`
	Room string `json:"room"`
	// Since and Epoch resume the room: the last seq the client saw there
	// and the room's epoch then. Since is nil for no resume.
	Since *uint64 `json:"since,omitempty"`
	Epoch string  `json:"epoch,omitempty"`
	Ref   string  `json:"ref,omitempty"`
}

// History asks for a page of Room's messages: with Before, the newest
// Limit before it; with Since, the oldest Limit after it; with neither, the
// newest Limit.
// DM asks for the account's direct messages instead of a room's.
type History struct {
	Type   string  `json:"type"`
	Room   string  `json:"room,omitempty"`
	DM     bool    `json:"dm,omitempty"`
	Since  *uint64 `json:"since,omitempty"`
	Before *uint64 `json:"before,omitempty"`
	Limit  *int    `json:"limit,omitempty"`
	Ref    string  `json:"ref,omitempty"`
}

// Leave exits Room.
type Leave struct {
	Type string `json:"type"`
	Room string `json:"room"`
	Ref  string `json:"ref,omitempty"`
}

// Who asks for the nicks of Room, or of everyone online when Room is empty,
// sorted, one page at a time starting after the nick After.
type Who struct {
	Type  string `json:"type"`
	Room  string `json:"room,omitempty"`
	After string `json:"after,omitempty"`
	Ref   string `json:"ref,omitempty"`
}

// Ping asks the peer for a Pong; either side may send it.
type Ping struct {
	Type string `json:"type"`
}

// Pong answers a Ping.
type Pong struct {
	Type string `json:"type"`
}

// Quit ends the session; the server answers Bye with reason quit.
type Quit struct {
	Type string `json:"type"`
}

// Server to client.

// Welcome answers a successful Login.
type Welcome struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Nick   string `json:"nick"`
	Room   string `json:"room"`
	Online int    `json:"online"`
	// Resume is this session's resume token, for the next Login after a
	// drop.
	Resume string `json:"resume,omitempty"`
	// Epoch and Seq are the lobby's epoch and last seq when the session
	// entered it; always present (seq 0: the lobby has no message yet).
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// Expires is when the login's token expires, Unix milliseconds
	// (logins with a token only): refresh before then.
	Expires int64 `json:"expires,omitempty"`
	// DMEpoch and DMSeq name the account's direct messages (logins with
	// a token only, and then both present, dm_seq 0 included): their
	// epoch and last seq, for history with dm.
	DMEpoch string  `json:"dm_epoch,omitempty"`
	DMSeq   *uint64 `json:"dm_seq,omitempty"`
	Ref     string  `json:"ref,omitempty"`
}

// Msg is a room message (Room set, Seq > 0) or a direct message (To set).
type Msg struct {
	Type string `json:"type"`
	From string `json:"from"`
	Room string `json:"room,omitempty"`
	To   string `json:"to,omitempty"`
	Body string `json:"body"`
	TS   int64  `json:"ts"`
	Seq  uint64 `json:"seq,omitempty"`
	ID   string `json:"id,omitempty"` // the say's ID, when its sender gave one
	// Account is the sender's account (token logins): who may edit it.
	Account string `json:"account,omitempty"`
	// ReplyTo is the seq of the room message it answers.
	ReplyTo uint64 `json:"reply_to,omitempty"`
	// Mentions are the nicks its body names with @, as the server
	// resolved them.
	Mentions []string `json:"mentions,omitempty"`
	// In history and resume, the message as it is now: when it was last
	// edited (Unix ms; Body is the new text), whether it was deleted (a
	// tombstone: no body), and its reactions.
	Edited    int64           `json:"edited,omitempty"`
	Deleted   bool            `json:"deleted,omitempty"`
	Reactions []ReactionCount `json:"reactions,omitempty"`
	// API marks a message the application posted through the server API
	// (docs/API.md), under a sender name of its choosing.
	API bool `json:"api,omitempty"`
}

// Joined tells the members of Room that Nick joined it.
type Joined struct {
	Type string `json:"type"`
	Nick string `json:"nick"`
	Room string `json:"room"`
}

// Left tells the members of Room that Nick left it, and why.
type Left struct {
	Type   string `json:"type"`
	Nick   string `json:"nick"`
	Room   string `json:"room"`
	Reason Reason `json:"reason"`
}

// Presence replaces Joined and Left in rooms above the presence limit.
type Presence struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	Count  int    `json:"count"`
	Joined int    `json:"joined"`
	Left   int    `json:"left"`
}

// Gap tells the members of Room that the messages First to Last (their
// seqs, inclusive) are lost to them: the cluster could not deliver them
// and no longer has them.
type Gap struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// Users answers Who with one page of sorted nicks.
type Users struct {
	Type  string   `json:"type"`
	Room  string   `json:"room,omitempty"`
	Count int      `json:"count"`
	Nicks []string `json:"nicks"`
	More  bool     `json:"more"`
	// Roles maps the page's nicks that hold a role in the room (owner,
	// operator) to it.
	Roles map[string]string `json:"roles,omitempty"`
	Ref   string            `json:"ref,omitempty"`
}

// Ack tells that the request carrying Ref succeeded. Seq is always
// present: a say's seq, a join's room's last seq (0 for a new room), a DM
// from an account's seq in the account's DMs, else 0.
type Ack struct {
	Type string `json:"type"`
	Ref  string `json:"ref"`
	Seq  uint64 `json:"seq"`
	// Epoch answers a join: the room's epoch, with Seq its last seq.
	Epoch string `json:"epoch,omitempty"`
	// Expires answers a refresh: the new token's exp, Unix milliseconds.
	Expires int64 `json:"expires,omitempty"`
}

// Refresh replaces the session's token with a new one for the same
// account before the old one expires.
type Refresh struct {
	Type  string `json:"type"`
	Token string `json:"token"`
	Ref   string `json:"ref,omitempty"`
}

// Page answers History: the messages, oldest first, each as a msg frame's
// JSON; More when the room has more in the direction asked.
type Page struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	DM   bool   `json:"dm,omitempty"` // the account's direct messages, not a room's

	Epoch string               `json:"epoch"`
	Msgs  []stdjson.RawMessage `json:"msgs"`
	More  bool                 `json:"more"`
	Ref   string               `json:"ref,omitempty"`
}

// Recovered follows the replay of a resumed room: Recovered tells whether
// every message after the client's seq was sent.
type Recovered struct {
	Type      string `json:"type"`
	Room      string `json:"room"`
	Recovered bool   `json:"recovered"`
}

// ErrorMsg tells that a request failed.
type ErrorMsg struct {
	Type    string `json:"type"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
	// Reason is, for rejected, the application's own code for it.
	Reason string `json:"reason,omitempty"`
}

// Bye is the last frame before the server closes the connection.
type Bye struct {
	Type   string `json:"type"`
	Reason Reason `json:"reason"`
	// Message is, for disconnected, the application's words for it.
	Message string `json:"message,omitempty"`
}

func (*Login) MessageType() string     { return TypeLogin }
func (*Say) MessageType() string       { return TypeSay }
func (*DM) MessageType() string        { return TypeDM }
func (*Join) MessageType() string      { return TypeJoin }
func (*Leave) MessageType() string     { return TypeLeave }
func (*Who) MessageType() string       { return TypeWho }
func (*Ping) MessageType() string      { return TypePing }
func (*Pong) MessageType() string      { return TypePong }
func (*Quit) MessageType() string      { return TypeQuit }
func (*Welcome) MessageType() string   { return TypeWelcome }
func (*Msg) MessageType() string       { return TypeMsg }
func (*Joined) MessageType() string    { return TypeJoined }
func (*Left) MessageType() string      { return TypeLeft }
func (*Presence) MessageType() string  { return TypePresence }
func (*Gap) MessageType() string       { return TypeGap }
func (*History) MessageType() string   { return TypeHistory }
func (*Refresh) MessageType() string   { return TypeRefresh }
func (*Page) MessageType() string      { return TypeHistory }
func (*Recovered) MessageType() string { return TypeRecover }
func (*Users) MessageType() string     { return TypeUsers }
func (*Ack) MessageType() string       { return TypeAck }
func (*ErrorMsg) MessageType() string  { return TypeError }
func (*Bye) MessageType() string       { return TypeBye }

func (m *Login) stamp()     { m.Type = TypeLogin }
func (m *Say) stamp()       { m.Type = TypeSay }
func (m *DM) stamp()        { m.Type = TypeDM }
func (m *Join) stamp()      { m.Type = TypeJoin }
func (m *Leave) stamp()     { m.Type = TypeLeave }
func (m *Who) stamp()       { m.Type = TypeWho }
func (m *Ping) stamp()      { m.Type = TypePing }
func (m *Pong) stamp()      { m.Type = TypePong }
func (m *Quit) stamp()      { m.Type = TypeQuit }
func (m *Welcome) stamp()   { m.Type = TypeWelcome }
func (m *Msg) stamp()       { m.Type = TypeMsg }
func (m *Joined) stamp()    { m.Type = TypeJoined }
func (m *Left) stamp()      { m.Type = TypeLeft }
func (m *Presence) stamp()  { m.Type = TypePresence }
func (m *Gap) stamp()       { m.Type = TypeGap }
func (m *History) stamp()   { m.Type = TypeHistory }
func (m *Refresh) stamp()   { m.Type = TypeRefresh }
func (m *Page) stamp()      { m.Type = TypeHistory }
func (m *Recovered) stamp() { m.Type = TypeRecover }
func (m *Users) stamp()     { m.Type = TypeUsers }
func (m *Ack) stamp()       { m.Type = TypeAck }
func (m *ErrorMsg) stamp()  { m.Type = TypeError }
func (m *Bye) stamp()       { m.Type = TypeBye }

// Request is a decoded client-to-server frame: the union of the fields of
// every request type. Which fields mean something depends on Type; fields a
// type does not define are ignored.
type Request struct {
	Type   string  `json:"type"`
	Ref    string  `json:"ref"`
	Nick   string  `json:"nick"`
	Token  string  `json:"token"`
	Resume string  `json:"resume"`
	Room   string  `json:"room"`
	Body   string  `json:"body"`
	To     string  `json:"to"`
	After  string  `json:"after"`
	ID     string  `json:"id"`
	Since  *uint64 `json:"since"`
	Before *uint64 `json:"before"`
	Limit  *int    `json:"limit"`
	Epoch  string  `json:"epoch"`
	DM     bool    `json:"dm"`
	// The moderation requests' (moderation.go): the target's account, a
	// ban's or mute's length in seconds, the reason; a topic, a room's
	// privacy, a rooms page's offset.
	Account  string  `json:"account"`
	Duration *int64  `json:"duration"`
	Reason   string  `json:"reason"`
	Topic    *string `json:"topic"`
	Private  *bool   `json:"private"`
	Offset   int     `json:"offset"`
	// The conversation features' (conversation.go): the seq a request
	// amends, marks or (ReplyTo) answers; a reaction, and whether it is
	// taken back.
	Seq     uint64 `json:"seq"`
	ReplyTo uint64 `json:"reply_to"`
	Emoji   string `json:"emoji"`
	Remove  bool   `json:"remove"`
	// Server-wide moderation's: an address or CIDR network to ban, the
	// time before which an account's tokens are revoked (Unix ms), a
	// token's id, a lockdown level.
	Address      string `json:"address"`
	IssuedBefore int64  `json:"issued_before"`
	JTI          string `json:"jti"`
	Level        string `json:"level"`
}

// Event is a decoded server-to-client frame: the union of the fields of
// every server message. Joined and Left are the counts of a presence frame
// (the nick of a joined or left frame is in Nick).
type Event struct {
	Type   string  `json:"type"`
	Ref    string  `json:"ref"`
	ID     string  `json:"id"`
	Nick   string  `json:"nick"`
	Room   string  `json:"room"`
	Online int     `json:"online"`
	Resume string  `json:"resume"`
	From   string  `json:"from"`
	To     string  `json:"to"`
	Body   string  `json:"body"`
	TS     int64   `json:"ts"`
	Seq    uint64  `json:"seq"`
	Reason Reason  `json:"reason"`
	Count  int     `json:"count"`
	Joined int     `json:"joined"`
	Left   int     `json:"left"`
	First  uint64  `json:"first"`
	Last   uint64  `json:"last"`
	Epoch  string  `json:"epoch"`
	DM     bool    `json:"dm"`
	Msgs   []Event `json:"msgs"`
	// Expires is when the session's token expires (welcome, ack of a
	// refresh), Unix milliseconds; DMEpoch and DMSeq name the account's
	// direct messages at login (welcome).
	Expires int64  `json:"expires"`
	DMEpoch string `json:"dm_epoch"`
	DMSeq   uint64 `json:"dm_seq"`
	// Recovered is a recovered notice's answer.
	Recovered bool     `json:"recovered"`
	Nicks     []string `json:"nicks"`
	More      bool     `json:"more"`
	Code      Code     `json:"code"`
	Message   string   `json:"message"`
	// Room governance (moderation.go): a mod notice's action, actor and
	// end; a topic; a rooms answer's total and page; an audit page.
	Action  string       `json:"action"`
	By      string       `json:"by"`
	Until   int64        `json:"until"`
	Topic   string       `json:"topic"`
	Total   int          `json:"total"`
	Rooms   []RoomInfo   `json:"rooms"`
	Entries []AuditEntry `json:"entries"`
	// A users answer's roles (nick to owner or operator).
	Roles map[string]string `json:"roles"`
	// The conversation features' (conversation.go): a message's sender
	// account, the message it answers and the nicks it mentions, its
	// state in history; the message an event amends, a reaction; read
	// markers.
	Account   string          `json:"account"`
	ReplyTo   uint64          `json:"reply_to"`
	Mentions  []string        `json:"mentions"`
	Edited    int64           `json:"edited"`
	Deleted   bool            `json:"deleted"`
	Reactions []ReactionCount `json:"reactions"`
	Of        uint64          `json:"of"`
	Emoji     string          `json:"emoji"`
	Remove    bool            `json:"remove"`
	Marks     []MarkInfo      `json:"marks"`
	// A server_bans answer's bans and lockdown level.
	Bans     []BanInfo `json:"bans"`
	Lockdown string    `json:"lockdown"`
	// API marks a message the application posted (server API).
	API bool `json:"api"`
}

var requestTypes = map[string]bool{
	TypeLogin: true, TypeSay: true, TypeDM: true, TypeJoin: true, TypeLeave: true,
	TypeWho: true, TypePing: true, TypePong: true, TypeQuit: true, TypeHistory: true, TypeRefresh: true,
}

var eventTypes = map[string]bool{
	TypeWelcome: true, TypeMsg: true, TypeJoined: true, TypeLeft: true, TypePresence: true, TypeGap: true,
	TypeHistory: true, TypeRecover: true,
	TypeUsers: true, TypeAck: true, TypeError: true, TypePing: true, TypePong: true, TypeBye: true,
}
