package hub

import (
	"crypto/rand"
	"encoding/base64"
	stdjson "encoding/json"
	"fmt"
	"time"

	"parley/codec"
	"parley/server/broker"
)

// Every room remembers its last messages (docs/PROTOCOL.md "History and
// resume"): the frames as members received them, at most HistoryLen per
// room, none older than HistoryAge, HistoryBytes for all rooms together
// (past it, the oldest message of all goes first, whichever room holds
// it, down to none: ages.go). The
// history lives under the room's lock, beside its seq, so that a resume
// replays it and joins the live stream in one critical section: nothing is
// sent twice and nothing falls between.

// histEntry is one remembered room message.
type histEntry struct {
	seq   uint64
	frame []byte     // the length-prefixed msg frame
	at    int64      // when it was remembered, h.mono()
	amend *amendment // its reactions; nil when none (amend.go)
}

// histOverhead is what an entry costs besides its frame, as counted
// against HistoryBytes.
const histOverhead = 48

// defaultHistoryLimit is a history request's limit when it gives none.
const defaultHistoryLimit = 50

// newEpoch returns a fresh epoch: the room's sequence started anew here.
func newEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// rememberLocked keeps a stored message in r's history, and in the store;
// stored, when not nil, hears when the store has it (at once for
// MemoryHistory, or without history). The caller runs trimHistory once it
// has let go of r.mu. r.mu held.
func (h *Hub) rememberLocked(r *room, seq uint64, frame []byte, stored func(error)) {
	if h.cfg.HistoryLen <= 0 {
		if stored != nil {
			stored(nil) // nothing is kept: nothing to wait for
		}
		return
	}
	h.cfg.Store.Append(r.name, r.epoch, seq, time.Now(), frame, stored)
	first := len(r.hist) == 0 || len(r.hist) >= h.cfg.HistoryLen
	h.keep(&r.hist, seq, frame)
	h.amendLocked(r, frame, true)
	if first {
		h.ages.update(r) // its oldest message changed
	}
}

// keep appends a message to a history and trims it to HistoryLen. Under
// the lock of the history's room or inbox; HistoryBytes is trimHistory's,
// once no lock is held.
func (h *Hub) keep(hl *histList, seq uint64, frame []byte) {
	h.count.historyKept.Add(1)
	*hl = append(*hl, histEntry{seq: seq, frame: frame, at: h.mono()})
	h.histBytes.Add(int64(cap(frame) + histOverhead))
	for len(*hl) > h.cfg.HistoryLen {
		h.forgetOldest(hl)
	}
}

// trimHistory pushes out the oldest messages of all rooms until their
// histories hold HistoryBytes at most; a room it empties that has no
// member dies. Every path that keeps a message calls it after letting go
// of the room's lock, so the cap is exceeded by at most the messages being
// kept at that moment (one per event loop). Any goroutine, no lock held.
func (h *Hub) trimHistory() {
	for h.cfg.HistoryBytes > 0 && h.histBytes.Load() > h.cfg.HistoryBytes {
		r := h.ages.oldest()
		if r == nil {
			h.trimInboxes()
			return
		}
		r.mu.Lock()
		if len(r.hist) > 0 {
			h.forgetOldest(&r.hist)
			h.count.historyEvicted.Add(1)
		}
		h.ages.update(r)
		dead := !r.dead && h.mayDieLocked(r)
		r.mu.Unlock()
		if dead {
			h.dropRoom(r)
		}
	}
}

// forgetOldest drops a history's oldest message.
func (h *Hub) forgetOldest(hl *histList) {
	l := *hl
	h.histBytes.Add(-int64(cap(l[0].frame) + histOverhead + l[0].amend.size()))
	l[0] = histEntry{}
	if l = l[1:]; len(l) == 0 {
		l = nil // give the array back
	}
	*hl = l
}

// expireOld drops a history's messages remembered before old.
func (h *Hub) expireOld(hl *histList, old int64) {
	for len(*hl) > 0 && (*hl)[0].at < old {
		h.forgetOldest(hl)
	}
}

// expireHistory forgets the messages older than HistoryAge and drops the
// rooms that nothing keeps any more. At most once a second. Ticker
// goroutine.
func (h *Hub) expireHistory(now int64) {
	if h.cfg.HistoryAge <= 0 || now-h.histSwept < int64(time.Second) {
		return
	}
	h.histSwept = now
	old := now - int64(h.cfg.HistoryAge)
	for _, r := range h.rooms.all() {
		r.mu.Lock()
		h.expireOld(&r.hist, old)
		h.ages.update(r)
		dead := !r.dead && h.mayDieLocked(r)
		r.mu.Unlock()
		if dead {
			h.dropRoom(r)
		}
	}
	h.expireInboxes(old)
}

// forgetRoomLocked gives back the history of a room that dies. r.mu held.
func (h *Hub) forgetRoomLocked(r *room) {
	for len(r.hist) > 0 {
		h.forgetOldest(&r.hist)
	}
	h.ages.update(r)
	h.cfg.Store.Forget(r.name)
	h.roomDied(r)
}

// StoredMsg is a room message a HistoryStore kept.
type StoredMsg struct {
	Seq   uint64
	At    time.Time
	Frame []byte
}

// Restore gives the hub a room's history from its store, before Start:
// the room continues its seq and epoch, unless fresh asks for a new epoch
// (the store was not closed cleanly, so seqs after its last message may
// have been seen). Messages beyond HistoryLen or older than HistoryAge are
// left out.
func (h *Hub) Restore(name, epoch string, msgs []StoredMsg, fresh bool) {
	defer h.trimHistory()
	r := h.rooms.acquire(name, h.newRoom)
	defer r.mu.Unlock()
	defer h.ages.update(r)
	if !fresh {
		r.epoch = epoch
	}
	r.followed = true
	for _, m := range msgs {
		age := time.Since(m.At)
		if h.cfg.HistoryAge > 0 && age > h.cfg.HistoryAge || m.Seq <= r.seq {
			continue
		}
		r.seq, r.issued = m.Seq, m.Seq
		r.hist = append(r.hist, histEntry{seq: m.Seq, frame: m.Frame, at: h.mono() - int64(age)})
		h.histBytes.Add(int64(cap(m.Frame) + histOverhead))
		for len(r.hist) > max(h.cfg.HistoryLen, 1) {
			h.forgetOldest(&r.hist)
		}
		h.amendLocked(r, m.Frame, false)
	}
}

// histList is a history, oldest first: a room's or an account's direct
// messages.
type histList []histEntry

// from returns the index of the first entry after seq since.
func (hl histList) from(since uint64) int {
	if len(hl) == 0 || since < hl[0].seq {
		return 0
	}
	i := int(since - hl[0].seq + 1) // seqs are consecutive unless a gap was delivered
	if i > len(hl) {
		i = len(hl)
	}
	for i > 0 && hl[i-1].seq > since {
		i--
	}
	for i < len(hl) && hl[i].seq <= since {
		i++
	}
	return i
}

// page returns the entries of a history request (after since, before
// before, the oldest first when since is given, else the newest) and
// whether more lie beyond them in that direction.
func (hl histList) page(since, before *uint64, limit int) ([]histEntry, bool) {
	lo, hi := 0, len(hl)
	if since != nil {
		lo = hl.from(*since)
	}
	if before != nil {
		hi = 0
		if *before > 0 {
			hi = hl.from(*before - 1)
		}
	}
	hi = max(hi, lo)
	if since != nil {
		end := min(hi, lo+limit)
		return hl[lo:end], end < hi || before == nil && end < len(hl)
	}
	from := max(lo, hi-limit)
	return hl[from:hi], from > lo
}

// historyLimit checks a history request's limit.
func historyLimit(limit *int) (int, error) {
	switch {
	case limit == nil:
		return defaultHistoryLimit, nil
	case *limit < 1 || *limit > codec.HistoryPage:
		return 0, fmt.Errorf("%w: limit is 1 to %d", codec.ErrBadRequest, codec.HistoryPage)
	}
	return *limit, nil
}

func (h *Hub) handleHistory(s *Session, req *codec.Request) error {
	if req.DM {
		return h.handleDMHistory(s, req)
	}
	r, err := h.memberRoom(s, req.Room)
	if err != nil {
		return err
	}
	limit, err := historyLimit(req.Limit)
	if err != nil {
		return err
	}
	r.mu.Lock()
	lo, hi := wanted(req.Since, req.Before, limit, r.seq)
	if lo > hi || !h.brokerLog || r.coversLocked(lo-1) {
		entries, more := r.hist.page(req.Since, req.Before, limit)
		page := newPage(r, req.Ref, more)
		for _, e := range entries {
			page.Msgs = append(page.Msgs, pageFrame(e, s))
		}
		r.mu.Unlock()
		h.sendPage(s, page, req.Since != nil)
		return nil
	}
	page := newPage(r, req.Ref, false)
	last := r.seq
	r.mu.Unlock()
	// Older than what this node delivered: the cluster's log has it.
	return h.call(s, func(done func(func())) {
		h.broker.ReadLog(r.name, lo-1, int(hi-lo+1), func(logged []broker.Logged, err error) {
			done(func() {
				if err != nil {
					h.replyError(s, unavailable(err), req.Ref)
					return
				}
				for _, l := range logged {
					page.Msgs = append(page.Msgs, l.Frame[4:])
				}
				page.More = req.Since == nil && lo > 1 || req.Since != nil && (len(logged) == 0 || logged[len(logged)-1].Seq < last)
				h.sendPage(s, page, req.Since != nil)
			})
		})
	})
}

// sendPage sends a page that fits in one frame of MaxFrame bytes: the
// messages beyond it, at the page's far end from the seq asked about
// (the newest after since, else the oldest), are left for the next page,
// and more says so. The page costs s flood budget by its bytes (byteCost);
// one the budget does not cover now is refused with rate_limited.
func (h *Hub) sendPage(s *Session, page *codec.Page, fromSince bool) {
	budget := h.cfg.MaxFrame - pageOverhead
	size := 0
	for i := range page.Msgs {
		j := i
		if !fromSince {
			j = len(page.Msgs) - 1 - i
		}
		n := len(page.Msgs[j]) + 1
		if size+n > budget {
			if fromSince {
				page.Msgs = page.Msgs[:i]
			} else {
				page.Msgs = page.Msgs[j+1:]
			}
			page.More = true
			break
		}
		size += n
	}
	// Charged before it is encoded: a page refused costs no encoding.
	if cost := byteCost(size + pageOverhead); !h.charge(s, cost) {
		h.replyError(s, fmt.Errorf("%w: this history page costs %d frames of the rate limit (one per %d bytes); ask again later or for fewer", codec.ErrRateLimited, cost, costUnit), page.Ref)
		return
	}
	s.send(codec.MustEncode(page))
}

// pageOverhead bounds a history page's fields besides its messages.
const pageOverhead = 512

func newPage(r *room, ref string, more bool) *codec.Page {
	return &codec.Page{Room: r.name, Epoch: r.epoch, More: more, Ref: ref, Msgs: []stdjson.RawMessage{}}
}

// wanted returns the seqs a history request asks for, from lo to hi
// (empty if lo > hi), in a room whose last seq is last.
func wanted(since, before *uint64, limit int, last uint64) (lo, hi uint64) {
	hi = last
	if before != nil {
		hi = min(hi, max(*before, 1)-1)
	}
	if since != nil {
		return *since + 1, min(hi, *since+uint64(limit))
	}
	return max(hi, uint64(limit)) - uint64(limit) + 1, hi
}

// replayBytesPerSecond is the server's replay budget: the bytes all
// resumes' replays may send per second, with bursts of as many.
const replayBytesPerSecond = 32 << 20
