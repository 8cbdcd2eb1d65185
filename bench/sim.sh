#!/usr/bin/env bash
# How much aimaas-sim carries, so it is never the bottleneck of a gateway
# benchmark: (1) requests/s of small non-streamed completions over keep-alive
# connections (wrk), (2) concurrent SSE streams held open at once.
# Usage: bench/sim.sh [SECONDS] [STREAMS]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-10}
streams=${2:-5000}
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq wrk >/dev/null; }
[ -x build/aimaas-sim ] || make -s build/aimaas-sim
ulimit -n 65536 2>/dev/null || ulimit -n 16384 || true
port=18311
tmp=$(mktemp -d)
trap 'pkill -f "aimaas-sim serve bench" 2>/dev/null || true; rm -rf "$tmp"' EXIT

cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","prompt":"Say hi","max_tokens":4}'
LUA
build/aimaas-sim serve bench --host 127.0.0.1 --port $port --served-model-name bench --max-num-seqs 100000 \
	--disable-uvicorn-access-log 2>"$tmp/sim.log" &
until curl -sf -o /dev/null http://127.0.0.1:$port/health; do sleep 0.05; done
echo "== small non-streamed completions, keep-alive (wrk -t1 -c32 -d${secs}s)"
wrk -t1 -c32 -d"${secs}s" --latency -s "$tmp/post.lua" http://127.0.0.1:$port/v1/completions | grep -E 'Requests/sec|50%|99%|Non-2xx'
pkill -f "aimaas-sim serve bench" && sleep 0.3

echo "== concurrent streams ($streams clients, 1 token per second, 20 tokens each)"
build/aimaas-sim serve bench --host 127.0.0.1 --port $port --served-model-name bench --max-num-seqs 100000 \
	--sim-max-waiting 0 --sim-itl-ms 1000 --sim-output-tokens 20 --disable-uvicorn-access-log 2>"$tmp/sim.log" &
until curl -sf -o /dev/null http://127.0.0.1:$port/health; do sleep 0.05; done
node bench/streams.mjs "http://127.0.0.1:$port" "$streams"
echo "sim RSS while holding them: $(awk '/VmRSS/{print $2" kB"}' /proc/$(pgrep -f 'aimaas-sim serve bench')/status)"
