package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"parley/codec"
)

// tlsGroup holds receivers of Parley's TLS listener, one goroutine each
// reading through an 8 KiB buffer: gnet's client has no TLS.
type tlsGroup struct {
	cfg    GroupConfig
	sink   *sink
	tls    *tls.Config
	ready  atomic.Int64
	readyc chan struct{}
	failed chan error

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newTLSGroup(cfg GroupConfig) (*tlsGroup, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cfg.CertPEM)) {
		return nil, fmt.Errorf("tls receivers: no certificate to trust")
	}
	return &tlsGroup{cfg: cfg, sink: newSink(cfg.Conns, 8), readyc: make(chan struct{}), failed: make(chan error, 1),
		tls: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", ClientSessionCache: tls.NewLRUClientSessionCache(64)}}, nil
}

// open dials every receiver, 8 at a time, and waits for their logins.
func (g *tlsGroup) open() error {
	next := atomic.Int64{}
	errc := make(chan error, 1)
	var dialers sync.WaitGroup
	for d := 0; d < 8; d++ {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for i := next.Add(1) - 1; i < int64(g.cfg.Conns); i = next.Add(1) - 1 {
				if err := g.dial(int(i)); err != nil {
					select {
					case errc <- fmt.Errorf("dial receiver %d: %w", i, err):
					default:
					}
					return
				}
			}
		}()
	}
	dialers.Wait()
	select {
	case err := <-errc:
		return err
	case <-g.readyc:
		return nil
	case err := <-g.failed:
		return err
	case <-time.After(time.Minute):
		return fmt.Errorf("only %d of %d receivers logged in within a minute", g.ready.Load(), g.cfg.Conns)
	}
}

func (g *tlsGroup) dial(i int) error {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", g.cfg.Addr, g.tls)
	if err != nil {
		return err
	}
	if _, err := c.Write(loginFrames(fmt.Sprintf("r%d-%d", g.cfg.Worker, i), g.cfg.Room)); err != nil {
		c.Close()
		return err
	}
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
	g.wg.Add(1)
	go g.read(c, i)
	return nil
}

// read records every delivery until the connection ends.
func (g *tlsGroup) read(c net.Conn, shard int) {
	defer g.wg.Done()
	r := codec.NewReader(c, 0)
	loggedIn := false
	for {
		body, err := r.Next()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if due, seq, ok := ParseFrame(body); ok {
			g.sink.deliver(shard, due, seq, now)
			continue
		}
		var ev codec.Event
		if codec.DecodeEvent(body, &ev) != nil {
			continue
		}
		switch ev.Type {
		case codec.TypePing:
			_, _ = c.Write(pongFrame)
		case codec.TypeWelcome, codec.TypeAck:
			if !loggedIn && (ev.Type == codec.TypeAck || g.cfg.Room == codec.Lobby) {
				loggedIn = true
				if g.ready.Add(1) == int64(g.cfg.Conns) {
					close(g.readyc)
				}
			}
		case codec.TypeError:
			select {
			case g.failed <- fmt.Errorf("receiver refused: %s: %s", ev.Code, ev.Message):
			default:
			}
		case codec.TypeBye:
			g.sink.closedBy(string(ev.Reason))
		}
	}
}

func (g *tlsGroup) setWindow(from, to time.Time) { g.sink.setWindow(from, to) }
func (g *tlsGroup) completed() <-chan uint64     { return g.sink.completed }
func (g *tlsGroup) collect() GroupReport         { return g.sink.collect() }

func (g *tlsGroup) close() {
	g.mu.Lock()
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	g.wg.Wait()
}
