package codec

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Conversation features (docs/PROTOCOL.md "Edits, deletes, reactions,
// replies and mentions", "Read markers"): requests that amend a room
// message by its seq, and the events that tell a room. Each amendment is
// itself a room event with a seq of its own, after the message it
// amends, so a client that resumes after it learns of it like any other.
const (
	TypeEdit   = "edit"
	TypeDelete = "delete"
	TypeReact  = "react"
	TypeMark   = "mark"
	// Events.
	TypeEdited   = "edited"
	TypeDeleted  = "deleted"
	TypeReaction = "reaction"
	TypeMarks    = "marks"
)

// Limits of the conversation features (docs/PROTOCOL.md "Limits").
const (
	MaxEmoji             = 32       // bytes of a reaction
	MaxReactionKinds     = 20       // distinct reactions on one message
	MaxReactionsPerUser  = 10       // reactions one account (or nick) holds on one message
	MaxReactionsPerMsg   = 1000     // reactions on one message, all kinds and users together
	MaxMentions          = 20       // nicks one message mentions; more @names are left as text
	MaxMarks             = 256      // read markers one account keeps; the least recently moved goes first
	MaxOfflineDMs        = 100      // direct messages that wait for one offline account
	MaxOfflineBytes      = 64 << 20 // bodies of the direct messages that wait, for all accounts together
	RememberedNickDays   = 30       // how long the server remembers the nick an account last used
	MaxRememberedNicks   = 1 << 18
	DefaultOfflineDMDays = 30 // how long a direct message waits for an offline account
)

// Edit replaces the body of the room message Seq (or, with DM, of the
// account's direct message Seq); only its author may.
type Edit struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	DM   bool   `json:"dm,omitempty"`
	Seq  uint64 `json:"seq"`
	Body string `json:"body"`
	Ref  string `json:"ref,omitempty"`
}

// Delete removes the room message Seq: its author, or the room's
// owner or an operator.
type Delete struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	DM   bool   `json:"dm,omitempty"`
	Seq  uint64 `json:"seq"`
	Ref  string `json:"ref,omitempty"`
}

// React adds Emoji to the room message Seq, or with Remove takes it back.
type React struct {
	Type   string `json:"type"`
	Room   string `json:"room,omitempty"`
	Seq    uint64 `json:"seq"`
	Emoji  string `json:"emoji"`
	Remove bool   `json:"remove,omitempty"`
	Ref    string `json:"ref,omitempty"`
}

// Mark moves the account's read marker in Room (or, with DM, in its
// direct messages) forward to Seq.
type Mark struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	DM   bool   `json:"dm,omitempty"`
	Seq  uint64 `json:"seq"`
	Ref  string `json:"ref,omitempty"`
}

// Edited tells a room that From edited the message Of: Body is its new
// text, TS when. Seq is the event's own. For a direct message, Room is
// empty, To names its recipient, ID the message (the same in both
// copies), and Of and Seq are the reader's own (absent where none is
// kept).
type Edited struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	To   string `json:"to,omitempty"`
	ID   string `json:"id,omitempty"`
	Seq  uint64 `json:"seq,omitempty"`
	Of   uint64 `json:"of,omitempty"`
	From string `json:"from"`
	Body string `json:"body"`
	TS   int64  `json:"ts"`
}

// Deleted tells a room (or, as Edited, a direct message's two sides)
// that From deleted the message Of.
type Deleted struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	To   string `json:"to,omitempty"`
	ID   string `json:"id,omitempty"`
	Seq  uint64 `json:"seq,omitempty"`
	Of   uint64 `json:"of,omitempty"`
	From string `json:"from"`
	TS   int64  `json:"ts"`
}

// Reaction tells a room that From added Emoji to the message Of, or with
// Remove took it back.
type Reaction struct {
	Type    string `json:"type"`
	Room    string `json:"room"`
	Seq     uint64 `json:"seq"`
	Of      uint64 `json:"of"`
	From    string `json:"from"`
	Account string `json:"account,omitempty"`
	Emoji   string `json:"emoji"`
	Remove  bool   `json:"remove,omitempty"`
	TS      int64  `json:"ts"`
}

// ReactionCount is one reaction on a message as history returns it: how
// many hold it, and whether the reader is one of them.
type ReactionCount struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	Me    bool   `json:"me,omitempty"`
}

// Marks gives read markers: every one of the account's after its login,
// then each one that moves, on any of its sessions.
type Marks struct {
	Type  string     `json:"type"`
	Marks []MarkInfo `json:"marks"`
}

// MarkInfo is one read marker: the last seq read in Room (or in the
// account's direct messages, DM), and, after login, how many messages
// from others came after it (Unread) and how many of those mention the
// account's nick (Mentions), counted in the history the server keeps.
type MarkInfo struct {
	Room     string `json:"room,omitempty"`
	DM       bool   `json:"dm,omitempty"`
	Seq      uint64 `json:"seq"`
	Unread   int    `json:"unread"`
	Mentions int    `json:"mentions"`
}

func (*Edit) MessageType() string     { return TypeEdit }
func (*Delete) MessageType() string   { return TypeDelete }
func (*React) MessageType() string    { return TypeReact }
func (*Mark) MessageType() string     { return TypeMark }
func (*Edited) MessageType() string   { return TypeEdited }
func (*Deleted) MessageType() string  { return TypeDeleted }
func (*Reaction) MessageType() string { return TypeReaction }
func (*Marks) MessageType() string    { return TypeMarks }
func (m *Edit) stamp()                { m.Type = TypeEdit }
func (m *Delete) stamp()              { m.Type = TypeDelete }
func (m *React) stamp()               { m.Type = TypeReact }
func (m *Mark) stamp()                { m.Type = TypeMark }
func (m *Edited) stamp()              { m.Type = TypeEdited }
func (m *Deleted) stamp()             { m.Type = TypeDeleted }
func (m *Reaction) stamp()            { m.Type = TypeReaction }
func (m *Marks) stamp()               { m.Type = TypeMarks }

func init() {
	for _, t := range []string{TypeEdit, TypeDelete, TypeReact, TypeMark} {
		requestTypes[t] = true
	}
	for _, t := range []string{TypeEdited, TypeDeleted, TypeReaction, TypeMarks} {
		eventTypes[t] = true
	}
}

// CheckEmoji checks a reaction: 1 to MaxEmoji bytes of printable text
// without spaces (an emoji, or a short name such as :party:).
func CheckEmoji(e string) error {
	if e == "" || len(e) > MaxEmoji || !utf8.ValidString(e) {
		return fmt.Errorf("%w: a reaction is 1 to %d bytes of text", ErrBadRequest, MaxEmoji)
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) && !isJoiner(r) {
			return fmt.Errorf("%w: a reaction holds no space or control character", ErrBadRequest)
		}
	}
	return nil
}

// isJoiner reports the invisible characters emoji are built with: the
// zero-width joiner and the variation selectors.
func isJoiner(r rune) bool {
	return r == 0x200D || r >= 0xFE00 && r <= 0xFE0F || r >= 0xE0020 && r <= 0xE007F
}

// MentionedNames returns the names a body mentions with @, in order,
// each once (compared by key), at most MaxMentions: an @ at the start or
// after a character that is not a letter or digit, then a run of the
// characters a nick may hold.
func MentionedNames(body string) []Name {
	var out []Name
	for i := 0; i < len(body) && len(out) < MaxMentions; {
		at := nextAt(body[i:])
		if at < 0 {
			break
		}
		at += i
		_, w := utf8.DecodeRuneInString(body[at:])
		start := at + w
		i = start
		if at > 0 {
			prev, _ := utf8.DecodeLastRuneInString(body[:at])
			if unicode.IsLetter(prev) || unicode.IsDigit(prev) {
				continue
			}
		}
		end := start
		for end < len(body) {
			r, w := utf8.DecodeRuneInString(body[end:])
			if !mentionRune(r) {
				break
			}
			end += w
		}
		i = end
		// A sentence's full stop or dash after the name is not part of it.
		name := strings.TrimRight(body[start:end], ".-．－")
		n, err := ParseNick(name)
		if err != nil {
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o.Key == n.Key
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out
}

// mentionRune reports the characters of a nick after an @: those of the
// naming rule (nameRune), combining marks, and their full-width forms,
// which the rule maps to normal width.
func mentionRune(r rune) bool {
	return nameRune(r) || unicode.In(r, unicode.Mn, unicode.Mc) || r >= 0xFF01 && r <= 0xFF5E && nameRune(r-0xFEE0)
}

// nextAt is the index of the first @ or full-width ＠ in s, or -1: two
// byte scans, which a body without either costs little more than its
// reading (strings.IndexAny decodes every rune once a set holds a
// multi-byte one).
func nextAt(s string) int {
	at, wide := strings.IndexByte(s, '@'), strings.Index(s, "＠")
	if at < 0 || wide >= 0 && wide < at {
		return wide
	}
	return at
}
