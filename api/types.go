// Package api is Parley's server API as an application sees it
// (docs/API.md): the requests and answers of every method, the events
// webhooks carry, the pre-send hook's contract, a client, and the
// signature check a webhook receiver runs. The server uses the same
// types, so this package is the contract.
package api

import "encoding/json"

// Methods, each served as POST /api/<method> with a JSON body.
const (
	MethodPublish     = "publish"
	MethodBroadcast   = "broadcast"
	MethodDM          = "dm"
	MethodDisconnect  = "disconnect"
	MethodRoomCreate  = "room_create"
	MethodRoomSet     = "room_set"
	MethodRoomInfo    = "room_info"
	MethodRooms       = "rooms"
	MethodRoomMembers = "room_members"
	MethodModerate    = "moderate"
	MethodPresence    = "presence"
	MethodHistory     = "history"
	MethodStats       = "stats"
	MethodBatch       = "batch"
)

// ReadOnly are the methods a read-only key may call.
var ReadOnly = map[string]bool{
	MethodRoomInfo: true, MethodRooms: true, MethodRoomMembers: true,
	MethodPresence: true, MethodHistory: true, MethodStats: true,
}

// Error is the body of every refused request: the protocol's code
// (docs/PROTOCOL.md) and words for people.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Publish posts a message to a room, as From (a name by the nick rule,
// which members see) and, with Account, as that bot account, which may
// then edit it. ID is an idempotency key members receive; ReplyTo
// answers a message.
type Publish struct {
	Room    string `json:"room"`
	From    string `json:"from"`
	Account string `json:"account,omitempty"`
	Body    string `json:"body"`
	ID      string `json:"id,omitempty"`
	ReplyTo uint64 `json:"reply_to,omitempty"`
}

// Published answers publish: the message's seq in the room, once
// stored.
type Published struct {
	Room string `json:"room"`
	Seq  uint64 `json:"seq"`
}

// Broadcast posts one message to several rooms (at most MaxBroadcast).
type Broadcast struct {
	Rooms   []string `json:"rooms"`
	From    string   `json:"from"`
	Account string   `json:"account,omitempty"`
	Body    string   `json:"body"`
}

// MaxBroadcast bounds a broadcast's rooms.
const MaxBroadcast = 100

// Broadcasted answers broadcast, room by room in the order asked.
type Broadcasted struct {
	Results []RoomResult `json:"results"`
}

// RoomResult is one room's outcome in a broadcast.
type RoomResult struct {
	Room  string `json:"room"`
	Seq   uint64 `json:"seq,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// DM sends a direct message to an account, from From (and, with
// FromAccount, as that bot account).
type DM struct {
	Account     string `json:"account"`
	From        string `json:"from"`
	FromAccount string `json:"from_account,omitempty"`
	Body        string `json:"body"`
}

// DMSent answers dm: delivered to a session online, or stored for the
// account's next login (an offline-message webhook event then follows).
type DMSent struct {
	Delivered bool `json:"delivered"`
	Stored    bool `json:"stored"`
}

// Disconnect ends every session of an account, on every node, with bye
// disconnected and Message.
type Disconnect struct {
	Account string `json:"account"`
	Message string `json:"message,omitempty"`
}

// Disconnected answers disconnect: the sessions this node ended (the
// other nodes end theirs on their own).
type Disconnected struct {
	Sessions int `json:"sessions"`
}

// RoomCreate makes a room known before anyone joins it, with an owner
// account, a topic and privacy; it fails with bad_request when the room
// has rules already (use room_set).
type RoomCreate struct {
	Room    string  `json:"room"`
	Owner   string  `json:"owner,omitempty"`
	Topic   *string `json:"topic,omitempty"`
	Private *bool   `json:"private,omitempty"`
}

// RoomSet changes what it names of a room's rules.
type RoomSet struct {
	Room    string  `json:"room"`
	Owner   *string `json:"owner,omitempty"`
	Topic   *string `json:"topic,omitempty"`
	Private *bool   `json:"private,omitempty"`
}

// RoomRef names a room.
type RoomRef struct {
	Room string `json:"room"`
}

// RoomInfo is a room as the API shows it.
type RoomInfo struct {
	Room    string   `json:"room"`
	Members int      `json:"members"`
	Seq     uint64   `json:"seq"`
	Epoch   string   `json:"epoch,omitempty"`
	Owner   string   `json:"owner,omitempty"`
	Ops     []string `json:"ops,omitempty"`
	Topic   string   `json:"topic,omitempty"`
	Private bool     `json:"private,omitempty"`
}

// Rooms answers rooms: every room with members anywhere or with rules.
type Rooms struct {
	Rooms []RoomInfo `json:"rooms"`
}

// RoomMembers asks for a page of a room's members.
type RoomMembers struct {
	Room  string `json:"room"`
	After string `json:"after,omitempty"` // the last nick of the page before
	Limit int    `json:"limit,omitempty"` // 1 to 1000; 0: 100
}

// Members answers room_members.
type Members struct {
	Members []Member `json:"members"`
	More    bool     `json:"more"`
	Count   int      `json:"count"`
}

// Member is someone in a room, or online.
type Member struct {
	Nick    string `json:"nick"`
	Account string `json:"account,omitempty"`
	Node    string `json:"node,omitempty"`
}

// Moderate applies a room's moderation action to an account, as an
// admin: ban, unban, mute, unmute, kick, op, deop, invite, uninvite.
// Duration (seconds) is for ban, mute and invite; absent: no end.
type Moderate struct {
	Room     string `json:"room"`
	Action   string `json:"action"`
	Account  string `json:"account"`
	Duration *int64 `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Presence asks whether an account is online.
type Presence struct {
	Account string `json:"account"`
}

// Present answers presence.
type Present struct {
	Account  string `json:"account"`
	Online   bool   `json:"online"`
	Nick     string `json:"nick,omitempty"`
	Node     string `json:"node,omitempty"`
	Sessions int    `json:"sessions,omitempty"` // on the node that answered
}

// History asks for a page of a room's messages: the newest Limit before
// Before, or the oldest after Since.
type History struct {
	Room   string  `json:"room"`
	Since  *uint64 `json:"since,omitempty"`
	Before *uint64 `json:"before,omitempty"`
	Limit  *int    `json:"limit,omitempty"`
}

// Page answers history: the messages as members receive them
// (docs/PROTOCOL.md "msg"), oldest first.
type Page struct {
	Room  string            `json:"room"`
	Epoch string            `json:"epoch,omitempty"`
	Msgs  []json.RawMessage `json:"msgs"`
	More  bool              `json:"more"`
}

// Stats answers stats: this node's view.
type Stats struct {
	Node        string `json:"node,omitempty"`
	Conns       int    `json:"conns"`
	Online      int    `json:"online"`
	Rooms       int    `json:"rooms"`
	HeldNicks   int    `json:"held_nicks"`
	Nodes       int    `json:"nodes,omitempty"`
	UsersOnline int    `json:"users_online"` // across the cluster
	UptimeSec   int64  `json:"uptime_sec"`
}

// OK answers the methods that return nothing else.
type OK struct {
	OK bool `json:"ok"`
}

// Batch runs up to MaxBatch requests in order, each as if alone, and
// answers each.
type Batch struct {
	Requests []BatchRequest `json:"requests"`
}

// MaxBatch bounds a batch.
const MaxBatch = 100

// BatchRequest is one request of a batch.
type BatchRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// Batched answers a batch, one reply per request in order.
type Batched struct {
	Replies []BatchReply `json:"replies"`
}

// BatchReply is a request's answer in a batch: its result, or its error.
type BatchReply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}
