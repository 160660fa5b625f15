package hub

import (
	"parley/api"
	"parley/codec"
	"parley/server/broker"
)

// Events for the application's webhooks (docs/API.md "Webhooks"). The
// hub builds an event where the thing happens (a room's message under
// the room's lock, so a room's events are queued in its order) and
// hands it to the EventSink, which queues it and delivers it later.

// EventSink takes the events the application's webhooks carry.
type EventSink interface {
	// Wants reports whether the sink takes events of type typ in room
	// ("" for an event of no room). The hub asks before it builds an
	// event, often under a room's lock: it must be cheap and not block.
	Wants(typ, room string) bool
	// Emit queues e, filling in its ID, its time when zero, and the
	// node. It never blocks: callers may hold a room's lock.
	Emit(e api.Event)
}

// NoEvents is the EventSink of a server without webhooks.
type NoEvents struct{}

// Wants takes nothing.
func (NoEvents) Wants(string, string) bool { return false }

// Emit drops e.
func (NoEvents) Emit(api.Event) {}

// messageEvents emits the events of a room message just sequenced as
// seq: the message (or amendment) and a mention of each account that is
// not online. r.mu held.
func (h *Hub) messageEvents(r *room, m *broker.Message, seq uint64) {
	ev := h.cfg.Events
	if ev.Wants(api.EventMessage, r.name) {
		ev.Emit(api.Event{Type: api.EventMessage, TS: m.TS, Room: r.name, Seq: seq, Kind: m.Kind, Of: m.Of,
			From: m.Nick, Sender: m.Account, Body: m.Body, ReplyTo: m.ReplyTo, Mention: m.Mentions})
	}
	if m.Kind != "" || len(m.Mentions) == 0 || !ev.Wants(api.EventOfflineMention, r.name) {
		return
	}
	now := h.wallMillis()
	for _, nick := range m.Mentions {
		n, err := codec.ParseNick(nick)
		if err != nil || h.nicks.online(n.Key) {
			continue
		}
		if _, elsewhere := h.broker.Lookup(n.Key); elsewhere {
			continue
		}
		if account, last, ok := h.accts.byNick(n.Key, now); ok {
			ev.Emit(api.Event{Type: api.EventOfflineMention, TS: m.TS, Room: r.name, Seq: seq, From: m.Nick,
				Sender: m.Account, Account: account, Nick: last, Preview: api.Preview(m.Body)})
		}
	}
}

// dmEvent emits a direct message's event: delivered (offline false) to
// the account, if known, or kept for it while it has no session online.
func (h *Hub) dmEvent(dm broker.DirectMessage, account string, offline bool) {
	typ := api.EventDM
	if offline {
		typ = api.EventOfflineDM
	}
	if !h.cfg.Events.Wants(typ, "") {
		return
	}
	e := api.Event{Type: typ, TS: dm.TS, From: dm.From, Sender: dm.Account, To: dm.ToNick, Account: account, Body: dm.Body}
	if offline {
		e.Nick, e.Body, e.Preview = dm.ToNick, "", api.Preview(dm.Body)
	}
	h.cfg.Events.Emit(e)
}

// memberEvent emits a member's join or leave of r (the nick's first
// session in, or its last out). r.mu held.
func (h *Hub) memberEvent(r *room, s *Session, joined bool, reason codec.Reason) {
	typ := api.EventLeave
	if joined {
		typ = api.EventJoin
	}
	if h.cfg.Events.Wants(typ, r.name) {
		h.cfg.Events.Emit(api.Event{Type: typ, Room: r.name, Nick: s.nick, Account: s.account, Reason: string(reason)})
	}
}

// sessionEvent emits a session's login or end.
func (h *Hub) sessionEvent(s *Session, open bool, reason codec.Reason) {
	typ := api.EventSessionClose
	if open {
		typ = api.EventSessionOpen
	}
	if h.cfg.Events.Wants(typ, "") {
		h.cfg.Events.Emit(api.Event{Type: typ, Nick: s.nick, Account: s.account, Reason: string(reason)})
	}
}

// auditEvent emits an action entering the audit log. The rules' lock
// held.
func (h *Hub) auditEvent(e codec.AuditEntry) {
	if h.cfg.Events.Wants(api.EventModeration, e.Room) {
		h.cfg.Events.Emit(api.Event{Type: api.EventModeration, TS: e.TS, Room: e.Room, Action: e.Action, By: e.By,
			Sender: e.ByAcct, Target: e.Target, Nick: e.Nick, Reason: e.Reason})
	}
}
