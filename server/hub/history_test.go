package hub

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"parley/codec"
	"parley/server/broker"
)

// TestHistoryMemoryPerMessage: 100 rooms of 1,000 stored messages with
// 100-byte bodies cost little more than their frames: the history keeps
// the frame members received, not a copy, and an entry beside it.
func TestHistoryMemoryPerMessage(t *testing.T) {
	cfg := testConfig()
	cfg.HistoryLen, cfg.HistoryBytes, cfg.ReplayLimit = 1000, 1<<30, 1000
	h := New(cfg, broker.NewLocal())
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	const rooms, per = 100, 1000
	for i := range rooms {
		r := h.rooms.acquire(fmt.Sprint("r", i), h.newRoom)
		r.followed = true
		r.mu.Unlock()
	}
	body := strings.Repeat("b", 100)
	frameLen := len(codec.MustEncode(&codec.Msg{From: "someone", Room: "r10", Body: body, TS: 1764590000000, Seq: 500}))
	before := heap()
	for i := range rooms {
		for range per {
			if _, err := (handler{h}).Sequence(broker.Message{Room: fmt.Sprint("r", i), Key: "someone", Nick: "someone", Body: body, TS: 1764590000000}); err != nil {
				t.Fatal(err)
			}
		}
	}
	perMsg := float64(heap()-before) / (rooms * per)
	cost := h.histBytes.Load() / (rooms * per)
	t.Logf("history: %.0f bytes of heap per stored message with a %d-byte frame (100-byte body); the hub counts %d bytes each against --history-bytes", perMsg, frameLen, cost)
	if perMsg > float64(2*(frameLen+histOverhead)) {
		t.Fatalf("%.0f bytes per message, over twice the frame and its entry", perMsg)
	}
	runtime.KeepAlive(h)
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
