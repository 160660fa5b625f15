#!/usr/bin/env bash
# Fan-out of two commits of parley, taking turns round after round, so
# that both share the machine's state: the cost of a change on make
# bench's Parley rows and on the chat scenario.
#
#   scripts/bench-commits.sh 557b9f3 HEAD
#
# Each commit is built into a temporary directory from a clone of this
# repository; each binary's own `parley bench` starts its own server.
# ROUNDS rounds (default 2), the second commit first every other round;
# BENCHFLAGS and BENCHCHATFLAGS override the load (defaults below);
# results go to bench-results/commits-<round>-<commit>. Everything listens
# on 127.0.0.1 on free ports and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
BENCHFLAGS=${BENCHFLAGS:---target parley,parley-ws --lean --conns 1000,10000 --rate 10,100,0 --duration 5s --warmup 1s --drain 2s}
BENCHCHATFLAGS=${BENCHCHATFLAGS:---scenario chat --target parley --lean --conns 10000 --rate 50 --duration 10s --warmup 2s --drain 5s}
[ $# -eq 2 ] || { echo "usage: $0 before-commit after-commit" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for c in "$1" "$2"; do
	git clone -q . "$work/src-$c"
	git -C "$work/src-$c" checkout -q "$c"
	(cd "$work/src-$c" && go build -o "$work/parley-$c" ./cmd/parley)
done

for round in $(seq "$ROUNDS"); do
	order=("$1" "$2")
	[ $((round % 2)) -eq 0 ] && order=("$2" "$1")
	for c in "${order[@]}"; do
		echo "=== round $round: $c"
		# shellcheck disable=SC2086
		"$work/parley-$c" bench $BENCHFLAGS --out "bench-results/commits-$round-$c"
		# shellcheck disable=SC2086
		"$work/parley-$c" bench $BENCHCHATFLAGS --out "bench-results/commits-$round-$c"
	done
done
