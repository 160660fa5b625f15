package hub

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/bytedance/sonic"

	"parley/codec"
	"parley/server/broker"
	"parley/server/moderation"
)

// Edits, deletes and reactions (docs/PROTOCOL.md "Edits, deletes,
// reactions, replies and mentions"). Each is a room event sequenced like
// a message, with a seq of its own after the message it amends: members
// get it live, a resume replays it, the store and the cluster's log keep
// it, so every node that delivers it applies it to the message in its
// own history (amendLocked) in the same order. History then returns the
// message as it is now. A request is checked against the history of the
// sender's node, which holds what the room's log delivered there; the
// apply repeats the checks that keep memory bounded, so two amendments
// that cross (an edit and a delete) end in seq order.

// amendment is what changed a remembered message since it was sent.
type amendment struct {
	reactions []reactionSet // in the order of their first reaction
	total     int           // reactions of all kinds
	cost      int           // bytes counted against HistoryBytes
}

// reactionSet is one reaction on a message and who holds it, by
// identity (reactor).
type reactionSet struct {
	emoji string
	by    []string
}

// reactorCost is what one reaction costs against HistoryBytes besides
// its strings.
const reactorCost = 16

// msgStart starts every encoded room message: the encoder writes the
// type first. An event that does not start with it is an amendment.
var msgStart = []byte(`{"type":"msg"`)

// eventFrame encodes a room message or amendment as members receive it.
func eventFrame(room string, m broker.Message, seq uint64) []byte {
	switch m.Kind {
	case codec.TypeEdited:
		return codec.MustEncode(&codec.Edited{Room: room, Seq: seq, Of: m.Of, From: m.Nick, Body: m.Body, TS: m.TS})
	case codec.TypeDeleted:
		return codec.MustEncode(&codec.Deleted{Room: room, Seq: seq, Of: m.Of, From: m.Nick, TS: m.TS})
	case codec.TypeReaction:
		return codec.MustEncode(&codec.Reaction{Room: room, Seq: seq, Of: m.Of, From: m.Nick, Account: m.Account, Emoji: m.Body, Remove: m.Remove, TS: m.TS})
	}
	return codec.MustEncode(&codec.Msg{From: m.Nick, Room: room, Body: m.Body, TS: m.TS, Seq: seq, ID: m.ID,
		Account: m.Account, ReplyTo: m.ReplyTo, Mentions: m.Mentions, API: m.API})
}

// reactor names who reacts or wrote: the account, or for a nick login
// its nick's key.
func reactor(account, nick string) string {
	if account != "" {
		return account
	}
	n, err := codec.ParseNick(nick)
	if err != nil {
		return "~" + nick
	}
	return "~" + n.Key
}

// authoredBy reports whether s wrote m: the same account, or for a nick
// login the same nick. A message the application posted without a bot
// account has no author among the sessions, whatever its sender's name.
func authoredBy(m *codec.Msg, s *Session) bool {
	return !(m.API && m.Account == "") && reactor(m.Account, m.From) == s.reactor()
}

func (s *Session) reactor() string {
	if s.account != "" {
		return s.account
	}
	return "~" + s.key
}

// decodeMsg decodes a remembered message frame.
func decodeMsg(frame []byte) (codec.Msg, error) {
	var m codec.Msg
	err := sonic.Unmarshal(frame[codec.HeaderSize:], &m)
	return m, err
}

// findLocked returns the index in r's history of the message seq, or
// not_found. r.mu held.
func (r *room) findLocked(seq uint64) (int, codec.Msg, error) {
	if seq > 0 && len(r.hist) > 0 {
		if i := r.hist.from(seq - 1); i < len(r.hist) && r.hist[i].seq == seq && bytes.HasPrefix(r.hist[i].frame[codec.HeaderSize:], msgStart) {
			m, err := decodeMsg(r.hist[i].frame)
			if err == nil && !m.Deleted {
				return i, m, nil
			}
			if m.Deleted {
				return 0, m, fmt.Errorf("%w: message %d in %q was deleted", codec.ErrNotFound, seq, r.name)
			}
		}
	}
	return 0, codec.Msg{}, fmt.Errorf("%w: no message %d in the history of %q this server keeps", codec.ErrNotFound, seq, r.name)
}

// converse fills a say's mentions and checks the message it answers,
// under r's lock.
func (h *Hub) converse(r *room, m *broker.Message) error {
	names := codec.MentionedNames(m.Body)
	if m.ReplyTo == 0 && len(names) == 0 {
		return nil // a plain say takes the room's lock once, to be sequenced
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.ReplyTo != 0 {
		if _, _, err := r.findLocked(m.ReplyTo); err != nil {
			return err
		}
	}
	for _, n := range names {
		if nick, ok := h.mentionable(r, n); ok {
			m.Mentions = append(m.Mentions, nick)
		}
	}
	return nil
}

// mentionable returns the nick an @name resolves to in r: a member's,
// here or on another node, or the last nick of an account that keeps a
// read marker in r. r.mu held.
func (h *Hub) mentionable(r *room, n codec.Name) (string, bool) {
	if m := r.members[n.Key]; m != nil {
		return m.nick, true
	}
	if u, ok := r.remote[n.Key]; ok {
		return u.Nick, true
	}
	return h.accts.markedNick(n.Key, roomConv(r.name))
}

// amending returns the room a request names and the message it amends
// there, as this node's history holds it; with saying, s must be allowed
// to say there too.
func (h *Hub) amending(s *Session, req *codec.Request, saying bool) (*room, codec.Msg, *amendment, error) {
	r, err := h.memberRoom(s, req.Room)
	if err == nil && saying {
		err = h.maySay(s, r)
	}
	if err != nil {
		return nil, codec.Msg{}, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, m, err := r.findLocked(req.Seq)
	if err != nil {
		return nil, m, nil, err
	}
	return r, m, r.hist[i].amend, nil
}

func (h *Hub) handleEdit(s *Session, req *codec.Request) error {
	if req.DM {
		return h.handleDMAmend(s, req, codec.TypeEdited)
	}
	defer h.trimHistory()
	if err := h.checkBody(req.Body); err != nil {
		return err
	}
	r, m, _, err := h.amending(s, req, true)
	if err != nil {
		return err
	}
	if !authoredBy(&m, s) {
		return fmt.Errorf("%w: only its author edits message %d", codec.ErrForbidden, req.Seq)
	}
	return h.sequence(s, r, h.amendment(s, r, req, codec.TypeEdited, req.Body))
}

func (h *Hub) handleDelete(s *Session, req *codec.Request) error {
	if req.DM {
		return h.handleDMAmend(s, req, codec.TypeDeleted)
	}
	defer h.trimHistory()
	r, m, _, err := h.amending(s, req, false)
	if err != nil {
		return err
	}
	if !authoredBy(&m, s) && h.roleIn(s, r.name) < moderation.Operator {
		return fmt.Errorf("%w: only its author or an operator of %q deletes message %d", codec.ErrForbidden, r.name, req.Seq)
	}
	return h.sequence(s, r, h.amendment(s, r, req, codec.TypeDeleted, ""))
}

func (h *Hub) handleReact(s *Session, req *codec.Request) error {
	defer h.trimHistory()
	if err := codec.CheckEmoji(req.Emoji); err != nil {
		return err
	}
	r, _, a, err := h.amending(s, req, true)
	if err != nil {
		return err
	}
	me := s.reactor()
	if a.holds(req.Emoji, me) != req.Remove {
		h.ack(s, req.Ref, 0) // already so: nothing changes, nothing is sent
		return nil
	}
	if !req.Remove {
		if err := a.mayAdd(req.Emoji, me); err != nil {
			return err
		}
	}
	m := h.amendment(s, r, req, codec.TypeReaction, req.Emoji)
	m.Remove = req.Remove
	return h.sequence(s, r, m)
}

// amendment is the room event a request makes of the message req.Seq.
func (h *Hub) amendment(s *Session, r *room, req *codec.Request, kind, body string) broker.Message {
	m := broker.Message{Room: r.name, Key: s.key, Nick: s.nick, Body: body, TS: h.wallMillis(), Sender: s, Ref: req.Ref}
	m.Kind, m.Of, m.Account = kind, req.Seq, s.account
	return m
}

// roleIn is s's role in the room called name.
func (h *Hub) roleIn(s *Session, name string) moderation.Role {
	a := actor(s)
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	if rr := g.rooms[name]; rr != nil {
		return rr.RoleOf(a.Account, a.Admin)
	}
	if a.Admin {
		return moderation.Owner
	}
	return moderation.Member
}

// holds reports whether who holds emoji on the message. a may be nil.
func (a *amendment) holds(emoji, who string) bool {
	if a == nil {
		return false
	}
	for _, rs := range a.reactions {
		if rs.emoji == emoji {
			return slices.Contains(rs.by, who)
		}
	}
	return false
}

// mayAdd checks the bounds of reactions on one message. a may be nil.
func (a *amendment) mayAdd(emoji, who string) error {
	if a == nil {
		return nil
	}
	if a.total >= codec.MaxReactionsPerMsg {
		return fmt.Errorf("%w: the message holds %d reactions, the most it can", codec.ErrBadRequest, codec.MaxReactionsPerMsg)
	}
	mine, known := 0, false
	for _, rs := range a.reactions {
		known = known || rs.emoji == emoji
		if slices.Contains(rs.by, who) {
			mine++
		}
	}
	if !known && len(a.reactions) >= codec.MaxReactionKinds {
		return fmt.Errorf("%w: the message holds %d kinds of reaction, the most it can", codec.ErrBadRequest, codec.MaxReactionKinds)
	}
	if mine >= codec.MaxReactionsPerUser {
		return fmt.Errorf("%w: you hold %d reactions on the message, the most one may", codec.ErrBadRequest, codec.MaxReactionsPerUser)
	}
	return nil
}

// amendLocked applies a room event that is not a message to the message
// it amends in r's history, if r still holds it, and with persist, in
// the store too (not while the store's own events are replayed). r.mu
// held.
func (h *Hub) amendLocked(r *room, frame []byte, persist bool) {
	if bytes.HasPrefix(frame[codec.HeaderSize:], msgStart) {
		return
	}
	var ev codec.Event
	if sonic.Unmarshal(frame[codec.HeaderSize:], &ev) != nil || ev.Of == 0 {
		return
	}
	i, m, err := r.findLocked(ev.Of)
	if err != nil {
		return
	}
	e := &r.hist[i]
	switch ev.Type {
	case codec.TypeEdited:
		m.Body, m.Edited = ev.Body, ev.TS
	case codec.TypeDeleted:
		m.Body, m.Deleted, m.Mentions, m.Reactions = "", true, nil, nil
		h.setAmend(e, nil)
	case codec.TypeReaction:
		if !h.react(e, ev.Emoji, reactor(ev.Account, ev.From), ev.Remove) {
			return
		}
		m.Reactions = e.amend.counts("")
	default:
		return
	}
	frame = codec.MustEncode(&m)
	h.histBytes.Add(int64(cap(frame) - cap(e.frame)))
	e.frame = frame
	if persist {
		h.cfg.Store.Replace(r.name, r.epoch, e.seq, frame)
	}
}

// react adds or takes back who's emoji on e, within the bounds; it
// reports whether anything changed.
func (h *Hub) react(e *histEntry, emoji, who string, remove bool) bool {
	a := e.amend
	if a.holds(emoji, who) != remove || !remove && a.mayAdd(emoji, who) != nil {
		return false
	}
	next := &amendment{}
	if a != nil {
		next.reactions = slices.Clone(a.reactions)
	}
	k := slices.IndexFunc(next.reactions, func(rs reactionSet) bool { return rs.emoji == emoji })
	switch {
	case remove:
		by := slices.DeleteFunc(slices.Clone(next.reactions[k].by), func(b string) bool { return b == who })
		if len(by) == 0 {
			next.reactions = slices.Delete(next.reactions, k, k+1)
		} else {
			next.reactions[k].by = by
		}
	case k < 0:
		next.reactions = append(next.reactions, reactionSet{emoji: emoji, by: []string{who}})
	default:
		next.reactions[k].by = append(slices.Clone(next.reactions[k].by), who)
	}
	for _, rs := range next.reactions {
		next.total += len(rs.by)
		next.cost += len(rs.emoji) + reactorCost
		for _, b := range rs.by {
			next.cost += len(b) + reactorCost
		}
	}
	if next.total == 0 {
		next = nil
	}
	h.setAmend(e, next)
	return true
}

// setAmend replaces e's amendment, counting its bytes.
func (h *Hub) setAmend(e *histEntry, a *amendment) {
	h.histBytes.Add(int64(a.size() - e.amend.size()))
	e.amend = a
}

func (a *amendment) size() int {
	if a == nil {
		return 0
	}
	return a.cost
}

// counts are a message's reactions as history returns them to reader
// ("": to nobody in particular).
func (a *amendment) counts(reader string) []codec.ReactionCount {
	if a == nil {
		return nil
	}
	out := make([]codec.ReactionCount, 0, len(a.reactions))
	for _, rs := range a.reactions {
		out = append(out, codec.ReactionCount{Emoji: rs.emoji, Count: len(rs.by), Me: reader != "" && slices.Contains(rs.by, reader)})
	}
	return out
}

// pageFrame is a remembered message as s reads it in a history page:
// its reactions say which s holds.
func pageFrame(e histEntry, s *Session) []byte {
	if e.amend == nil {
		return e.frame[codec.HeaderSize:]
	}
	m, err := decodeMsg(e.frame)
	if err != nil {
		return e.frame[codec.HeaderSize:]
	}
	me := ""
	if s != nil {
		me = s.reactor()
	}
	m.Reactions = e.amend.counts(me)
	return codec.MustEncode(&m)[codec.HeaderSize:]
}
