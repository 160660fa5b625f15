package bench

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// natsSystem is core NATS: a subject per room.
type natsSystem struct{}

func (natsSystem) start(cfg Config, _ Target) (*running, error) {
	if cfg.NATSURL != "" {
		return &running{addrs: []string{cfg.NATSURL}, stop: func() {}, note: "using the running NATS server at " + cfg.NATSURL}, nil
	}
	return startChild(cfg.PeerLog, cfg.Exe, func(port int) []string {
		return []string{"bench-nats-server", "--port", strconv.Itoa(port)}
	}, "nats://", "started: nats-server (default limits) in a child process")
}

func (natsSystem) receivers(cfg GroupConfig) (receivers, error) { return newNATSGroup(cfg), nil }

func (natsSystem) sender(sp senderSpec) (sender, error) {
	nc, err := nats.Connect(sp.addr, nats.Name(sp.name))
	if err != nil {
		return nil, err
	}
	return &natsSender{nc: nc, subject: sp.room, size: sp.size}, nil
}

// natsGroup holds receivers of a NATS server through the official client:
// one nats.Conn and one subscription per receiver.
type natsGroup struct {
	cfg   GroupConfig
	sink  *sink
	mu    sync.Mutex
	conns []*nats.Conn
}

func newNATSGroup(cfg GroupConfig) *natsGroup {
	return &natsGroup{cfg: cfg, sink: newSink(cfg.Conns, 64)}
}

func (g *natsGroup) open() error {
	var wg sync.WaitGroup
	var next atomic.Int64
	errc := make(chan error, 1)
	for d := 0; d < 8; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(g.cfg.Conns); i = next.Add(1) - 1 {
				if err := g.subscribe(int(i)); err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (g *natsGroup) subscribe(i int) error {
	nc, err := nats.Connect(g.cfg.Addr, nats.Name(g.cfg.receiverNick(i)), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if err == nats.ErrSlowConsumer {
				g.sink.closedBy("client slow consumer")
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				g.sink.closedBy("disconnected: " + err.Error())
			}
		}))
	if err != nil {
		return fmt.Errorf("connect receiver %d: %w", i, err)
	}
	g.mu.Lock()
	g.conns = append(g.conns, nc)
	g.mu.Unlock()
	shard := i
	if _, err := nc.Subscribe(g.cfg.Room, func(m *nats.Msg) {
		if due, seq, ok := ParseBody(m.Data); ok {
			g.sink.deliver(shard, due, seq, time.Now().UnixNano())
		}
	}); err != nil {
		return err
	}
	return nc.Flush()
}

func (g *natsGroup) setWindow(from, to time.Time) { g.sink.setWindow(from, to) }
func (g *natsGroup) completed() <-chan uint64     { return g.sink.completed }
func (g *natsGroup) collect() GroupReport         { return g.sink.collect() }

func (g *natsGroup) close() {
	g.mu.Lock()
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	for _, nc := range conns {
		nc.Close()
	}
}

// natsSender publishes each message on the subject.
type natsSender struct {
	nc      *nats.Conn
	subject string
	size    int
	body    []byte
}

func (s *natsSender) send(due int64, seq uint64) error {
	s.body = Body(s.body, due, seq, s.size)
	return s.nc.Publish(s.subject, s.body)
}

func (s *natsSender) close() {
	_ = s.nc.Flush()
	s.nc.Close()
}
