package hub

import (
	"math/bits"
	"sort"
)

// outq accounts for the bytes a session's transport holds unsent, in
// memory rather than in bytes: gnet keeps what a full socket refuses in
// pooled buffers rounded up to a power of two, one per slice handed over,
// each with a list node. The slow-consumer limits compare this memory.
// Loop goroutine of the session only.
type outq struct {
	written   int64      // bytes handed to the transport since the open
	mem       int64      // memory held for unsent bytes (an upper bound)
	chunks    []outChunk // slices handed over and not yet all sent, oldest first
	markAt    int64      // write deadline: written when the current check began
	markSince int64      // when it began; 0 while nothing is unsent
}

// outChunk is what one write left queued: the offset of its last byte in
// the session's stream and the memory it holds.
type outChunk struct{ end, mem int64 }

// chunkOverhead is the bookkeeping one queued slice costs beside its
// bytes: gnet's list node and this side's outChunk.
const chunkOverhead = 64

// sliceMem is the memory gnet takes to queue n bytes as one slice.
func sliceMem(n int) int64 {
	if n <= 0 {
		return 0
	}
	return int64(1)<<bits.Len(uint(n-1)) + chunkOverhead
}

// queued accounts for the left bytes a write could not send: the tail of
// the slices in l.iov, which gnet queues one pooled buffer each.
func (l *loop) queued(s *Session, left int) {
	var mem int64
	for i := len(l.iov) - 1; i >= 0 && left > 0; i-- {
		part := min(len(l.iov[i]), left)
		mem += sliceMem(part)
		left -= part
	}
	s.out.chunks = append(s.out.chunks, outChunk{end: s.out.written, mem: mem})
	l.addMem(s, mem)
}

// refresh forgets the chunks the socket has taken since the last look.
func (l *loop) refresh(s *Session) {
	if len(s.out.chunks) == 0 {
		return
	}
	buffered := s.conn.Buffered()
	if buffered == 0 {
		l.addMem(s, -s.out.mem)
		clear(s.out.chunks)
		s.out.chunks = s.out.chunks[:0]
		return
	}
	sent := s.out.written - int64(buffered)
	n := 0
	var freed int64
	for n < len(s.out.chunks) && s.out.chunks[n].end <= sent {
		freed += s.out.chunks[n].mem
		n++
	}
	if n > 0 {
		s.out.chunks = append(s.out.chunks[:0], s.out.chunks[n:]...)
		l.addMem(s, -freed)
	}
}

// addMem changes a session's accounted memory and the server's total.
func (l *loop) addMem(s *Session, d int64) {
	if d == 0 {
		return
	}
	was := s.out.mem
	s.out.mem += d
	s.queuedMem.Store(s.out.mem)
	l.hub.outMem.Add(d)
	switch {
	case was == 0 && s.out.mem > 0:
		l.hub.queues.Add(1)
	case was > 0 && s.out.mem == 0:
		l.hub.queues.Add(-1)
	}
}

// forget drops a closed session's accounting: gnet frees its buffers.
func (l *loop) forget(s *Session) {
	l.addMem(s, -s.out.mem)
	s.out.chunks = nil
}

// overTotal reports whether all sessions together hold more than the
// server-wide outbound budget.
func (h *Hub) overTotal() bool {
	return h.cfg.MaxOutboundTotal > 0 && h.outMem.Load() > h.cfg.MaxOutboundTotal
}

// shed closes this loop's largest queues, largest first, while the server
// is over its outbound budget. Only a queue over its fair share (the
// budget divided among every session with a queue) is a candidate: one
// exists while the total is over the budget, and a loop whose queues are
// all small sheds none of them while another loop holds the large ones.
func (l *loop) shed() {
	share := l.hub.cfg.MaxOutboundTotal / max(l.hub.queues.Load(), 1)
	var big []*Session
	for _, s := range l.sessions {
		if s.out.mem > share && !s.closed && !s.closeAfterFlush {
			big = append(big, s)
		}
	}
	sort.Slice(big, func(i, j int) bool { return big[i].out.mem > big[j].out.mem })
	for _, s := range big {
		if !l.hub.overTotal() {
			return
		}
		l.hub.warn.warn("shed", "outbound budget exceeded: closing the largest queue",
			append(s.logAttrs(), "queued_bytes", s.out.mem, "total_bytes", l.hub.outMem.Load())...)
		l.hub.slowConsumer(s, "server budget")
	}
}

// checkDeadline closes s as a slow consumer when bytes queued for it have
// waited longer than the write deadline. The check is a mark: the bytes
// written when it began must all be sent before the deadline, and once
// they are, a new mark starts. Sweep only.
func (l *loop) checkDeadline(s *Session, now int64) {
	l.refresh(s)
	buffered := s.conn.Buffered()
	if buffered == 0 {
		s.out.markSince = 0
		return
	}
	sent := s.out.written - int64(buffered)
	switch {
	case s.out.markSince == 0 || sent >= s.out.markAt:
		s.out.markAt, s.out.markSince = s.out.written, now
	case now-s.out.markSince > int64(l.hub.cfg.WriteDeadline):
		l.hub.slowConsumer(s, "write deadline")
	}
}
