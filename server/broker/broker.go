// Package broker is the boundary between a Parley hub and the other nodes
// of its cluster. A hub always has a Broker: Local, in this package, for a
// single node, which completes every call inline and routes everything
// here; natsbroker's, for a cluster on NATS. The hub never asks which one
// it has. The hub implements Handler, through which a broker hands it the
// other nodes' traffic.
//
// Calls that need the other nodes take a done callback. A broker calls it
// exactly once: inline, before the method returns (Local always does), or
// later on a goroutine of its own. A broker never calls into the hub while
// holding a lock of its own, and never blocks a caller that holds a room
// lock: those methods (Append, Joined, Left) only enqueue.
package broker

import (
	"errors"
	"fmt"

	"parley/codec"
	"parley/server/metric"
)

// User is someone online: in the directory, or a member of a room.
type User struct {
	Key  string `json:"key"`            // identity key (codec.Name.Key)
	Nick string `json:"nick"`           // display nick
	Node string `json:"node,omitempty"` // the node it is on, when another
	// Account is its account's identity key; "" for a nick login. Room
	// governance acts on accounts.
	Account string `json:"account,omitempty"`
}

// Message is a room message to sequence.
type Message struct {
	Room string // the room's display name, which is its identity
	Key  string // the sender's identity key
	Nick string // the sender's display nick
	Body string
	ID   string // the sender's idempotency key for the say, if any
	TS   int64  // server time, Unix milliseconds
	// Token is the broker's own name for the say, which the hub hands back
	// unchanged in Append.
	Token string
	// Sender is the local session that said it, which gets an ack instead
	// of the message; nil for a say from another node. Never sent.
	Sender Replier
	// Ref is the ref of Sender's say, which the hub acks when the message
	// is stored. Never sent.
	Ref string
	// Conversation is what the message carries besides its text, or the
	// amendment it is.
	Conversation
}

// Conversation is a room message's sender account, the message it
// answers and the nicks it mentions; or, with Kind set (codec.TypeEdited,
// TypeDeleted, TypeReaction), an amendment of the earlier message Of,
// sequenced like a message: Body is then the new text or the reaction,
// and Remove takes a reaction back.
type Conversation struct {
	Kind     string   `json:"kind,omitempty"`
	Of       uint64   `json:"of,omitempty"`
	Remove   bool     `json:"remove,omitempty"`
	ReplyTo  uint64   `json:"reply_to,omitempty"`
	Mentions []string `json:"mentions,omitempty"`
	Account  string   `json:"account,omitempty"`
	// API: the application posted it through the server API.
	API bool `json:"api,omitempty"`
}

// Logged is a room message as a broker's log keeps it.
type Logged struct {
	Seq   uint64
	Frame []byte // the msg frame, length-prefixed, as members receive it
}

// Replier receives the answer to a say that another node sequences. The
// hub's sessions implement it. SayDone is safe from any goroutine.
type Replier interface {
	SayDone(ref string, seq uint64, err error)
}

// ErrUnsequenced is Say's answer when the room's sequence cannot be
// reached (the cluster link is down): the hub delivers the message to its
// own members only, without a seq.
var ErrUnsequenced = errors.New("broker: the room cannot be sequenced now")

// ErrNotOwner is Handler.Sequence's answer when this node does not hold
// the room (a forwarded say that arrived after the room moved).
var ErrNotOwner = errors.New("broker: this node does not sequence the room")

// Broker connects a hub to the other nodes. Every method is safe from any
// goroutine unless it says otherwise.
type Broker interface {
	// Start connects and starts the broker's goroutines; h receives the
	// other nodes' traffic from then on. It is called once, before any
	// other method.
	Start(h Handler) error
	// Stop says goodbye to the other nodes and stops the broker's
	// goroutines; it is called once, after the hub's sessions are gone.
	Stop()
	// Stats describes the cluster; nil for a single node.
	Stats() *Stats

	// ClaimNick claims a nick for a local login; done reports nick_taken,
	// too_many_sessions or unavailable. The hub has checked that no local
	// session holds the nick. An account's sessions may hold its nick on
	// several nodes at once; a login with the resume token of a session
	// whose nick another node holds for it takes that hold over (that node
	// is told through Handler.HoldTaken).
	ClaimNick(c NickClaim, done func(error))
	// NickSessions tells how many sessions the user with key has here now,
	// when that changed and is not 0: an account's sessions count toward
	// its limit on every node. It never blocks.
	NickSessions(key string, sessions int)
	// ReleaseNick tells that the user with key has no session here any
	// more. With resume (the last session's resume token) the hub holds
	// the nick for it a while: a cluster broker keeps this node's claim,
	// marked held for that token, until ReleaseNick(key, "") at the hold's
	// end, so that no other node hands the nick out meanwhile but a resume
	// through any node takes it back. It never blocks.
	ReleaseNick(key string, resume string)
	// Elsewhere returns how many sessions the user with key has on other
	// nodes, from the broker's directory (0 on a single node). It never
	// blocks.
	Elsewhere(key string) int
	// Users returns one page of the users online everywhere whose sort key
	// (codec.SortKey) follows afterKey, whether more follow, and how many
	// are online in all.
	Users(afterKey string, limit int) (page []User, more bool, count int)
	// Lookup returns the user online with the nick key on another node
	// (with its Node), from the broker's directory; false when none is.
	// It never blocks: the caller may hold a room's lock.
	Lookup(key string) (User, bool)

	// Follow makes this node receive room's traffic, and returns through
	// done the room's members on other nodes and the last seq in the
	// room's log (0 if none): the first one the members who join now may
	// miss. The hub calls it before the room's first local member joins.
	Follow(room string, done func(remote []User, last uint64, err error))
	// Unfollow stops room's traffic: the room has no local member and is
	// not owned here. It never blocks.
	Unfollow(room string)
	// Say routes a local session's room message. Sequenced and stored
	// here at once, it returns the seq (the broker called
	// Handler.Sequence, and Append answered stored). Otherwise it returns
	// pending and calls r.SayDone later, after the message has been stored
	// and delivered to the local members. It returns ErrUnsequenced when
	// the sequence cannot be reached, or an error to answer with. Loop
	// goroutine of the sender, no lock held.
	Say(m Message, r Replier, ref string) (seq uint64, pending bool, err error)
	// Append hands over a message this node just sequenced, encoded once,
	// for the room's log. It reports whether the message is stored: then
	// the hub delivers it to the local members at once (Local does this).
	// Otherwise the broker stores it and then hands it back through
	// Handler.Deliver, like any other node's message, or drops it if the
	// store fails. The room's lock is held, which orders the room's
	// messages: it must not block.
	Append(m Message, seq uint64, frame []byte) (stored bool)
	// Joined and Left announce a local member's arrival and departure to
	// the other nodes. The room's lock is held: they must not block.
	Joined(room string, u User)
	Left(room, key, nick string, reason codec.Reason)

	// SendDM delivers a direct message (or an edit or a delete of one) to
	// the user's sessions on every other node (for a Copy, the sender's
	// other sessions); done reports no_such_user when none took it, or
	// unavailable.
	SendDM(dm DirectMessage, done func(error))
	// Members returns through done a room's members on the other nodes,
	// for a room this node does not follow.
	Members(room string, done func([]User))

	// ReadLog returns through done up to limit of the messages in room's
	// log with a seq after after, oldest first. Local has no log and
	// returns none.
	ReadLog(room string, after uint64, limit int, done func([]Logged, error))
	// Epoch names room's sequence as the broker's log keeps it; it
	// changes if that log starts again. It is empty when the broker keeps
	// no log (Local): the hub's own history is then the room's only one.
	Epoch(room string) string

	// Notice tells the other nodes of something that happened in a room
	// here, for their members and sessions (Handler.Noticed): a
	// moderation action, a topic, a member typing. It only enqueues: the
	// caller may hold the governance table's lock.
	Notice(m RoomNotice)
	// NoticeUser hands a droppable frame (a typing notice) to the user
	// with key on whatever node it is; nothing when it is on none. It
	// only enqueues.
	NoticeUser(key string, frame []byte)
	// RoomCounts returns the members other nodes last reported for their
	// rooms, for the room list; nil on a single node.
	RoomCounts() []RoomCount
}

// RoomNotice is something that happened in a room, as the other nodes
// act on it: the frame its members there get (Droppable: not to members
// with bytes still unsent, as for typing), and for a kick, the account
// (or, for a nick login, the nick key) whose sessions leave the room,
// with the reason.
type RoomNotice struct {
	Room      string       `json:"room"`
	Frame     []byte       `json:"frame,omitempty"`
	Droppable bool         `json:"droppable,omitempty"`
	Account   string       `json:"account,omitempty"`
	Key       string       `json:"key,omitempty"`
	Eject     codec.Reason `json:"eject,omitempty"` // kick or ban; "" when nobody leaves
}

// RoomCount is a room's members on one node.
type RoomCount struct {
	Room  string `json:"room"`
	Count int    `json:"count"`
}

// Handler is the hub, as a broker sees it. Every method is safe from any
// goroutine; the broker holds none of its locks while calling.
type Handler interface {
	// Sequence gives m the next seq of its room and hands it to
	// Broker.Append under the room's lock; if Append stored it, it
	// delivers it to the local members but the sender. It returns
	// ErrNotOwner if the room is not owned here (see Own).
	Sequence(m Message) (uint64, error)
	// Own tells the hub that this node sequences room from now on,
	// continuing after last, the last seq in the room's log: the hub keeps
	// the room and its seq with or without local members until Disown.
	Own(room string, last uint64)
	// Disown: this node no longer sequences room. The hub drops the room
	// once it has no local member, and then calls Unfollow.
	Disown(room string)
	// Deliver hands a stored message to the local members but its sender
	// (the session that said it, if it is here; else nil), in the order
	// of the room's log. A seq at or below the last one
	// delivered is dropped; one beyond the next is preceded by a gap notice
	// for the seqs the members will never get. Deliver reports whether the
	// frame was delivered.
	Deliver(room string, seq uint64, sender Replier, frame []byte) bool
	// RemoteJoined and RemoteLeft apply presence from another node, and
	// NodeDown the death of a node: each of its members leaves every room
	// with reason disconnect. NodeDown returns how many memberships ended.
	// A user (by u.Key) is a room's member while any node says so: u.Node
	// names the node each change comes from.
	RemoteJoined(room string, u User)
	RemoteLeft(room string, u User, reason codec.Reason)
	NodeDown(node string) int
	// DeliverDM hands a direct message (or an edit or a delete of one)
	// from another node to the local user dm.ToKey; it returns
	// codec.ErrNoSuchUser if there is none.
	DeliverDM(dm DirectMessage) error
	// HoldTaken: a login through another node took over the nick with
	// key, which this node held for a dropped session's resume token. The
	// hub forgets its hold without releasing the nick.
	HoldTaken(key string)
	// LocalMembers lists a room's members on this node.
	LocalMembers(room string) []User
	// LocalRooms lists the rooms with members on this node.
	LocalRooms() []string
	// LocalNick returns the display nick of the local user with key.
	LocalNick(key string) (string, bool)

	// RulesChanged replaces the rules kept under key (a room's name, or
	// the server-wide rules' key) with data, as the hub wrote them
	// (RulesStore.SaveRules) here or on another node; nil data: none. The
	// hub enforces them on its sessions.
	RulesChanged(key string, data []byte)
	// Audited adds an audit entry, numbered by the cluster, to the
	// hub's audit log: in the cluster's order, each once.
	Audited(e codec.AuditEntry)
	// Noticed applies what another node told of a room (Broker.Notice).
	Noticed(m RoomNotice)
	// NoticedUser hands a local user another node's droppable frame
	// (Broker.NoticeUser).
	NoticedUser(key string, frame []byte)
	// LocalRoomCounts lists the rooms with members on this node, and how
	// many, for the other nodes' room lists.
	LocalRoomCounts() []RoomCount
	// AccountChanged applies a record of the account table (read markers,
	// remembered nicks) that a node wrote (the hub's AccountStore).
	AccountChanged(data []byte)
}

// NickClaim is a login's claim of a nick: its key and display form, the
// session's account ("" for a nick login), the resume token it presented
// and the account's session limit.
type NickClaim struct {
	Key, Nick   string
	Account     string
	Resume      string
	MaxSessions int
}

// Stats describes a node's view of its cluster.
type Stats struct {
	Node      string // this node's id
	Connected bool   // the bus is up; false means degraded: local users only
	Peers     int    // other nodes heard within the dead-node bound
	Users     int    // users online in the whole cluster, as this node knows
	// Dropped counts bus messages dropped because the queue to the bus
	// was full (docs/CLUSTER.md).
	Dropped int64
	// Fenced counts room messages the log refused because another node
	// had claimed the room since this one did (docs/CLUSTER.md).
	Fenced int64
	// ForwardedSays counts says sent to their room's owner on another
	// node and answered; ForwardedSayTime is how long they took.
	ForwardedSays    uint64
	ForwardedSayTime metric.Snapshot
}

// DirectMessage is a direct message to the user ToKey (named ToNick),
// or, with Kind (codec.TypeEdited, codec.TypeDeleted), an edit or a
// delete of the one named ID, Body its new text.
type DirectMessage struct {
	ToKey   string `json:"to_key"`
	ToNick  string `json:"to"`
	From    string `json:"from"`
	Body    string `json:"body,omitempty"`
	TS      int64  `json:"ts"`
	ID      string `json:"id,omitempty"`      // the same in the sender's copy and the recipient's
	Account string `json:"account,omitempty"` // the sender's account: who may edit it
	Kind    string `json:"kind,omitempty"`
	API     bool   `json:"api,omitempty"` // the application sent it through the server API
	// Copy: the sender's own copy, for its account's sessions on other
	// nodes. ToKey is then the sender's nick key, ToNick still the
	// recipient's nick.
	Copy bool `json:"copy,omitempty"`
}

// OfflineDM is a direct message that waits for the account Account, which
// has no session online; To is how the sender named it.
type OfflineDM struct {
	Account string `json:"account"`
	From    string `json:"from"`
	To      string `json:"to"`
	Body    string `json:"body"`
	TS      int64  `json:"ts"`
	ID      string `json:"id,omitempty"`
	Sender  string `json:"sender,omitempty"` // the sender's account
	API     bool   `json:"api,omitempty"`
}

// ErrInboxFull is the refusal of a direct message for an offline account
// whose waiting messages, or the server's, are at their bound.
func ErrInboxFull(to string) error {
	return fmt.Errorf("%w: too many messages wait for %q (at most %d); try when it is online", codec.ErrRateLimited, to, codec.MaxOfflineDMs)
}
