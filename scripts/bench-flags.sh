#!/usr/bin/env bash
# Fan-out of one parley binary under different server flags, round after
# round, each on a fresh server, so the variants share the machine's state:
#
#   scripts/bench-flags.sh "--history 0" "--history 1000"
#
# Each argument is one variant's extra `parley serve` flags. ROUNDS rounds
# (default 3); BENCHFLAGS overrides the load (default below); results go to
# bench-results/flags-<round>-<variant>. Everything listens on 127.0.0.1 on
# free ports and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
BENCHFLAGS=${BENCHFLAGS:---conns 10000 --rate 100,0 --duration 10s --warmup 2s --drain 5s}
[ $# -gt 0 ] || { echo "usage: $0 'flags of variant 1' 'flags of variant 2' ..." >&2; exit 2; }
go build -o bin/parley ./cmd/parley

pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
. scripts/ports.sh

for round in $(seq "$ROUNDS"); do
	v=0
	for flags in "$@"; do
		v=$((v + 1))
		port=$(free_port)
		# shellcheck disable=SC2086
		bin/parley serve --addr "127.0.0.1:$port" --rate-limit 0 --max-conn-rate-per-ip 0 --log-level warn $flags &
		pid=$!
		wait_port "$port"
		echo "== round $round: variant $v ($flags)"
		# shellcheck disable=SC2086
		bin/parley bench --addr "127.0.0.1:$port" $BENCHFLAGS --out "bench-results/flags-$round-$v"
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		pid=
	done
done
