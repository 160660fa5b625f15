# Parley. `make test` is what CI runs (.ci/run).
GO        ?= go
BIN       := bin/parley
FUZZTIME  ?= 30s

.PHONY: build run test fuzz soak bench bench-rounds bench-app bench-cluster microbench screenshots clean

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/parley

run: build
	./$(BIN) serve --addr :8060

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# Each fuzz target for FUZZTIME (go test runs one fuzz target at a time).
# FuzzServerConn talks to a live server, a few ms per input, so minimizing
# a new input is capped at 5s instead of the default minute.
fuzz:
	$(GO) test ./codec -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./server -run '^$$' -fuzz '^FuzzServerConn$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s

# The long form of the hardening scenarios (docs/RELIABILITY.md), without
# the race detector so the load is real. Under 10 minutes.
SOAKTESTS := TestFlood|TestBystanderLatencyUnderAbuse|TestConnectStorm|TestConnectStormProcess|TestHalfOpenPeers|TestSlowConsumersAtScale|TestChurnSoak|TestShutdownUnderLoad|TestResumeWaveAfterRestart|FuzzServerConn
soak:
	PARLEY_SOAK=1 $(GO) test -count=1 -timeout 10m -v -run '^($(SOAKTESTS))$$' ./server ./cmd/parley

# Parley on TCP (the default loops, and one loop), WebSocket and TLS
# (senders on the receivers' transport), Centrifugo over WebSocket and
# Redis pub/sub side by side at 1,000 and 10,000 receivers: 10 and 100
# messages/s and saturation, 5 s windows; then the chat scenario (10,000
# users in 2,000 rooms, DMs, churn) on Parley over TCP and WebSocket and
# on Redis. Receivers are lean (a goroutine and a small buffer each).
# Installs Debian's redis-server when it is missing, and builds Centrifugo
# v6.9.1 with go install (about 4 minutes, once). Under 8 minutes on 2
# cores after that (docs/PERFORMANCE.md).
BENCHFLAGS ?= --target parley,parley-1loop,parley-ws,parley-tls,centrifugo,redis --lean --conns 1000,10000 --rate 10,100,0 --duration 5s --warmup 1s --drain 2s
BENCHCHATFLAGS ?= --scenario chat --target parley,parley-ws,redis --lean --conns 10000 --rate 50 --duration 10s --warmup 2s --drain 5s
CENTRIFUGO := github.com/centrifugal/centrifugo/v6@v6.9.1

bench: build
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	command -v centrifugo >/dev/null || test -x "$$($(GO) env GOPATH)/bin/centrifugo" || $(GO) install $(CENTRIFUGO)
	./$(BIN) bench $(BENCHFLAGS)
	./$(BIN) bench $(BENCHCHATFLAGS)

# The paced rows of make bench, Parley and Redis only, five rounds taking
# turns: CPU per delivery at a paced rate moves by more between runs than
# the servers differ, and the medians of five rounds' ratios settle it.
# About 8 minutes.
BENCHROUNDSFLAGS ?= --target parley,redis --lean --server-loops 1 --conns 1000,10000 --rate 10,100 --rounds 5 --duration 10s --warmup 1s --drain 2s

bench-rounds: build
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	./$(BIN) bench $(BENCHROUNDSFLAGS)

# What the application's hooks cost a say (docs/API.md "Costs"): no hook,
# a pre-send hook answering at once and after 50 ms, and webhooks taking
# every message, side by side in one run. About 35 seconds.
bench-app:
	PARLEY_BENCH=1 $(GO) test -count=1 -v -run '^TestAppCosts$$' ./server

# The cluster past one machine (docs/CLUSTER.md "Measured"): one NATS
# server, 6 nodes and 6 load processes with 100,000 users, then the scaling
# curve at 1, 2, 3 and 6 nodes with the 18,000 users one node holds. About
# 8 minutes on a 2-core machine.
BENCHCLUSTERFLAGS ?= --cluster-rate 1000
bench-cluster: build
	./$(BIN) bench --cluster --cluster-nodes 6 --cluster-users 100000 $(BENCHCLUSTERFLAGS)
	./$(BIN) bench --cluster --cluster-nodes 1,2,3,6 --cluster-users 18000 --cluster-idle 5s --cluster-duration 20s $(BENCHCLUSTERFLAGS)

# Micro-benchmarks: codec encode/decode and fan-out allocations.
microbench:
	$(GO) test ./codec ./server/hub -run '^$$' -bench . -benchmem

# The web chat's screenshots the README shows (docs/web-chat-*.png), taken
# by the browser test in a headless Chromium.
screenshots:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	PARLEY_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -run '^TestBrowserConversation$$' ./server

clean:
	rm -rf bin bench-results
