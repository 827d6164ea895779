#!/usr/bin/env bash
# bench-scale: 100,000 authenticated connections on this box over several
# edge processes (each under the 20,000 open-file limit) attached to one
# NATS, while pushes go to random users at a fixed rate; reports latency,
# loss and each edge's RSS. Run with `make bench-scale`; tune with the
# variables below. Logs go to ./.bench-scale/.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}            # connections (= users)
EDGES=${EDGES:-6}         # edge processes; N/EDGES must stay under ~19,000
PROCS=${PROCS:-$EDGES}    # load-generator processes
RATE=${RATE:-10000}       # pushes per second
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
NATS_PORT=${NATS_PORT:-14222}
EDGE_BASE=${EDGE_BASE:-19600}
BIN=${BIN:-bin/plex}
DIR=.bench-scale

[ -x "$BIN" ] || { echo "bench-scale: $BIN missing; run make build" >&2; exit 1; }
if [ $((N / EDGES)) -gt 19000 ]; then
	echo "bench-scale: $N connections over $EDGES edges is over 19,000 per edge (the open-file limit is 20,000)" >&2
	exit 2
fi
rm -rf "$DIR" && mkdir -p "$DIR"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	sleep 2
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

"$BIN" nats --nats-port "$NATS_PORT" >"$DIR/nats.log" 2>&1 &
pids+=($!); nats_pid=$!
sleep 1
NATS="nats://127.0.0.1:$NATS_PORT"
"$BIN" auth --verifier dev --allow-dev --nats "$NATS" >"$DIR/auth.log" 2>&1 &
pids+=($!)
addrs=""
edge_pids=()
for i in $(seq 1 "$EDGES"); do
	port=$((EDGE_BASE + i))
	# Several edges share two cores: --gomaxprocs auto (the default) keeps
	# each on one P at this load (see BENCHMARKS.md).
	"$BIN" edge --nats "$NATS" --bind 127.0.0.1 --port "$port" --edge-id "scale-$i" \
		--max-conns 19000 --read-loops 1 >"$DIR/edge-$i.log" 2>&1 &
	pids+=($!); edge_pids+=($!)
	addrs="${addrs:+$addrs,}127.0.0.1:$port"
done
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo "bench-scale: $N users over $EDGES edges ($addrs), $PROCS load processes, $RATE pushes/s for $DURATION"
before=(); for p in "${edge_pids[@]}"; do before+=("$(rss "$p")"); done

cpu_pids=$(IFS=,; echo "${edge_pids[*]},$nats_pid")
# One P per load process too: six of them share the two cores.
GOMAXPROCS=${BENCH_GOMAXPROCS:-1} "$BIN" bench push --addr "$addrs" --nats "$NATS" -n "$N" --procs "$PROCS" --concurrency 64 \
	--rate "$RATE" --random --duration "$DURATION" --warmup "$WARMUP" --inflight 5 --publishers 1 \
	--uid-prefix scale- --cpu-pids "$cpu_pids" | tee "$DIR/result.txt"

total=0
for i in "${!edge_pids[@]}"; do
	after=$(rss "${edge_pids[$i]}")
	echo "edge $((i + 1)): RSS $((before[$i] / 1024)) MiB idle -> $((after / 1024)) MiB with its share of $N connections"
	total=$((total + after - before[$i]))
done
echo "edges: $((total * 1024 / N)) bytes of RSS per connection (all edges, after the run)"
