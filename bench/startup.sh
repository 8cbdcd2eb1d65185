#!/usr/bin/env bash
# Start-up time and idle memory of `aimaas serve`.
# Start-up: from exec to the first 200 from /healthz, over N runs (first
# start of a fresh data dir included: it migrates and hashes the admin
# password). Idle RSS: after the server has sat for 3 s with 8 simulated GPUs
# and one logged-in request. Usage: bench/startup.sh [RUNS]
set -eu
cd "$(dirname "$0")/.."
runs=${1:-20}
bin=build/aimaas
[ -x "$bin" ] || make -s build/aimaas
port=18199
dir=$(mktemp -d)
trap 'pkill -f "listen 127.0.0.1:$port" 2>/dev/null || true; rm -rf "$dir"' EXIT
export AIMAAS_ADMIN_PASSWORD=bench-password
times=()
for i in $(seq 1 "$runs"); do
	[ "$i" -eq 1 ] && rm -rf "$dir"/*
	t0=$(date +%s%N)
	$bin serve --listen 127.0.0.1:$port --data-dir "$dir" --sim-gpus "8x11GiB:NVIDIA GeForce RTX 2080 Ti" >"$dir.log" 2>&1 &
	pid=$!
	until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do :; done
	t1=$(date +%s%N)
	times+=($(( (t1 - t0) / 1000 )))
	if [ "$i" -eq "$runs" ]; then
		tok=$(curl -s "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
			-d '{"username":"admin","password":"bench-password"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
		curl -sf -o /dev/null -H "Authorization: Bearer $tok" "http://127.0.0.1:$port/api/v1/nodes"
		sleep 3
		rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
		hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
		internal=$(grep -o 'started in [0-9.]* ms' "$dir.log")
	fi
	kill -TERM $pid
	wait $pid
done
rm -f "$dir.log"
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "start-up to first /healthz 200 (us): first run ${times[0]}, median ${sorted[$((runs / 2))]}, max ${sorted[$((runs - 1))]} over $runs runs"
echo "aimaas's own log: $internal"
echo "idle RSS: ${rss} kB (peak ${hwm} kB)"
