#!/usr/bin/env bash
# Fan-out through a two-node cluster: a NATS server with JetStream, two
# `parley serve --nats` nodes, and `parley bench` with its receivers and
# senders spread over both nodes (each --procs worker and each sender takes
# the next node in turn), so half the deliveries cross the bus.
#
#   scripts/bench-cluster.sh [parley-binary ...]
#
# With several binaries (for example an earlier build beside this one),
# each round measures every binary in turn, with a fresh cluster, so they
# share the machine's state; ROUNDS rounds. Everything listens on
# 127.0.0.1 on free ports and stops by itself. BENCHFLAGS overrides the
# load (default below); results go to bench-results/cluster-<n>-<binary>.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
BENCHFLAGS=${BENCHFLAGS:---conns 2000 --procs 2 --senders 2 --rate 1000,0 --duration 8s --warmup 2s --drain 5s}
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
	go build -o bin/parley ./cmd/parley
	bins=(bin/parley)
fi
# The NATS server comes from the first binary (hidden bench-nats-server).
nats_bin=${bins[0]}

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

. scripts/ports.sh

nats_port=$(free_port)
"$nats_bin" bench-nats-server --port "$nats_port" --jetstream-dir "$work/js" &
pids+=($!)
wait_port "$nats_port"

for round in $(seq "$ROUNDS"); do
	for bin in "${bins[@]}"; do
		name=$(basename "$bin")
		cluster="bench${round}${RANDOM}"
		a=$(free_port)
		b=$(free_port)
		node_pids=()
		for spec in "a:$a" "b:$b"; do
			"$bin" serve --addr "127.0.0.1:${spec#*:}" --nats "nats://127.0.0.1:$nats_port" \
				--node-id "${spec%%:*}" --cluster-name "$cluster" --rate-limit 0 --max-conn-rate-per-ip 0 \
				--log-level warn 2>"$work/$name-${spec%%:*}.log" &
			node_pids+=($!)
			pids+=($!)
		done
		wait_port "$a"
		wait_port "$b"
		echo "== round $round: $bin (cluster $cluster)"
		# shellcheck disable=SC2086
		"${bins[0]}" bench --addr "127.0.0.1:$a,127.0.0.1:$b" $BENCHFLAGS --out "bench-results/cluster-$round-$name"
		for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done
		for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	done
done
