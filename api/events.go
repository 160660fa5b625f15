package api

// Webhook event types (docs/API.md "Webhooks").
const (
	// EventMessage: a room message was sequenced, or edited, deleted or
	// reacted to (Kind says which).
	EventMessage = "message"
	// EventDM: a direct message was delivered or kept.
	EventDM = "dm"
	// EventOfflineDM: a direct message is waiting for an account with no
	// session online: the event to send a push notification on.
	EventOfflineDM = "offline_dm"
	// EventOfflineMention: a room message mentions an account with no
	// session online.
	EventOfflineMention = "offline_mention"
	// EventJoin and EventLeave: a member joined or left one of the rooms
	// the webhook's rooms name.
	EventJoin  = "join"
	EventLeave = "leave"
	// EventModeration: an action entered the audit log.
	EventModeration = "moderation"
	// EventSessionOpen and EventSessionClose: a session logged in, or
	// ended.
	EventSessionOpen  = "session_open"
	EventSessionClose = "session_close"
)

// EventTypes lists every event type.
var EventTypes = []string{EventMessage, EventDM, EventOfflineDM, EventOfflineMention,
	EventJoin, EventLeave, EventModeration, EventSessionOpen, EventSessionClose}

// Event is one webhook event. ID is unique (deliveries are at least
// once: de-duplicate by it); the other fields are those of its type.
type Event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	TS   int64  `json:"ts"`             // Unix milliseconds
	Node string `json:"node,omitempty"` // the node it happened on, in a cluster

	Room    string   `json:"room,omitempty"`
	Seq     uint64   `json:"seq,omitempty"`
	Kind    string   `json:"kind,omitempty"` // message: edited, deleted or reaction for an amendment
	Of      uint64   `json:"of,omitempty"`   // the amended message's seq
	From    string   `json:"from,omitempty"` // the sender's nick
	Sender  string   `json:"sender,omitempty"`
	Body    string   `json:"body,omitempty"`
	ReplyTo uint64   `json:"reply_to,omitempty"`
	Mention []string `json:"mentions,omitempty"`

	// Account is, for offline_dm and offline_mention, the account to
	// notify; for dm, the recipient's; for session and membership
	// events, the session's.
	Account string `json:"account,omitempty"`
	Nick    string `json:"nick,omitempty"` // the account's nick, as it was last seen
	To      string `json:"to,omitempty"`   // dm: how the sender named the recipient
	// Preview is the start of the body (at most PreviewBytes, cut at a
	// character), for a push notification.
	Preview string `json:"preview,omitempty"`

	Action string `json:"action,omitempty"` // moderation: the audit entry's action
	Reason string `json:"reason,omitempty"` // moderation, leave, session_close
	By     string `json:"by,omitempty"`     // moderation: who acted
	Target string `json:"target,omitempty"` // moderation: the account acted on
}

// PreviewBytes bounds an event's Preview.
const PreviewBytes = 140

// Delivery is the body of one webhook POST: a batch of events, oldest
// first; the events of a room are in the room's order across batches.
type Delivery struct {
	Events []Event `json:"events"`
}

// Preview cuts body to at most PreviewBytes at a character boundary,
// with "…" when it cut.
func Preview(body string) string {
	if len(body) <= PreviewBytes {
		return body
	}
	cut := PreviewBytes - len("…")
	for cut > 0 && body[cut]&0xC0 == 0x80 {
		cut--
	}
	return body[:cut] + "…"
}

// HookRequest is the body the pre-send hook receives (docs/API.md
// "Pre-send hook"): a say (Room set) or a dm (To set) before the server
// sequences or delivers it.
type HookRequest struct {
	Type     string   `json:"type"` // say or dm
	Account  string   `json:"account,omitempty"`
	Nick     string   `json:"nick"`
	Room     string   `json:"room,omitempty"`
	To       string   `json:"to,omitempty"`
	Body     string   `json:"body"`
	ReplyTo  uint64   `json:"reply_to,omitempty"`
	Mentions []string `json:"mentions,omitempty"`
}

// Hook decisions.
const (
	HookAllow   = "allow"
	HookReject  = "reject"
	HookReplace = "replace"
)

// HookVerdict is the hook's answer. Reject carries the application's
// own Code (lower case letters, digits and _, at most 32) and Message,
// which the sender gets in an error rejected; replace carries the new
// Body.
type HookVerdict struct {
	Action  string `json:"action"`
	Body    string `json:"body,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}
