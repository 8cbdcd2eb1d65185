#!/usr/bin/env bash
# The gateway against the references, in one run, on one aimaas-sim upstream:
#   direct    the engine itself (with its key)
#   nginx     nginx proxy_pass with an upstream keep-alive pool, unbuffered (as an
#             LLM gateway must relay streams; aimaas relays each event as it comes)
#   aimaas    aimaas's /v1 with an API key (auth, routing, limits, usage)
# (1) saturation: wrk -t1 -c32, small non-streamed completions, same number
#     of worker threads for nginx and aimaas (1 each, like the brief);
# (2) a steady 1,000 requests/s (bench/loadgen.c, open loop): p50/p99;
# (3) a heavy steady load: open loop at 70% of nginx's saturation rate
#     (from (1)), 32 connections: p50/p99 at the same throughput for all;
# (4) streams: time to first token and the gaps between tokens.
# aimaas's CPU includes the work it defers (the usage sink's thread runs
# when the CPUs are idle): it is read once the process has gone quiet.
# Usage: bench/gateway.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-10}
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
for p in wrk nginx sqlite3; do command -v $p >/dev/null || $sudo apt-get install -y -qq $p >/dev/null; done
[ -x /usr/sbin/nginx ] || $sudo apt-get install -y -qq nginx-light >/dev/null
make -s build/aimaas build/aimaas-sim
mkdir -p build && cc -O2 -o build/loadgen bench/loadgen.c
tmp=$(mktemp -d)
port=18500
trap 'kill $(cat $tmp/nginx.pid 2>/dev/null) 2>/dev/null || true; kill $apid 2>/dev/null || true; sleep 0.5; rm -rf $tmp' EXIT
mkdir -p $tmp/data/models
node tests/fixtures/make-models.mjs $tmp/data/models Qwen2.5-7B-Instruct >/dev/null
# in a session of its own, as nginx (which daemonizes) and the engine are, and as a service
# runs: with the kernel's autogroups, one sharing wrk's session would share wrk's CPU share
AIMAAS_ADMIN_PASSWORD=bench-password setsid build/aimaas serve --listen 127.0.0.1:$port --data-dir $tmp/data --sim-gpus 1x24GiB \
	--gateway-threads 1 --log-level warn --stop-engines-on-exit 2>$tmp/aimaas.log &
apid=$! # setsid's pid, which is aimaas's unless setsid had to fork
until curl -sf -o /dev/null http://127.0.0.1:$port/healthz; do sleep 0.05; done
apid=$(pgrep -f "build/aimaas serve --listen 127.0.0.1:$port" | head -1)
api() { curl -sf -X "$1" "http://127.0.0.1:$port$2" -H "Authorization: Bearer $tok" -H 'content-type: application/json' ${3:+-d "$3"}; }
tok=$(curl -sf http://127.0.0.1:$port/api/v1/auth/login -H 'content-type: application/json' \
	-d '{"username":"admin","password":"bench-password"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
api POST /api/v1/models "{\"path\":\"$tmp/data/models/Qwen2.5-7B-Instruct\",\"name\":\"qwen\"}" >/dev/null
api POST /api/v1/deployments '{"name":"bench","model":"qwen","engine":"aimaas-sim","max_num_seqs":100000,"engine_args":["--disable-uvicorn-access-log","--sim-max-waiting","100000"]}' >/dev/null
key=$(api POST /api/v1/keys '{"name":"bench"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
until api GET /api/v1/deployments/bench | grep -q '"state":"running"'; do sleep 0.1; done
# the engine's port (from its address) and key (derived by aimaas: read from the engine's environment)
eport=$(sqlite3 $tmp/data/aimaas.db "SELECT substr(address, instr(address, ':') + 1) FROM instances LIMIT 1")
epid=$(pgrep -f "aimaas-sim serve.*--port $eport" | head -1)
ekey=$(tr '\0' '\n' </proc/$epid/environ | sed -n 's/^VLLM_API_KEY=//p')
cat >$tmp/nginx.conf <<NGX
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream sim { server 127.0.0.1:$eport; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$((port + 1));
    location / {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $ekey";
      # relay as the engine sends (what an LLM gateway must do for streams, and what aimaas does):
      # buffered, nginx would hold a stream's events and write them in one go
      proxy_buffering off;
    }
  }
}
NGX
/usr/sbin/nginx -c $tmp/nginx.conf -p $tmp
sleep 0.3
echo '{"model":"bench","prompt":"Say hi","max_tokens":4}' >$tmp/body.json
cat >$tmp/post.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","prompt":"Say hi","max_tokens":4}'
LUA
cat >$tmp/stream.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","prompt":"Say hi","max_tokens":4,"stream":true}'
LUA
declare -A url=([direct]="http://127.0.0.1:$eport" [nginx]="http://127.0.0.1:$((port + 1))" [aimaas]="http://127.0.0.1:$port")
declare -A auth=([direct]="Bearer $ekey" [nginx]="Bearer none" [aimaas]="Bearer $key")
# CPU (user + system, from /proc) of what proxies: aimaas's process, nginx's workers; the engine's for direct
hz=$(getconf CLK_TCK)
ticks() { local t=0; for q in "$@"; do t=$((t + $(awk '{print $14 + $15}' /proc/$q/stat))); done; echo $t; }
# waits (10 s at most) until the processes use no more CPU: their deferred work is done
quiet() { local a b; a=$(ticks "$@"); for _ in $(seq 50); do sleep 0.2; b=$(ticks "$@"); [ "$a" = "$b" ] && break; a=$b; done; }
declare -A pids=([direct]="$epid" [nginx]="$(pgrep -P "$(cat $tmp/nginx.pid)" | tr '\n' ' ')" [aimaas]="$apid")
for mode in post stream; do
	echo "== saturation: wrk -t1 -c32 -d${secs}s, small $([ $mode = post ] && echo non-streamed || echo streamed) completions"
	printf "%-7s %12s %-13s %-13s %s\n" "" "req/s" "p50" "p99" "CPU of the proxy per request (the engine's for direct)"
	for p in direct nginx aimaas; do
		t0=$(ticks ${pids[$p]})
		out=$(wrk -t1 -c32 -d"${secs}s" --latency -s $tmp/$mode.lua -H "Authorization: ${auth[$p]}" "${url[$p]}/v1/completions")
		[ $p = aimaas ] && quiet ${pids[$p]}
		t1=$(ticks ${pids[$p]})
		n=$(echo "$out" | awk '/requests in/{print $1}')
		rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
		p50=$(echo "$out" | awk '$1=="50%"{print $2}')
		p99=$(echo "$out" | awk '$1=="99%"{print $2}')
		non=$(echo "$out" | awk '/Non-2xx/{print $NF}')
		us=$(awk -v t=$((t1 - t0)) -v hz=$hz -v n=$n 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
		printf "%-7s %12s %-13s %-13s %s us %s\n" $p "$rps" "$p50" "$p99" "$us" "${non:+non-2xx: $non}"
		[ $mode = post ] && [ $p = nginx ] && nginx_rps=${rps%.*}
	done
done
echo "== steady 1000 req/s for ${secs}s (open loop, 8 connections)"
for p in direct nginx aimaas; do
	h=${url[$p]#http://}
	printf "%-7s " $p
	build/loadgen 127.0.0.1 ${h#*:} 1000 "$secs" 8 $tmp/body.json /v1/completions "${auth[$p]}"
done
rate=$((nginx_rps * 70 / 100))
echo "== heavy steady load: ${rate} req/s (70% of nginx's saturation) for ${secs}s (open loop, 32 connections)"
for p in direct nginx aimaas; do
	h=${url[$p]#http://}
	printf "%-7s " $p
	build/loadgen 127.0.0.1 ${h#*:} "$rate" "$secs" 32 $tmp/body.json /v1/completions "${auth[$p]}"
done
echo "== streams: 20 sequential, 16 tokens each, engine ITL 0 (relay cost only)"
node bench/streams-latency.mjs "$eport" "$ekey" "$((port + 1))" "$port" "$key"
