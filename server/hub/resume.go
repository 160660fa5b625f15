package hub

import (
	"time"

	"parley/codec"
	"parley/server/broker"
)

// Resume: a login or a join that names where the client was gets what
// it missed, replayed from the history (or the cluster's log) before any
// live message, within the session's and the server's replay budgets.

// resume is where a client left a room: the last seq it saw and the
// room's epoch then; and what was read from the cluster's log for it.
type resume struct {
	since    uint64
	epoch    string
	pre      []broker.Logged
	read     bool // pre was read: do not read again
	reserved bool // the server's replay budget was drawn on: do not again
}

// resumeOf is the resume a login or join asks for, or nil.
func resumeOf(req *codec.Request) *resume {
	if req.Since == nil {
		return nil
	}
	return &resume{since: *req.Since, epoch: req.Epoch}
}

// coversLocked reports whether r's history holds every message after
// seq since. r.mu held.
func (r *room) coversLocked(since uint64) bool {
	return since >= r.seq || len(r.hist) > 0 && r.hist[0].seq <= since+1
}

// resumeLocked sends s, which has just become a member of r, the messages
// after rs.since if the room's epoch is still rs.epoch and they are all at
// hand (at most ReplayLimit): those read from the cluster's log before (rs.pre),
// then r's history. A recovered notice follows, saying whether it did.
// r.mu held, so no live message comes between.
func (h *Hub) resumeLocked(s *Session, r *room, rs *resume) {
	since := rs.since
	ok := rs.epoch == r.epoch && since <= r.seq && r.seq-since <= uint64(h.cfg.ReplayLimit)
	var replay [][]byte
	next := since + 1
	for _, l := range rs.pre {
		if ok && l.Seq == next {
			replay, next = append(replay, l.Frame), next+1
		}
	}
	for _, e := range r.hist[r.hist.from(next-1):] {
		if e.seq == next {
			replay, next = append(replay, e.frame), next+1
		}
	}
	ok = ok && next == r.seq+1 // nothing missing up to the last
	if ok && !h.payReplay(s, replay) {
		ok = false
		h.count.replaysShed.Add(1)
	}
	if ok {
		h.count.resumes[1].Add(1)
	} else {
		h.count.resumes[0].Add(1)
	}
	if ok {
		for _, f := range replay {
			s.send(f)
		}
	}
	s.send(codec.MustEncode(&codec.Recovered{Room: r.name, Recovered: ok}))
}

// needsLog reports whether a resume in r must first read the cluster's
// log: its epoch matches, but r's history starts after since. r.mu held.
func (h *Hub) needsLog(r *room, rs *resume) bool {
	return rs != nil && !rs.read && h.brokerLog && rs.epoch == r.epoch && rs.since <= r.seq &&
		r.seq-rs.since <= uint64(h.cfg.ReplayLimit) && !r.coversLocked(rs.since)
}

// readForResume reads what a resume needs from the cluster's log, holding
// s meanwhile, then runs then. Loop goroutine of s.
func (h *Hub) readForResume(s *Session, room string, rs *resume, then func()) error {
	return h.call(s, func(done func(func())) {
		h.broker.ReadLog(room, rs.since, h.cfg.ReplayLimit, func(logged []broker.Logged, err error) {
			done(func() {
				rs.pre, rs.read = logged, true // a failed read replays nothing: recovered false
				then()
			})
		})
	})
}

// A resume's replay costs the session flood budget by its bytes (one
// frame per costUnit): a replay the budget cannot pay for now is not sent
// (recovered false), and the client pages the history, each page paying
// its own way. All replays together draw on the server's replay budget,
// replayBytesPerSecond: a resume that finds it spent waits, its session
// held, until it refills, so that a storm of resumes queues rather than
// starves the loops.

// payReplay takes a replay's cost out of s's flood budget. Loop goroutine
// of s.
func (h *Hub) payReplay(s *Session, replay [][]byte) bool {
	n := 0
	for _, f := range replay {
		n += len(f)
	}
	return n == 0 || h.charge(s, byteCost(n))
}

// replayWaitLocked reserves what rs will replay from r's history out of
// the server's replay budget, once per resume, and returns how long the
// resume must wait for it (0: go on now). A replay that s's own budget
// cannot pay for now, or larger than the server's whole budget, reserves
// nothing: payReplay refuses it. r.mu held; loop goroutine of s.
func (h *Hub) replayWaitLocked(s *Session, r *room, rs *resume) time.Duration {
	if rs == nil || rs.reserved || rs.epoch != r.epoch || rs.since >= r.seq {
		return 0
	}
	rs.reserved = true
	n := 0
	for _, e := range r.hist[r.hist.from(rs.since):] {
		n += len(e.frame)
	}
	if n == 0 || n > replayBytesPerSecond || s.limiter != nil && s.limiter.Tokens() < float64(byteCost(n)-1) {
		return 0
	}
	res := h.replays.ReserveN(time.Now(), n)
	if !res.OK() {
		return 0
	}
	if d := res.Delay(); d > 0 {
		h.count.replaysQueued.Add(1)
		return d
	}
	return 0
}
