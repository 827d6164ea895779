#!/usr/bin/env bash
# bench: the standard measurements of BENCHMARKS.md, on this box, with NATS,
# the auth service and the edge as separate processes and plex bench as the
# load. Edge and bare-NATS runs alternate, so their ratio is taken in one
# run. Usage: scripts/bench.sh [rounds]   (make build first)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BIN=${BIN:-bin/plex}
DIR=.bench
NATS_PORT=${NATS_PORT:-14322}
EDGE_PORT=${EDGE_PORT:-19700}
NATS="nats://127.0.0.1:$NATS_PORT"
EDGE="127.0.0.1:$EDGE_PORT"
[ -x "$BIN" ] || { echo "bench: $BIN missing; run make build" >&2; exit 1; }
rm -rf "$DIR" && mkdir -p "$DIR"
pids=()
stop_all() {
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	sleep 1.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	pids=()
}
trap stop_all EXIT
head -c 48 /dev/urandom | base64 >"$DIR/jwt.key"

# start [auth flags…]: NATS, an auth service with those flags, an edge.
start() {
	"$BIN" nats --nats-port "$NATS_PORT" >"$DIR/nats.log" 2>&1 & pids+=($!); NATS_PID=$!
	sleep 0.7
	"$BIN" auth --nats "$NATS" "$@" >"$DIR/auth.log" 2>&1 & pids+=($!)
	"$BIN" edge --nats "$NATS" --bind 127.0.0.1 --port "$EDGE_PORT" --metrics-addr 127.0.0.1:0 >"$DIR/edge.log" 2>&1 & pids+=($!); EDGE_PID=$!
	sleep 1
}
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print($1)"; }

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB, $(uname -r), $($BIN --version)"

start --verifier dev --allow-dev
echo "== 1. edge RSS per idle authenticated connection (15,000, NATS in another process)"
"$BIN" bench conns --addr "$EDGE" -n 15000 --edge-pid "$EDGE_PID" --settle 3s 2>/dev/null | tee "$DIR/conns.txt" | tail -2 | head -1

echo "== 2. unicast, 1000 users, <= 5 in flight: edge vs bare NATS ($ROUNDS rounds each, alternating)"
for r in $(seq 1 "$ROUNDS"); do
	for m in "" "--direct"; do
		"$BIN" bench push --addr "$EDGE" --nats "$NATS" -n 1000 --rate max --duration 10s --warmup 2s --inflight 5 $m 2>/dev/null |
			tee "$DIR/push-$r${m:+-direct}.txt" | field "d['mode'], int(d['delivered_per_sec']), 'msg/s; lost', d['lost'], 'reordered', d['reordered'], 'p50', d['latency']['p50_ms'], 'p99', d['latency']['p99_ms']"
	done
done

echo "== 3/4. fixed 10,000 msg/s: CPU per delivered push (edge + nats-server) and latency"
# The saturation runs above doubled the servers' Ps (--gomaxprocs auto);
# give them the 5 s they take to come back down at this load.
sleep 5
for pubs in 4 1; do
	for m in "" "--direct"; do
		pidlist="$EDGE_PID,$NATS_PID"; [ -n "$m" ] && pidlist="$NATS_PID"
		"$BIN" bench push --addr "$EDGE" --nats "$NATS" -n 1000 --rate 10000 --duration 20s --warmup 2s --publishers "$pubs" $m --cpu-pids "$pidlist" 2>/dev/null |
			tee "$DIR/fixed-p$pubs${m:+-direct}.txt" | field "d['mode'], '$pubs publishers:', int(d['delivered_per_sec']), 'msg/s; CPU', round(d['cpu_us_per_msg'],1), 'us/msg; p50', d['latency']['p50_ms'], 'p99', d['latency']['p99_ms'], 'p99.9', d['latency']['p99_9_ms'], 'max', d['latency']['max_ms']"
	done
done

echo "== 5. connect + login rate, 15,000 connections"
"$BIN" bench auth --addr "$EDGE" -n 15000 2>/dev/null | tee "$DIR/auth-dev.txt" | field "'dev verifier', int(d['connect_rate']), 'logins/s; p50', d['login']['p50_ms'], 'p99', d['login']['p99_ms'], 'failed', d['failed']"
stop_all
start --jwt-secret-file "$DIR/jwt.key"
"$BIN" bench auth --addr "$EDGE" -n 15000 --jwt-secret-file "$DIR/jwt.key" 2>/dev/null | tee "$DIR/auth-jwt.txt" | field "'jwt HS256', int(d['connect_rate']), 'logins/s; p50', d['login']['p50_ms'], 'p99', d['login']['p99_ms'], 'failed', d['failed']"
