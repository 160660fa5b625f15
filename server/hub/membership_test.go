package hub

import (
	"fmt"
	"testing"

	"parley/codec"
)

// TestMemberListsStayConsistent: members in several rooms leave them in
// an order that moves others around in the rooms' member lists; after
// each leave every member's slot still names its place in each list, and
// its rooms are exactly the ones it joined and did not leave.
func TestMemberListsStayConsistent(t *testing.T) {
	h, loop := oneLoopHub(t, testConfig())
	rooms := []string{"a", "b", "c"}
	var sessions []*Session
	for i := range 12 {
		s, _ := openMember(t, h, loop, fmt.Sprint("m", i), rooms...)
		sessions = append(sessions, s)
	}
	check := func(when string) {
		t.Helper()
		for _, name := range rooms {
			r := h.rooms.get(name)
			for pos, s := range r.local[0] {
				i := s.slots.find(r)
				if i < 0 || s.slots[i].pos != pos {
					t.Fatalf("%s: %s is at %d in %s, its slot says %v", when, s.nick, pos, name, s.slots)
				}
				if s.rooms.get(name) != r {
					t.Fatalf("%s: %s is listed in %s but its rooms are %v", when, s.nick, name, s.rooms)
				}
			}
		}
		for _, s := range sessions {
			if len(s.slots) != len(s.rooms) {
				t.Fatalf("%s: %s has %d slots for %d rooms", when, s.nick, len(s.slots), len(s.rooms))
			}
		}
	}
	check("after the joins")
	leave := func(s *Session, room string) {
		f := codec.MustEncode(&codec.Leave{Room: room})
		s.loop.enter()
		h.handleFrame(s, f[codec.HeaderSize:])
		s.loop.leave()
		for loop.run() {
		}
	}
	// From the front, the middle and the back of each list, each member's
	// rooms in a different order.
	for k, i := range []int{0, 5, 11, 3, 8, 1} {
		s := sessions[i]
		for j := range rooms {
			name := rooms[(j+k)%len(rooms)]
			leave(s, name)
			check(fmt.Sprintf("%s left %s", s.nick, name))
		}
	}
}
