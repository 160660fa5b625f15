package transport

import (
	"sync/atomic"

	"parley/server/hub"
)

// Names are the ways a session connects, the values of the transport
// label of the connection metrics, indexed by TCP, TLS and WS.
var Names = [...]string{"tcp", "tls", "ws"}

// The transports, as indexes of Names and Counts.
const (
	TCP = iota
	TLS
	WS
)

// RefusalLimits are the limits a connection is refused for (hub.Refuse),
// the values of parley_connections_refused_total's limit label.
var RefusalLimits = []string{"max-conns", "max-conns-per-ip", LimitConnRate, LimitMaxHTTPConns, hub.LimitBanned}

// Counts counts connections by transport. Safe from any goroutine.
type Counts struct {
	open     [len(Names)]atomic.Int64
	accepted [len(Names)]atomic.Uint64
	writes   [len(Names)]atomic.Uint64
}

func (t *Counts) opened(i int) { t.open[i].Add(1); t.accepted[i].Add(1) }
func (t *Counts) closed(i int) { t.open[i].Add(-1) }
func (t *Counts) wrote(i int)  { t.writes[i].Add(1) }

// Writes is how many writes the hub's frames for connections of
// transport i took: one per connection and wake, however many frames it
// held (a TLS or WebSocket connection's handshake and control answers
// count too). Deliveries divided by it is how well writes batch.
func (t *Counts) Writes(i int) uint64 { return t.writes[i].Load() }

// Open is how many connections of transport i are open.
func (t *Counts) Open(i int) int64 { return t.open[i].Load() }

// Accepted is how many connections of transport i were handed to the hub.
func (t *Counts) Accepted(i int) uint64 { return t.accepted[i].Load() }
