package codec

import "time"

// Typing (docs/PROTOCOL.md "Typing"): a member says it is typing in a
// room or to a user; the server relays it, never stores it, and drops it
// first when a recipient is behind.
const TypeTyping = "typing"

// TypingEvery is how often the server relays one session's typing to
// one room or user, at most; more often is dropped without an error.
const TypingEvery = 3 * time.Second

// TypingShown is how long a client shows a typing notice it received,
// unless a message from that nick comes first or a new notice renews it.
const TypingShown = 5 * time.Second

// Typing says Nick is typing: in Room, or to the user To (a nick).
// Clients send it with Room or To; the server fills Nick.
type Typing struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	To   string `json:"to,omitempty"`
	Nick string `json:"nick,omitempty"`
	Ref  string `json:"ref,omitempty"`
}

func (*Typing) MessageType() string { return TypeTyping }
func (m *Typing) stamp()            { m.Type = TypeTyping }

func init() {
	requestTypes[TypeTyping] = true
	eventTypes[TypeTyping] = true
}
