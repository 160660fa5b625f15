package bench

import (
	"context"
	"fmt"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// RunNATSServer runs a real NATS server (the pinned nats-server module) on
// 127.0.0.1:port with its default limits until ctx ends; with storeDir
// set, JetStream is on and stores there (what a Parley cluster needs).
// `parley bench` starts it in a child process, so it is measured like a
// separate server.
func RunNATSServer(ctx context.Context, port int, storeDir string) error {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true, MaxConn: 1 << 20,
		JetStream: storeDir != "", StoreDir: storeDir})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("nats server did not start")
	}
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}
