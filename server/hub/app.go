package hub

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"sort"
	"unicode/utf8"

	"parley/api"
	"parley/codec"
	"parley/server/auth"
	"parley/server/broker"
	"parley/server/moderation"
)

// The application's way in (docs/API.md): what the server API does,
// without a session. Every entry point is safe from any goroutine; those
// that may wait for the broker answer through done, exactly once, on
// whatever goroutine finished the work, and none blocks a loop.

// AppActor is the server API acting with the key named id: a server
// admin, named so in the audit log and in the rooms it tells.
func AppActor(id string) moderation.Actor {
	return moderation.Actor{Account: "api:" + id, Nick: "api:" + id, Admin: true}
}

// checkAccount checks an account as the API names it (a token's sub) and
// returns its identity key.
func checkAccount(what, account string) (string, error) {
	switch {
	case account == "":
		return "", fmt.Errorf("%w: %s is required", codec.ErrBadRequest, what)
	case len(account) > auth.MaxSubject || !utf8.ValidString(account):
		return "", fmt.Errorf("%w: %s is at most %d bytes of UTF-8", codec.ErrBadRequest, what, auth.MaxSubject)
	}
	if _, bad := codec.BodyControl(account); bad {
		return "", fmt.Errorf("%w: %s holds a control character", codec.ErrBadRequest, what)
	}
	return auth.AccountKey(account), nil
}

// appRoom finds the room called name, which must be known: live here,
// with rules (created through the API, or owned), or with members on
// another node. It pins the room and follows it, then runs fn with it
// and the release that unpins it, or with the error.
func (h *Hub) appRoom(name string, fn func(r *room, release func(), err error)) {
	n, err := codec.ParseRoom(name)
	if err != nil {
		fn(nil, nil, err)
		return
	}
	name = n.Display
	if h.rooms.get(name) != nil || h.hasRules(name) {
		h.withRoom(name, fn)
		return
	}
	h.broker.Members(name, func(remote []broker.User) {
		if len(remote) == 0 {
			fn(nil, nil, fmt.Errorf("%w: no room %q: nobody is in it, it has no rules and was not created (room_create)", codec.ErrNotFound, name))
			return
		}
		h.withRoom(name, fn)
	})
}

// hasRules reports whether the room called name has rules.
func (h *Hub) hasRules(name string) bool {
	h.gov.mu.Lock()
	defer h.gov.mu.Unlock()
	return h.gov.rooms[name] != nil
}

// withRoom pins the room called name (it does not die while pinned),
// follows it if need be, then runs fn with it and the release that
// unpins it, or with unavailable when it cannot be followed.
func (h *Hub) withRoom(name string, fn func(r *room, release func(), err error)) {
	r := h.rooms.acquire(name, h.newRoom)
	r.pins++
	release := func() {
		r.mu.Lock()
		r.pins--
		r.mu.Unlock()
		h.dropIfUnused(r)
	}
	if r.followed {
		r.mu.Unlock()
		fn(r, release, nil)
		return
	}
	first := r.following == nil
	r.following = append(r.following, func() {
		if !r.isFollowed() {
			release()
			fn(nil, nil, fmt.Errorf("%w: the room could not be followed", codec.ErrUnavailable))
			return
		}
		fn(r, release, nil)
	})
	r.mu.Unlock()
	if first {
		h.broker.Follow(name, func(remote []broker.User, last uint64, err error) { h.followDone(r, remote, last, err) })
	}
}

// appReply is the broker.Replier of a message the API posts.
type appReply struct {
	done func(seq uint64, err error)
}

// SayDone answers the API request.
func (a appReply) SayDone(_ string, seq uint64, err error) { a.done(seq, err) }

// appRef stands for a say's ref in a message the API posts: the store
// acks it once stored, as it does a session's.
const appRef = "api"

// Publish posts p to its room as the sender it names, and answers with
// the message's seq once stored.
func (h *Hub) Publish(p api.Publish, done func(seq uint64, err error)) {
	from, err := codec.ParseNick(p.From)
	if err == nil {
		err = h.checkBody(p.Body)
	}
	if err == nil {
		err = checkSayID(p.ID)
	}
	var account string
	if err == nil && p.Account != "" {
		account, err = checkAccount("account", p.Account)
	}
	if err != nil {
		done(0, err)
		return
	}
	h.appRoom(p.Room, func(r *room, release func(), err error) {
		if err != nil {
			done(0, err)
			return
		}
		defer h.trimHistory()
		rep := appReply{done: func(seq uint64, err error) {
			release()
			done(seq, err)
		}}
		m := broker.Message{Room: r.name, Key: from.Key, Nick: from.Display, Body: p.Body, ID: p.ID, TS: h.wallMillis(), Sender: rep, Ref: appRef}
		m.Account, m.ReplyTo, m.API = account, p.ReplyTo, true
		if err := h.converse(r, &m); err != nil {
			rep.SayDone(appRef, 0, err)
			return
		}
		seq, pending, err := h.broker.Say(m, rep, appRef)
		switch {
		case errors.Is(err, broker.ErrUnsequenced):
			rep.SayDone(appRef, 0, fmt.Errorf("%w: the room's sequence cannot be reached; try again", codec.ErrUnavailable))
		case err != nil:
			rep.SayDone(appRef, 0, unavailable(err))
		case pending, h.storeAcks(appRef):
			// answered once stored
		default:
			rep.SayDone(appRef, seq, nil)
		}
	})
}

// AppDM sends d to its account: to its sessions, wherever they are, or
// kept for its next login.
func (h *Hub) AppDM(d api.DM, done func(api.DMSent, error)) {
	to, err := checkAccount("account", d.Account)
	var from codec.Name
	if err == nil {
		from, err = codec.ParseNick(d.From)
	}
	if err == nil {
		err = h.checkBody(d.Body)
	}
	var sender string
	if err == nil && d.FromAccount != "" {
		sender, err = checkAccount("from_account", d.FromAccount)
	}
	if err != nil {
		done(api.DMSent{}, err)
		return
	}
	defer h.trimHistory()
	now := h.wallMillis()
	dm := broker.DirectMessage{ToNick: d.Account, From: from.Display, Body: d.Body, TS: now, ID: newEpoch(), Account: sender, API: true}
	leave := func() {
		h.cfg.Offline.Leave(broker.OfflineDM{Account: to, From: dm.From, To: dm.ToNick, Body: dm.Body, TS: dm.TS, ID: dm.ID, Sender: sender, API: true}, func(err error) {
			if err != nil {
				done(api.DMSent{}, err)
				return
			}
			h.count.offlineDMs.Add(1)
			h.dmEvent(dm, to, true)
			if key, ok := h.accts.lastKey(to); ok && h.nicks.online(key) {
				h.collectOffline(to, key, nil) // it logged in meanwhile
			}
			done(api.DMSent{Stored: true}, nil)
		})
	}
	key, ok := h.accts.lastKey(to)
	if ok {
		_, dm.ToNick, ok = h.accts.byNick(key, now)
		dm.ToKey = key
	}
	here, _, holder := h.nicks.sessions(key)
	switch {
	case !ok:
		leave()
	case len(here) > 0 && holder != to:
		leave() // its last nick is someone else's now
	case len(here) > 0:
		if _, err := h.sendDM(dm, nil); err != nil {
			leave() // its last session ended meanwhile
			return
		}
		h.dmEvent(dm, to, false)
		done(api.DMSent{Delivered: true}, nil)
	default:
		h.broker.SendDM(dm, func(err error) {
			switch {
			case err == nil:
				h.dmEvent(dm, to, false)
				done(api.DMSent{Delivered: true}, nil)
			case errors.Is(err, codec.ErrNoSuchUser):
				leave()
			default:
				done(api.DMSent{}, unavailable(err))
			}
		})
	}
}

// Disconnect ends every session of account, here and, through the
// broker, on every other node, with bye disconnected and message; it
// returns how many it ended here. Their nicks are not held: a resume
// token does not bring them back.
func (h *Hub) Disconnect(account, message string) (int, error) {
	key, err := checkAccount("account", account)
	if err == nil {
		err = moderation.CheckText("message", message, codec.MaxReason)
	}
	if err != nil {
		return 0, err
	}
	bye := codec.MustEncode(&codec.Bye{Reason: codec.ReasonDisconnected, Message: message})
	h.broker.Notice(broker.RoomNotice{Account: key, Frame: bye, Eject: codec.ReasonDisconnected})
	return h.endAccount(key, bye), nil
}

// endAccount closes the sessions here of the account key with bye, and
// returns how many.
func (h *Hub) endAccount(key string, bye []byte) int {
	nickKey, ok := h.accts.lastKey(key)
	if !ok {
		return 0
	}
	sessions, _, account := h.nicks.sessions(nickKey)
	if account != key {
		return 0
	}
	for _, s := range sessions {
		h.onLoop(s, func() { h.closeSessionWith(s, codec.ReasonDisconnected, bye) })
	}
	return len(sessions)
}

// Presence says whether account is online, and where; not_found for an
// account that never logged in here (or, in a cluster, anywhere within
// codec.RememberedNickDays).
func (h *Hub) Presence(account string) (api.Present, error) {
	key, err := checkAccount("account", account)
	if err != nil {
		return api.Present{}, err
	}
	out := api.Present{Account: account}
	nickKey, ok := h.accts.lastKey(key)
	if !ok {
		return out, fmt.Errorf("%w: no account %q has logged in", codec.ErrNotFound, account)
	}
	if sessions, nick, acct := h.nicks.sessions(nickKey); len(sessions) > 0 && acct == key {
		out.Online, out.Nick, out.Sessions = true, nick, len(sessions)
		if st := h.broker.Stats(); st != nil {
			out.Node = st.Node
		}
		return out, nil
	}
	if u, ok := h.broker.Lookup(nickKey); ok {
		out.Online, out.Nick, out.Node = true, u.Nick, u.Node
		return out, nil
	}
	_, out.Nick, _ = h.accts.byNick(nickKey, h.wallMillis())
	return out, nil
}

// RoomInfo describes a known room.
func (h *Hub) RoomInfo(name string, done func(api.RoomInfo, error)) {
	h.appRoom(name, func(r *room, release func(), err error) {
		if err != nil {
			done(api.RoomInfo{}, err)
			return
		}
		defer release()
		r.mu.Lock()
		info := api.RoomInfo{Room: r.name, Members: r.count(), Seq: r.seq, Epoch: r.epoch}
		r.mu.Unlock()
		h.describeRules(&info)
		done(info, nil)
	})
}

// describeRules fills in a room's owner, operators, topic and privacy.
func (h *Hub) describeRules(info *api.RoomInfo) {
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	if rules := g.rooms[info.Room]; rules != nil {
		info.Owner, info.Topic, info.Private = rules.Owner, rules.Topic, rules.Private
		for op := range rules.Ops {
			info.Ops = append(info.Ops, op)
		}
	}
}

// RoomList lists every room with members here or on the other nodes,
// or with rules, private ones too, and the lobby, by name; with the last
// seq of those this node follows (0 for the others).
func (h *Hub) RoomList() []api.RoomInfo {
	counts := map[string]int{codec.Lobby: 0}
	for _, list := range [][]broker.RoomCount{handler{h}.LocalRoomCounts(), h.broker.RoomCounts()} {
		for _, c := range list {
			counts[c.Room] += c.Count
		}
	}
	h.gov.mu.Lock()
	for name := range h.gov.rooms {
		counts[name] += 0
	}
	h.gov.mu.Unlock()
	out := make([]api.RoomInfo, 0, len(counts))
	for name, n := range counts {
		info := api.RoomInfo{Room: name, Members: n}
		if r := h.rooms.get(name); r != nil {
			r.mu.Lock()
			info.Seq, info.Epoch = r.seq, r.epoch
			r.mu.Unlock()
		}
		h.describeRules(&info)
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	return out
}

// RoomMembers pages a known room's members, here and on the other nodes,
// by sort key after the nick after.
func (h *Hub) RoomMembers(name, after string, limit int, done func(api.Members, error)) {
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 1000 {
		done(api.Members{}, fmt.Errorf("%w: limit is 1 to 1000", codec.ErrBadRequest))
		return
	}
	h.appRoom(name, func(r *room, release func(), err error) {
		if err != nil {
			done(api.Members{}, err)
			return
		}
		defer release()
		afterKey := ""
		if after != "" {
			afterKey = codec.SortKey(after)
		}
		entries, count := r.membersAfter(afterKey)
		sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
		out := api.Members{Count: count, Members: []api.Member{}}
		if len(entries) > limit {
			entries, out.More = entries[:limit], true
		}
		r.mu.Lock()
		for _, e := range entries {
			m := api.Member{Nick: e.nick, Account: e.account}
			if n, err := codec.ParseNick(e.nick); err == nil {
				if u, remote := r.remote[n.Key]; remote {
					m.Node = u.Node
				}
			}
			out.Members = append(out.Members, m)
		}
		r.mu.Unlock()
		done(out, nil)
	})
}

// History returns a page of a known room's messages: from this node's
// history, or older ones from the cluster's log.
func (h *Hub) History(q api.History, done func(api.Page, error)) {
	limit, err := historyLimit(q.Limit)
	if err != nil {
		done(api.Page{}, err)
		return
	}
	h.appRoom(q.Room, func(r *room, release func(), err error) {
		if err != nil {
			done(api.Page{}, err)
			return
		}
		r.mu.Lock()
		page := api.Page{Room: r.name, Epoch: r.epoch, Msgs: []stdjson.RawMessage{}}
		lo, hi := wanted(q.Since, q.Before, limit, r.seq)
		if lo > hi || !h.brokerLog || r.coversLocked(lo-1) {
			entries, more := r.hist.page(q.Since, q.Before, limit)
			for _, e := range entries {
				page.Msgs = append(page.Msgs, pageFrame(e, nil))
			}
			page.More = more
			r.mu.Unlock()
			release()
			done(page, nil)
			return
		}
		last := r.seq
		r.mu.Unlock()
		h.broker.ReadLog(r.name, lo-1, int(hi-lo+1), func(logged []broker.Logged, err error) {
			release()
			if err != nil {
				done(api.Page{}, unavailable(err))
				return
			}
			for _, l := range logged {
				page.Msgs = append(page.Msgs, l.Frame[codec.HeaderSize:])
			}
			page.More = q.Since == nil && lo > 1 || q.Since != nil && (len(logged) == 0 || logged[len(logged)-1].Seq < last)
			done(page, nil)
		})
	})
}

// CreateRoom makes the room known with its first rules, as a; a room
// with rules already is refused with bad_request.
func (h *Hub) CreateRoom(a moderation.Actor, c api.RoomCreate) error {
	name, err := h.requireRoom(c.Room)
	if err != nil {
		return err
	}
	if name == codec.Lobby {
		return fmt.Errorf("%w: the lobby always exists and has no rules", codec.ErrBadRequest)
	}
	var owner string
	if c.Owner != "" {
		if owner, err = checkAccount("owner", c.Owner); err != nil {
			return err
		}
	}
	if c.Topic != nil {
		if err := moderation.CheckText("topic", *c.Topic, codec.MaxTopic); err != nil {
			return err
		}
	}
	if h.hasRules(name) {
		return fmt.Errorf("%w: room %q exists already (room_set changes it)", codec.ErrBadRequest, name)
	}
	if err := h.changeRules(a, name, moderation.ActCreate, owner, func(r *moderation.Room) error {
		r.Created, r.Owner = true, owner
		return nil
	}, codec.AuditEntry{Target: owner}); err != nil {
		return err
	}
	return h.SetRoom(a, api.RoomSet{Room: name, Topic: c.Topic, Private: c.Private})
}

// SetRoom changes the owner, topic or privacy of a room, as a.
func (h *Hub) SetRoom(a moderation.Actor, c api.RoomSet) error {
	name, err := h.requireRoom(c.Room)
	if err != nil {
		return err
	}
	if c.Owner != nil {
		owner, err := checkAccount("owner", *c.Owner)
		if err != nil {
			return err
		}
		if err := h.changeRules(a, name, moderation.ActOwner, owner, func(r *moderation.Room) error {
			return r.Apply(moderation.ActOwner, owner, moderation.Limit{})
		}, codec.AuditEntry{Target: owner}); err != nil {
			return err
		}
	}
	if c.Topic != nil {
		if err := h.setTopic(a, name, *c.Topic); err != nil {
			return err
		}
	}
	if c.Private != nil {
		return h.setPrivate(a, name, *c.Private)
	}
	return nil
}

// Moderate takes a room moderation action on an account, as a.
func (h *Hub) Moderate(a moderation.Actor, m api.Moderate) error {
	switch moderation.Action(m.Action) {
	case moderation.ActBan, moderation.ActUnban, moderation.ActMute, moderation.ActUnmute, moderation.ActKick,
		moderation.ActOp, moderation.ActDeop, moderation.ActInvite, moderation.ActUninvite:
	default:
		return fmt.Errorf("%w: action is ban, unban, mute, unmute, kick, op, deop, invite or uninvite", codec.ErrBadRequest)
	}
	if m.Account == "" {
		return fmt.Errorf("%w: account is required", codec.ErrBadRequest)
	}
	return h.moderate(a, &codec.Request{Type: m.Action, Room: m.Room, Account: m.Account, Duration: m.Duration, Reason: m.Reason})
}
