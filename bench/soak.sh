#!/usr/bin/env bash
# Memory under sustained gateway load: aimaas's RSS sampled while wrk drives
# small completions through /v1 for SECONDS (default 60).
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
make -s build/aimaas build/aimaas-sim
tmp=$(mktemp -d); port=18800
trap 'kill $apid 2>/dev/null || true; sleep 0.5; rm -rf $tmp' EXIT
mkdir -p $tmp/data/models
node tests/fixtures/make-models.mjs $tmp/data/models Qwen2.5-7B-Instruct >/dev/null
AIMAAS_ADMIN_PASSWORD=bench-password build/aimaas serve --listen 127.0.0.1:$port --data-dir $tmp/data --sim-gpus 1x24GiB \
	--log-level warn --stop-engines-on-exit 2>$tmp/aimaas.log &
apid=$!
until curl -sf -o /dev/null http://127.0.0.1:$port/healthz; do sleep 0.05; done
api() { curl -sf -X "$1" "http://127.0.0.1:$port$2" -H "Authorization: Bearer $tok" -H 'content-type: application/json' ${3:+-d "$3"}; }
tok=$(curl -sf http://127.0.0.1:$port/api/v1/auth/login -H 'content-type: application/json' -d '{"username":"admin","password":"bench-password"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
api POST /api/v1/models "{\"path\":\"$tmp/data/models/Qwen2.5-7B-Instruct\",\"name\":\"qwen\"}" >/dev/null
api POST /api/v1/deployments '{"name":"bench","model":"qwen","engine":"aimaas-sim","max_num_seqs":100000,"engine_args":["--disable-uvicorn-access-log"]}' >/dev/null
key=$(api POST /api/v1/keys '{"name":"bench"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
until api GET /api/v1/deployments/bench | grep -q '"state":"running"'; do sleep 0.1; done
cat >$tmp/post.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","prompt":"Say hi","max_tokens":4,"stream":true}'
LUA
rss() { awk '/VmRSS/{print $2}' /proc/$apid/status; }
echo "idle RSS: $(rss) kB"
wrk -t1 -c64 -d"${secs}s" -s $tmp/post.lua -H "Authorization: Bearer $key" http://127.0.0.1:$port/v1/completions >$tmp/wrk.txt &
w=$!
for i in $(seq 1 6); do sleep $((secs / 6)); echo "after $((i * secs / 6)) s: RSS $(rss) kB"; done
wait $w
grep -E 'requests in|Requests/sec' $tmp/wrk.txt
sleep 1
echo "usage records written: $(sqlite3 $tmp/data/aimaas.db 'SELECT COALESCE(SUM(requests), 0) FROM usage_minutely')"
