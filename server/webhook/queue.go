package webhook

import (
	"sync"
)

// Queue is one webhook's events waiting for delivery, oldest first, each
// numbered by its place. A Queue is used by one Sink at a time: Append
// from its writer goroutine, Peek and Remove from the webhook's
// deliverer.
type Queue interface {
	// Append adds events at the end and drops the oldest beyond max
	// events, returning how many it dropped.
	Append(events [][]byte, max int) (dropped int, err error)
	// Peek returns up to n of the oldest events, together at most about
	// maxBytes, with the place of the last.
	Peek(n, maxBytes int) (events [][]byte, last uint64, err error)
	// Remove drops every event up to the place last.
	Remove(last uint64) error
	// Len is how many events wait.
	Len() int
}

// MemoryQueue is the Queue of a server without --data-dir: a restart
// loses what waits in it.
type MemoryQueue struct {
	mu     sync.Mutex
	events [][]byte
	first  uint64 // the place of events[0]
}

// NewMemoryQueue returns an empty queue.
func NewMemoryQueue() *MemoryQueue { return &MemoryQueue{first: 1} }

// Append adds events and drops the oldest beyond max.
func (q *MemoryQueue) Append(events [][]byte, max int) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.events = append(q.events, events...)
	dropped := 0
	if over := len(q.events) - max; over > 0 {
		clear(q.events[:over])
		q.events = q.events[over:]
		q.first += uint64(over)
		dropped = over
	}
	return dropped, nil
}

// Peek returns the oldest events.
func (q *MemoryQueue) Peek(n, maxBytes int) ([][]byte, uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out [][]byte
	size := 0
	for i := 0; i < len(q.events) && i < n; i++ {
		if i > 0 && size+len(q.events[i]) > maxBytes {
			break
		}
		out = append(out, q.events[i])
		size += len(q.events[i])
	}
	return out, q.first + uint64(len(out)) - 1, nil
}

// Remove drops the events up to last.
func (q *MemoryQueue) Remove(last uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if last < q.first {
		return nil // dropped for the bound meanwhile
	}
	n := min(int(last-q.first+1), len(q.events))
	clear(q.events[:n])
	q.events = q.events[n:]
	q.first += uint64(n)
	return nil
}

// Len is how many events wait.
func (q *MemoryQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}
