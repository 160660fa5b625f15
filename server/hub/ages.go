package hub

import (
	stdheap "container/heap"
	"sync"
)

// roomAges orders the rooms that keep a history by the age of their
// oldest message, so that past HistoryBytes the oldest message of all is
// pushed out first, whichever room holds it, down to none: a room's last
// message is not spared, and an empty room without members then dies. It
// keeps each room's key itself, so that ordering never reads another
// room's history. Lock order: a room's mu, then roomAges.mu. Safe from
// any goroutine.
type roomAges struct {
	mu    sync.Mutex
	items []ageItem // a min-heap by at; room.ageIdx is an item's index + 1
}

type ageItem struct {
	r  *room
	at int64 // when r's oldest message was kept, Hub.mono
}

// update records r's oldest message now: r enters, moves in or leaves the
// order. r.mu held.
func (a *roomAges) update(r *room) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case len(r.hist) == 0 && r.ageIdx > 0:
		stdheap.Remove(a, r.ageIdx-1)
	case len(r.hist) == 0:
	case r.ageIdx > 0:
		a.items[r.ageIdx-1].at = r.hist[0].at
		stdheap.Fix(a, r.ageIdx-1)
	default:
		stdheap.Push(a, ageItem{r: r, at: r.hist[0].at})
	}
}

// oldest returns the room holding the oldest message, or nil.
func (a *roomAges) oldest() *room {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.items) == 0 {
		return nil
	}
	return a.items[0].r
}

// heap.Interface, under a.mu.
func (a *roomAges) Len() int           { return len(a.items) }
func (a *roomAges) Less(i, j int) bool { return a.items[i].at < a.items[j].at }
func (a *roomAges) Swap(i, j int) {
	a.items[i], a.items[j] = a.items[j], a.items[i]
	a.items[i].r.ageIdx, a.items[j].r.ageIdx = i+1, j+1
}

func (a *roomAges) Push(x any) {
	it := x.(ageItem)
	it.r.ageIdx = len(a.items) + 1
	a.items = append(a.items, it)
}

func (a *roomAges) Pop() any {
	last := len(a.items) - 1
	it := a.items[last]
	a.items[last] = ageItem{}
	a.items = a.items[:last]
	it.r.ageIdx = 0
	return it
}
