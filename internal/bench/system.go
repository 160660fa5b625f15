package bench

import "fmt"

// system is one benchmarked system: how its server starts (or is found),
// how a group of receivers joins it, and how a sender publishes to it.
// Each lives in a file of its own (parley.go, redis.go, nats.go,
// centrifugo.go, floor.go); systems maps each Target to its system.
type system interface {
	// start starts the server for target t, or finds the one cfg names.
	start(cfg Config, t Target) (*running, error)
	// receivers returns a group of cfg.Conns receivers, not yet open.
	receivers(cfg GroupConfig) (receivers, error)
	// sender connects one sender that publishes to a room.
	sender(sp senderSpec) (sender, error)
}

var systems = map[Target]system{
	TargetParley:        parleySystem{},
	TargetParleyOneLoop: parleySystem{},
	TargetParleyTLS:     parleyStreamSystem{},
	TargetParleyWS:      parleyStreamSystem{},
	TargetCentrifugo:    centrifugoSystem{},
	TargetRedis:         redisSystem{},
	TargetNATS:          natsSystem{},
	TargetFloor:         floorSystem{},
}

// systemOf is t's system.
func systemOf(t Target) (system, error) {
	if s, ok := systems[t]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("bench: unknown target %q", t)
}

// startTarget starts (or finds) the server for t.
func startTarget(cfg Config, t Target) (*running, error) {
	s, err := systemOf(t)
	if err != nil {
		return nil, err
	}
	return s.start(cfg, t)
}

// openLocalGroup opens cfg's receivers in this process.
func openLocalGroup(cfg GroupConfig) (receivers, error) {
	s, err := systemOf(cfg.Target)
	if err != nil {
		return nil, err
	}
	g, err := s.receivers(cfg)
	if err != nil {
		return nil, err
	}
	if err := g.open(); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// senderSpec is one sender: where it connects (with the certificate to
// trust over TLS), its name, its room and its messages' size.
type senderSpec struct {
	target                    Target
	addr, certPEM, name, room string
	size                      int
}

// openSender connects one sender to its target's server.
func openSender(sp senderSpec) (sender, error) {
	s, err := systemOf(sp.target)
	if err != nil {
		return nil, err
	}
	return s.sender(sp)
}
