package hub

// A session's rooms are few (Config.RoomsPerSession, 64 by default) and
// looked up once per request, so they are slices searched in order rather
// than maps: a map's smallest table costs a logged-in session about 300
// bytes more than a slice of one room, and an idle connection is mostly
// what it holds (docs/PERFORMANCE.md, "Memory per connection").

// roomSet is the rooms a session is in. Loop goroutine of the session.
type roomSet []*room

// get returns the room named name, or nil.
func (rs roomSet) get(name string) *room {
	for _, r := range rs {
		if r.name == name {
			return r
		}
	}
	return nil
}

// add puts r in the set; r is not in it.
func (rs *roomSet) add(r *room) { *rs = append(*rs, r) }

// remove takes r out of the set, if it is in it. The order of the others
// may change.
func (rs *roomSet) remove(r *room) {
	s := *rs
	for i, x := range s {
		if x == r {
			last := len(s) - 1
			s[i] = s[last]
			s[last] = nil
			*rs = s[:last]
			return
		}
	}
}

// roomSlot is a session's index in one room's member list on its loop.
type roomSlot struct {
	r   *room
	pos int
}

// slotList is a session's roomSlots. Loop goroutine of the session.
type slotList []roomSlot

// take removes r's slot and returns its position. The order of the
// others may change.
func (sl *slotList) take(r *room) (pos int, ok bool) {
	s := *sl
	i := s.find(r)
	if i < 0 {
		return 0, false
	}
	pos, end := s[i].pos, len(s)-1
	s[i] = s[end]
	s[end] = roomSlot{} // the backing array must not keep r alive
	*sl = s[:end]
	return pos, true
}

// find returns the index of r's slot, or -1.
func (sl slotList) find(r *room) int {
	for i := range sl {
		if sl[i].r == r {
			return i
		}
	}
	return -1
}
