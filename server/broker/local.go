package broker

import "parley/codec"

// Local is the broker of a single node: there are no other nodes, so
// every room is sequenced here, every nick is claimed here and every call
// completes inline. It keeps the sorted directory of the users online.
// The zero value is not ready: use NewLocal. Safe from any goroutine.
type Local struct {
	h     Handler
	users *Directory
}

// NewLocal returns the broker of a single node.
func NewLocal() *Local { return &Local{users: NewDirectory()} }

// Start records the hub.
func (l *Local) Start(h Handler) error {
	l.h = h
	return nil
}

// Stop does nothing: there is nobody to tell.
func (l *Local) Stop() {}

// Stats is nil: a single node has no cluster.
func (l *Local) Stats() *Stats { return nil }

// ClaimNick always succeeds: the hub checked that no local session holds
// the nick, and there is no other node.
func (l *Local) ClaimNick(c NickClaim, done func(error)) {
	l.users.Add(c.Key, c.Nick)
	done(nil)
}

// NickSessions has nobody to tell: the hub counts its own sessions.
func (l *Local) NickSessions(string, int) {}

// ReleaseNick forgets the user; a hold needs nothing here, since the hub
// keeps it and there is no other node.
func (l *Local) ReleaseNick(key string, _ string) { l.users.Remove(key) }

// Elsewhere is 0: there is no other node.
func (l *Local) Elsewhere(string) int { return 0 }

// Users pages the directory.
func (l *Local) Users(afterKey string, limit int) ([]User, bool, int) {
	return l.users.Page(afterKey, limit)
}

// Lookup finds nobody: there is no other node.
func (l *Local) Lookup(string) (User, bool) { return User{}, false }

// Follow succeeds at once: no other node has members.
func (l *Local) Follow(_ string, done func([]User, uint64, error)) { done(nil, 0, nil) }

// Unfollow has nothing to stop.
func (l *Local) Unfollow(string) {}

// Say sequences here.
func (l *Local) Say(m Message, _ Replier, _ string) (uint64, bool, error) {
	seq, err := l.h.Sequence(m)
	return seq, false, err
}

// Append stores nothing: on a single node a message lives in its room's
// memory, so it counts as stored at once.
func (l *Local) Append(Message, uint64, []byte) bool { return true }

// Joined and Left have nobody to tell.
func (l *Local) Joined(string, User)                       {}
func (l *Local) Left(string, string, string, codec.Reason) {}

// SendDM fails: a user not on this node is not online.
func (l *Local) SendDM(dm DirectMessage, done func(error)) {
	done(codec.NotOnline(codec.ErrNoSuchUser, dm.ToNick))
}

// Members has no other node to ask.
func (l *Local) Members(_ string, done func([]User)) { done(nil) }

// Moderated has nobody to tell.
func (l *Local) Notice(RoomNotice) {}

// NoticeUser has nobody elsewhere to tell.
func (l *Local) NoticeUser(string, []byte) {}

// RoomCounts is nil: there is no other node.
func (l *Local) RoomCounts() []RoomCount { return nil }

// Epoch is empty: a single node keeps no log besides the hub's history.
func (l *Local) Epoch(string) string { return "" }

// ReadLog has no log to read.
func (l *Local) ReadLog(_ string, _ uint64, _ int, done func([]Logged, error)) { done(nil, nil) }
