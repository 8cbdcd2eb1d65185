#!/usr/bin/env bash
# Model downloads: aimaas against curl, the same files from the same fake hub (tests/fakes/hub.mjs,
# Node, on loopback) in the same run. FILES files of MB MiB (default 4 x 128), fetched 4 at once by
# both (curl: 4 processes following the CDN redirect; aimaas: its download of the repository).
# Reports wall-clock throughput of each, their ratio (goal >= 0.9), the same for curl followed by
# sha256sum of its files (aimaas verifies every file's SHA-256 and fsyncs it before it counts), and
# aimaas's CPU per GB (utime + stime of the aimaas process over the download, from /proc).
# Usage: bench/hub.sh; env FILES, MB, RUNS (3).
set -eu
cd "$(dirname "$0")/.."
make -s build/aimaas
runs=${RUNS:-3}
tmp=$(mktemp -d)
trap 'kill $hubpid $apid 2>/dev/null || true; rm -rf "$tmp"' EXIT
node bench/hub-serve.mjs >"$tmp/hub.json" &
hubpid=$!
until [ -s "$tmp/hub.json" ]; do sleep 0.2; done
url=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$tmp/hub.json')).url)")
mapfile -t urls < <(node -e "for (const u of JSON.parse(require('fs').readFileSync('$tmp/hub.json')).urls) console.log(u)")
bytes=$((${FILES:-4} * ${MB:-128} * 1024 * 1024))
port=$((20000 + RANDOM % 20000))
AIMAAS_ADMIN_PASSWORD=bench-password AIMAAS_HF_ENDPOINT=$url AIMAAS_HUB_CONCURRENCY=4 build/aimaas serve \
	--listen 127.0.0.1:$port --data-dir "$tmp/data" --log-level warn 2>"$tmp/aimaas.log" &
apid=$!
until curl -sf -o /dev/null http://127.0.0.1:$port/healthz; do sleep 0.05; done
tok=$(curl -sf http://127.0.0.1:$port/api/v1/auth/login -H 'content-type: application/json' \
	-d '{"username":"admin","password":"bench-password"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$apid/stat"; }
now() { date +%s.%N; }
printf '%-5s %-11s %-20s %-13s %-8s %-12s %-16s\n' run "curl MB/s" "curl+sha256sum MB/s" "aimaas MB/s" ratio "ratio(+sha)" "aimaas CPU s/GB"
for r in $(seq 1 "$runs"); do
	rm -rf "$tmp/curl"; mkdir -p "$tmp/curl"
	t0=$(now)
	for u in "${urls[@]}"; do curl -sfL -o "$tmp/curl/$(basename "$u")" "$u" & done
	wait $(jobs -p | grep -v "^$hubpid$" | grep -v "^$apid$") 2>/dev/null || true
	t1=$(now)
	sha256sum "$tmp"/curl/* >/dev/null # what aimaas does besides: verify each file
	t2=$(now)
	c0=$(cpu); a0=$(now)
	id=$(curl -sf http://127.0.0.1:$port/api/v1/models -H "Authorization: Bearer $tok" -H 'content-type: application/json' \
		-d "{\"hub_id\":\"bench/big\",\"name\":\"big-$r\",\"download\":true}" | sed -E 's/^\{"id":([0-9]+).*/\1/')
	until curl -sf http://127.0.0.1:$port/api/v1/models/$id/download -H "Authorization: Bearer $tok" | grep -q '"state":"succeeded"'; do
		if curl -sf http://127.0.0.1:$port/api/v1/models/$id/download -H "Authorization: Bearer $tok" | grep -q '"state":"failed"'; then
			echo "the download failed:"; curl -s http://127.0.0.1:$port/api/v1/models/$id/download -H "Authorization: Bearer $tok"; exit 1
		fi
		sleep 0.05
	done
	a1=$(now); c1=$(cpu)
	# a second download of the same repository is refused by name only: remove the files for the next run
	rm -rf "$tmp/data/models/huggingface/bench/big"
	curl -sf -X DELETE http://127.0.0.1:$port/api/v1/models/$id -H "Authorization: Bearer $tok" >/dev/null
	awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v a0="$a0" -v a1="$a1" -v c="$((c1 - c0))" -v hz="$hz" -v r="$r" 'BEGIN {
		cm = b / 1048576 / (t1 - t0); cs = b / 1048576 / (t2 - t0); am = b / 1048576 / (a1 - a0);
		printf "%-5s %-11.0f %-20.0f %-13.0f %-8.2f %-12.2f %-16.2f\n", r, cm, cs, am, am / cm, am / cs, (c / hz) / (b / 1073741824) }'
done
