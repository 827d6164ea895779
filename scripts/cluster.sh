#!/usr/bin/env bash
# A local Plex cluster for development: three NATS nodes joined by routes,
# three edges (each attached to its own node), the auth service (dev
# verifier) and the HTTP API, as background processes of bin/plex.
#
#   scripts/cluster.sh start    # (make cluster) start what is not running
#   scripts/cluster.sh status   # what runs, where
#   scripts/cluster.sh stop     # (make cluster-stop) stop everything, wait
#
# Logs and pid files go under ./.cluster/ (CLUSTER_DIR). The binary is
# bin/plex (PLEX_BIN), built by `make build`. Ports, all on 127.0.0.1:
#   NATS clients 4222-4224, routes 6222-6224, monitoring 8222-8224
#   edges 9578, 9588, 9598; API 9579
# The API's bearer password is PLEX_INNER_PASSWORD, default "cluster-dev".
# The dev verifier believes any uid: never expose this cluster.
set -euo pipefail

PLEX=${PLEX_BIN:-bin/plex}
[[ -z ${PLEX_BIN:-} || $PLEX == /* ]] || PLEX="$PWD/$PLEX" # relative to the caller
cd "$(dirname "$0")/.."
DIR=${CLUSTER_DIR:-.cluster}
PASSWORD=${PLEX_INNER_PASSWORD:-cluster-dev}
HOST=127.0.0.1
STATS_INTERVAL=1s

NATS_PORTS=(4222 4223 4224)
ROUTE_PORTS=(6222 6223 6224)
MONITOR_PORTS=(8222 8223 8224)
EDGE_PORTS=(9578 9588 9598)
API_PORT=9579

# Every part, in start order; stop goes in reverse.
PARTS=(nats-1 nats-2 nats-3 auth api edge-1 edge-2 edge-3)

die() { echo "cluster: $*" >&2; exit 1; }

pidfile() { echo "$DIR/pids/$1.pid"; }
logfile() { echo "$DIR/logs/$1.log"; }

# marker_of prints the arguments that tell a part's process apart.
marker_of() {
	case $1 in
	nats-*) echo "--server-name n${1#nats-} " ;;
	edge-*) echo "--edge-id $1 " ;;
	auth) echo "auth --verifier " ;;
	api) echo "api --nats " ;;
	esac
}

# pid_of prints the pid of a running part, or fails. A pid file whose
# process is gone, or is no longer ours (the pid was reused), does not count.
pid_of() {
	local f pid cmd
	f=$(pidfile "$1")
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/cmdline ]]; then
		cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline") "
		[[ $cmd == *"$(marker_of "$1")"* ]] || return 1
	fi
	echo "$pid"
}

# port_busy succeeds if something accepts connections on 127.0.0.1:port.
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

nats_url() { echo "nats://$HOST:${NATS_PORTS[$1]}"; }

# nats_list prints the --nats list of a part attached to node i (0-based):
# node i first, then the others to fail over to.
nats_list() {
	local i=$1 out=() k
	for k in 0 1 2; do out+=("$(nats_url $(((i + k) % 3)))"); done
	(IFS=,; echo "${out[*]}")
}

# set_args sets ARGS to the plex command line of a part.
set_args() {
	local part=$1 i k routes=()
	case $part in
	nats-*)
		i=$((${part#nats-} - 1))
		for k in 0 1 2; do [[ $k == "$i" ]] || routes+=("nats-route://$HOST:${ROUTE_PORTS[$k]}"); done
		ARGS=(nats --server-name "n$((i + 1))" --nats-bind "$HOST" --nats-port "${NATS_PORTS[$i]}"
			--cluster-name plex --cluster-listen "$HOST:${ROUTE_PORTS[$i]}"
			--routes "$(IFS=,; echo "${routes[*]}")" --nats-monitor-port "${MONITOR_PORTS[$i]}")
		;;
	auth) ARGS=(auth --verifier dev --allow-dev --nats "$(nats_list 1)") ;;
	api) ARGS=(api --nats "$(nats_list 2)" --http-bind "$HOST" --http-port "$API_PORT" --inner-password "$PASSWORD") ;;
	edge-*)
		i=$((${part#edge-} - 1))
		ARGS=(edge --edge-id "$part" --bind "$HOST" --port "${EDGE_PORTS[$i]}" --advertise "$HOST:${EDGE_PORTS[$i]}"
			--stats-interval "$STATS_INTERVAL")
		if [[ $NO_RANDOMIZE == 1 ]]; then
			ARGS+=(--nats "$(nats_list "$i")" --nats-no-randomize)
		else
			# Without --nats-no-randomize nats.go shuffles a list: give the
			# own node alone. The client still fails over, to the nodes the
			# cluster advertises to it.
			ARGS+=(--nats "$(nats_url "$i")")
		fi
		;;
	esac
}

ports_of() {
	local i
	case $1 in
	nats-*) i=$((${1#nats-} - 1)); echo "${NATS_PORTS[$i]} ${ROUTE_PORTS[$i]} ${MONITOR_PORTS[$i]}" ;;
	api) echo "$API_PORT" ;;
	edge-*) i=$((${1#edge-} - 1)); echo "${EDGE_PORTS[$i]}" ;;
	esac
}

ready_pattern() {
	case $1 in
	nats-*) echo "nats listening on" ;;
	auth) echo "answering plex.auth" ;;
	api) echo "api listening on" ;;
	edge-*) echo "listening on" ;;
	esac
}

launch() {
	local part=$1 log pid
	log=$(logfile "$part")
	set_args "$part"
	echo "# $(date -u +%FT%TZ) $PLEX ${ARGS[*]}" >"$log"
	nohup "$PLEX" "${ARGS[@]}" >>"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$(pidfile "$part")"
	for _ in $(seq 1 100); do
		if grep -q "$(ready_pattern "$part")" "$log"; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "cluster: $part did not start; the end of $log:" >&2
	tail -n 20 "$log" >&2
	kill "$pid" 2>/dev/null || true
	rm -f "$(pidfile "$part")"
	exit 1
}

start() {
	[[ -x $PLEX ]] || die "$PLEX not found: run 'make build' first (or set PLEX_BIN)"
	mkdir -p "$DIR/pids" "$DIR/logs"
	NO_RANDOMIZE=0
	if "$PLEX" edge --help 2>&1 | grep -q -- --nats-no-randomize; then NO_RANDOMIZE=1; fi
	local part pid p todo=() busy=()
	for part in "${PARTS[@]}"; do
		if pid=$(pid_of "$part"); then
			echo "$part already running (pid $pid)"
		else
			todo+=("$part")
			for p in $(ports_of "$part"); do
				port_busy "$p" && busy+=("$p ($part)")
			done
		fi
	done
	# Check every port first: never leave half a cluster behind.
	if [[ ${#busy[@]} -gt 0 ]]; then
		die "port(s) busy on $HOST: ${busy[*]}. Another cluster, plex dev or nats-server? Free them, or run '$0 stop' if it is this one."
	fi
	for part in "${todo[@]}"; do
		launch "$part"
		echo "$part started (pid $(<"$(pidfile "$part")"))"
	done
	echo
	summary
}

summary() {
	local i
	cat <<EOF
Plex cluster ($DIR/, logs in $DIR/logs/):
  nats   n1 $(nats_url 0)  n2 $(nats_url 1)  n3 $(nats_url 2)
         routes $HOST:${ROUTE_PORTS[0]},${ROUTE_PORTS[1]},${ROUTE_PORTS[2]}   monitoring http://$HOST:${MONITOR_PORTS[0]}/routez (8223, 8224)
  edges  edge-1 $HOST:${EDGE_PORTS[0]} (on n1)  edge-2 $HOST:${EDGE_PORTS[1]} (on n2)  edge-3 $HOST:${EDGE_PORTS[2]} (on n3)
  auth   dev verifier (the auth body is the uid); --nats lists all three nodes
  api    http://$HOST:$API_PORT   bearer password: $PASSWORD; --nats lists all three nodes

Try it:
  $PLEX client --uid 42 --host-url http://$HOST:$API_PORT/plex/v1/host
  $PLEX push 42 'hello from n1' --nats $(nats_url 0)
  $PLEX presence --nats $(nats_url 2)
  curl -s -H 'Authorization: Bearer $PASSWORD' http://$HOST:$API_PORT/plex/v1/edges
  kill \$(cat $DIR/pids/nats-1.pid)    # lose a node; edge-1 fails over
  $0 stop
EOF
}

status() {
	local part pid running=0
	for part in "${PARTS[@]}"; do
		if pid=$(pid_of "$part"); then
			printf '%-7s running  pid %-7s %s\n' "$part" "$pid" "$(logfile "$part")"
			running=$((running + 1))
		else
			printf '%-7s stopped\n' "$part"
		fi
	done
	[[ $running -gt 0 ]]
}

stop() {
	local part pid pids=() i
	for ((i = ${#PARTS[@]} - 1; i >= 0; i--)); do
		part=${PARTS[$i]}
		if pid=$(pid_of "$part"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			echo "$part stopping (pid $pid)"
		fi
		rm -f "$(pidfile "$part")"
	done
	[[ ${#pids[@]} -gt 0 ]] || { echo "cluster not running"; return 0; }
	# Edges drain for up to 10 s; give everything 20 s, then SIGKILL.
	for _ in $(seq 1 200); do
		local alive=()
		for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
		[[ ${#alive[@]} -eq 0 ]] && { echo "cluster stopped (logs kept in $DIR/logs/)"; return 0; }
		sleep 0.1
	done
	echo "cluster: still running after 20 s, killing: ${alive[*]}" >&2
	kill -KILL "${alive[@]}" 2>/dev/null || true
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
