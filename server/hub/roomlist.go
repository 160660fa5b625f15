package hub

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"parley/codec"
	"parley/server/broker"
)

// The room list (rooms): the public rooms with members, largest first,
// from a snapshot rebuilt at most once a second, so that a page costs
// O(page) and a client paging through sees one consistent order.

// roomListAge is how old a room list snapshot may be before a request
// rebuilds it.
const roomListAge = time.Second

// roomsCost is the flood budget, in frames, of a rooms request.
const roomsCost = 10

// roomList is the latest snapshot. Safe from any goroutine.
type roomList struct {
	mu    sync.Mutex
	built time.Time
	rooms []codec.RoomInfo
}

func (h *Hub) handleRooms(s *Session, req *codec.Request) error {
	if !h.charge(s, roomsCost) {
		return fmt.Errorf("%w: rooms costs %d frames of the rate limit", codec.ErrRateLimited, roomsCost)
	}
	limit, err := pageLimit(req.Limit, codec.RoomsPage)
	if err != nil {
		return err
	}
	if req.Offset < 0 {
		return fmt.Errorf("%w: offset is 0 or more", codec.ErrBadRequest)
	}
	all := h.roomSnapshot()
	from := min(req.Offset, len(all))
	to := min(from+limit, len(all))
	page := append([]codec.RoomInfo{}, all[from:to]...)
	s.send(codec.MustEncode(&codec.RoomList{Total: len(all), Rooms: page, More: to < len(all), Ref: req.Ref}))
	return nil
}

// roomSnapshot returns the room list, rebuilt if it is older than
// roomListAge. The slice is shared: never changed once built.
func (h *Hub) roomSnapshot() []codec.RoomInfo {
	l := &h.gov.list
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.built) >= roomListAge {
		l.rooms, l.built = h.buildRoomList(), now
	}
	return l.rooms
}

// buildRoomList lists the rooms with members, here and as the other
// nodes last reported theirs, without the private ones, by members then
// name. It holds one lock at a time.
func (h *Hub) buildRoomList() []codec.RoomInfo {
	counts := map[string]int{}
	for _, list := range [][]broker.RoomCount{handler{h}.LocalRoomCounts(), h.broker.RoomCounts()} {
		for _, c := range list {
			counts[c.Room] += c.Count
		}
	}
	out := make([]codec.RoomInfo, 0, len(counts))
	for name, n := range counts {
		out = append(out, codec.RoomInfo{Room: name, Count: n})
	}
	g := h.gov
	g.mu.Lock()
	kept := out[:0]
	for _, info := range out {
		if rules := g.rooms[info.Room]; rules != nil {
			if rules.Private {
				continue
			}
			info.Topic = rules.Topic
		}
		kept = append(kept, info)
	}
	g.mu.Unlock()
	sort.Slice(kept, func(i, j int) bool {
		if kept[i].Count != kept[j].Count {
			return kept[i].Count > kept[j].Count
		}
		return kept[i].Room < kept[j].Room
	})
	return kept
}
