package hub

import (
	"fmt"

	"parley/codec"
	"parley/server/broker"
)

// Who: the members of a room, or everyone online, in pages by nick.

func (h *Hub) handleWho(s *Session, req *codec.Request) error {
	if !h.chargeWho(s) {
		return fmt.Errorf("%w: who costs %d frames of the rate limit", codec.ErrRateLimited, whoCost)
	}
	afterKey := ""
	if req.After != "" {
		// Checked, and its length bounded, before any folding.
		after, err := codec.ParseNick(req.After)
		if err != nil {
			return fmt.Errorf("%w: after is not a nick", codec.ErrBadRequest)
		}
		afterKey = codec.SortKey(after.Display)
	}
	if req.Room == "" {
		h.whoOnline(s, req, afterKey)
		return nil
	}
	room, err := codec.ParseRoom(req.Room)
	if err != nil {
		return err
	}
	req.Room = room.Display
	if h.hiddenFrom(s, room.Display) {
		h.sendUsers(s, req, nil, 0) // as a room that does not exist
		return nil
	}
	r := h.rooms.get(room.Display)
	if r == nil || !r.isFollowed() {
		return h.whoElsewhere(s, req, afterKey)
	}
	entries, count := r.membersAfter(afterKey)
	h.sendUsers(s, req, entries, count)
	return nil
}

// whoOnline answers who without a room from the broker's sorted directory.
func (h *Hub) whoOnline(s *Session, req *codec.Request, afterKey string) {
	users, more, count := h.broker.Users(afterKey, codec.WhoPage) // sorted already
	nicks, cut := cutPage(len(users), func(i int) string { return users[i].Nick }, codec.WhoPage, h.cfg.MaxFrame-1024)
	s.send(codec.MustEncode(&codec.Users{Count: count, Nicks: nicks, More: more || cut, Ref: req.Ref}))
}

// whoElsewhere lists a room this node does not follow: its members on
// other nodes, from the broker, and any here.
func (h *Hub) whoElsewhere(s *Session, req *codec.Request, afterKey string) error {
	again := *req
	return h.call(s, func(done func(func())) {
		h.broker.Members(again.Room, func(members []broker.User) {
			done(func() { h.sendMembers(s, &again, afterKey, members) })
		})
	})
}

// sendMembers answers who with members elsewhere and any here.
func (h *Hub) sendMembers(s *Session, req *codec.Request, afterKey string, members []broker.User) {
	if s.closing || s.closed {
		return
	}
	members = append(members, handler{h}.LocalMembers(req.Room)...)
	var entries []nickEntry
	for _, m := range members {
		if k := codec.SortKey(m.Nick); k > afterKey {
			entries = append(entries, nickEntry{key: k, nick: m.Nick, account: m.Account})
		}
	}
	h.sendUsers(s, req, entries, len(members))
}

// membersAfter returns the members of r whose sort key follows afterKey,
// and the member count.
func (r *room) membersAfter(afterKey string) ([]nickEntry, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]nickEntry, 0, len(r.members))
	for _, m := range r.members {
		if m.order > afterKey {
			out = append(out, nickEntry{key: m.order, nick: m.nick, account: m.account})
		}
	}
	for _, m := range r.remote {
		if k := codec.SortKey(m.Nick); k > afterKey {
			out = append(out, nickEntry{key: k, nick: m.Nick, account: m.Account})
		}
	}
	return out, r.count()
}

// sendUsers answers who with a page of entries, and the roles of the
// page's members who hold one in the room.
func (h *Hub) sendUsers(s *Session, req *codec.Request, entries []nickEntry, count int) {
	nicks, more := whoPage(entries, codec.WhoPage, h.cfg.MaxFrame-1024)
	roles := h.rolesOf(req.Room, entries[:len(nicks)]) // whoPage sorted entries: the page is their start
	s.send(codec.MustEncode(&codec.Users{Room: req.Room, Count: count, Nicks: nicks, More: more, Roles: roles, Ref: req.Ref}))
}
