#!/usr/bin/env bash
# The usage journal's cost: aimaas's CPU time (all threads: workers, the
# usage writer, the main loop; utime + stime from /proc) per gateway request
# at a steady rate, this build against a reference build without the journal,
# on the same aimaas-sim upstream settings, alternating, ROUNDS times.
#   REF_BIN   the reference aimaas binary; without it, REF (default: the
#             commit before the journal) is built in a temporary worktree
# Usage: bench/usage-journal.sh [SECONDS] [RATE] [ROUNDS]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-10}
rate=${2:-1000}
rounds=${3:-3}
make -s build/aimaas build/aimaas-sim
mkdir -p build && cc -O2 -o build/loadgen bench/loadgen.c
tmp=$(mktemp -d)
apid=
cleanup() {
	[ -n "$apid" ] && kill "$apid" 2>/dev/null && wait "$apid" 2>/dev/null
	[ -d "$tmp/ref-src" ] && git worktree remove --force "$tmp/ref-src" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
ref=${REF_BIN:-}
if [ -z "$ref" ]; then
	added=$(git log --diff-filter=A --format=%H -- src/gateway/gw_journal.c | tail -1)
	REF=${REF:-$added^}
	echo "building the reference ($REF) in a temporary worktree"
	git worktree add -q --detach "$tmp/ref-src" "$REF"
	nice make -s -C "$tmp/ref-src" build/aimaas >/dev/null
	ref=$tmp/ref-src/build/aimaas
fi
hz=$(getconf CLK_TCK)
node tests/fixtures/make-models.mjs "$tmp/models" Qwen2.5-7B-Instruct >/dev/null
echo '{"model":"bench","prompt":"Say hi","max_tokens":4}' >"$tmp/body.json"

# one run: prints "CPU-us-per-request ok-requests"
run() {
	local bin=$1 port=18600 data="$tmp/data-$RANDOM"
	mkdir -p "$data"
	AIMAAS_ADMIN_PASSWORD=bench-password AIMAAS_SIM="$PWD/build/aimaas-sim" "$bin" serve --listen 127.0.0.1:$port \
		--data-dir "$data" --model-root "$tmp/models" --sim-gpus 1x24GiB --gateway-threads 1 --log-level error \
		--stop-engines-on-exit 2>"$data.log" &
	apid=$!
	until curl -sf -o /dev/null http://127.0.0.1:$port/healthz; do sleep 0.05; done
	local tok key
	tok=$(curl -sf http://127.0.0.1:$port/api/v1/auth/login -H 'content-type: application/json' \
		-d '{"username":"admin","password":"bench-password"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
	api() { curl -sf -X "$1" "http://127.0.0.1:$port$2" -H "Authorization: Bearer $tok" -H 'content-type: application/json' ${3:+-d "$3"}; }
	api POST /api/v1/models "{\"path\":\"$tmp/models/Qwen2.5-7B-Instruct\",\"name\":\"qwen\"}" >/dev/null
	api POST /api/v1/deployments '{"name":"bench","model":"qwen","engine":"aimaas-sim","engine_args":["--disable-uvicorn-access-log","--sim-max-waiting","100000"]}' >/dev/null
	key=$(api POST /api/v1/keys '{"name":"bench"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
	until api GET /api/v1/deployments/bench | grep -q '"state":"running"'; do sleep 0.1; done
	build/loadgen 127.0.0.1 $port "$rate" 2 8 "$tmp/body.json" /v1/completions "Bearer $key" >/dev/null # warm-up
	sleep 1
	local t0 t1 out ok
	t0=$(awk '{print $14 + $15}' /proc/$apid/stat)
	out=$(build/loadgen 127.0.0.1 $port "$rate" "$secs" 8 "$tmp/body.json" /v1/completions "Bearer $key")
	sleep 1 # the writer's last fold of these requests
	t1=$(awk '{print $14 + $15}' /proc/$apid/stat)
	ok=$(echo "$out" | awk '{print $4}')
	kill "$apid"
	wait "$apid" 2>/dev/null || true
	apid=
	awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$ok" 'BEGIN { printf "%.1f %d\n", d / hz * 1e6 / n, n }'
}

echo "== aimaas CPU per request, ${rate} req/s for ${secs}s, 1 gateway thread, $rounds rounds"
for i in $(seq "$rounds"); do
	read -r new nnew < <(run build/aimaas)
	read -r old nold < <(run "$ref")
	printf "round %d: journal %6s us/request (%d requests)   reference %6s us/request (%d requests)\n" \
		"$i" "$new" "$nnew" "$old" "$nold"
done
