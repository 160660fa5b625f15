package hub

import (
	"sync"
	"sync/atomic"

	"parley/server/broker"
)

// room is a chat room. Fields under mu are shared; local is split by loop,
// and each loop's part is touched only by that loop's goroutine, through
// itemAdd and itemRemove applied in order with the room's messages.
type room struct {
	name string

	mu      sync.Mutex
	seq     uint64             // last seq delivered to the local members
	issued  uint64             // last seq given out here, as the room's sequencer; at least seq
	epoch   string             // names the room's sequence (docs/PROTOCOL.md)
	hist    histList           // its last messages, oldest first (history.go)
	ageIdx  int                // its place in Hub.ages + 1, 0 when absent; under Hub.ages.mu
	members map[string]*member // by nick key (codec.Name.Key)
	perLoop []int              // members on each loop: which loops a broadcast visits
	dead    bool               // emptied and leaving the room table
	limited atomic.Bool        // its rules ban or mute someone: a say checks them (govern.go)

	counted              bool  // over the presence limit: changes are counted
	presJoined, presLeft int   // changes counted since the last presence frame
	presDirty            bool  // a presence frame is due
	presLast             int64 // when the last presence frame went out

	local [][]*Session // per loop: that loop's members

	// What the broker told, under mu. On a single node the room is
	// followed at once and never owned or given remote members.
	remote    map[string]broker.User     // members on other nodes, by nick key
	remoteAt  map[string]map[string]bool // the nodes each of them is a member on
	both      int                        // users who are members here and on another node
	owned     bool                       // the broker sequences it here: keep it while empty
	followed  bool                       // the broker delivers its traffic here
	following []func()                   // joins waiting for Follow to finish; nil when none
	joining   int                        // joins woken by Follow's end and not retried yet: the room may not die before them
	pins      int                        // server API requests using the room (app.go): it may not die under them
	departed  map[string]bool            // remote memberships (departure) that ended while Follow ran: its list of them is stale
}

// member is a user in a room here: the nick once, however many of its
// account's sessions are in the room.
type member struct {
	nick, order string
	account     string // its account's identity key; "" for a nick login
	sessions    int
}

// count is the room's size across the cluster. r.mu held.
func (r *room) count() int { return len(r.members) + len(r.remote) - r.both }

func newRoom(name string, loops int) *room {
	return &room{
		name:    name,
		members: make(map[string]*member),
		perLoop: make([]int, loops),
		local:   make([][]*Session, loops),
	}
}

// publishLocked queues frame for every member except one, one outbox item
// per loop that has members. Callers hold r.mu, which orders the room's
// frames identically on every loop.
func (r *room) publishLocked(h *Hub, frame []byte, except *Session) {
	r.publishSeqLocked(h, frame, except, 0)
}

// publishSeqLocked is publishLocked for a message with its seq: a member
// that has fallen behind may have it dropped, and be told with a gap
// (skip.go). The other loops are woken once the sender's loop has read
// all of what came with the message (loop.wakeLater).
func (r *room) publishSeqLocked(h *Hub, frame []byte, except *Session, seq uint64) {
	var at int64
	if seq > 0 {
		at = h.mono()
	}
	var from *loop
	if except != nil {
		from = except.loop
	}
	for i, n := range r.perLoop {
		if n > 0 {
			h.loops[i].pushFanout(item{kind: itemRoom, room: r, frame: frame, except: except, seq: seq, at: at}, n, from)
		}
	}
}

// addLocal and removeLocal maintain one loop's member list. Loop goroutine
// of index only.
func (r *room) addLocal(index int, s *Session) {
	s.slots = append(s.slots, roomSlot{r, len(r.local[index])})
	r.local[index] = append(r.local[index], s)
}

func (r *room) removeLocal(index int, s *Session) {
	pos, ok := s.slots.take(r)
	if !ok {
		return
	}
	list := r.local[index]
	last := len(list) - 1
	if pos != last {
		list[pos] = list[last]
		moved := list[pos]
		moved.slots[moved.slots.find(r)].pos = pos
	}
	list[last] = nil
	r.local[index] = list[:last]
}

// presenceMembers bounds what a room's presence frames cost: a room of n
// members gets one at most every ⌈n/presenceMembers⌉ intervals, so that
// presence in one room is at most about presenceMembers deliveries an
// interval. A presence frame to a room of thousands is a burst of as many
// writes as a message, and, sent every second while sessions come and go,
// it delayed the messages behind it: the chat benchmark's small-room p99
// went from 11 to 46-90 ms with 20 sessions a second coming and going.
const presenceMembers = 1000
