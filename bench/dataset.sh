#!/usr/bin/env bash
# Dataset upload and validation: the time from the first byte of the upload
# to the 201 with the full report, for a JSONL file of N alpaca records, and
# the same file parsed line by line by Python's json module (the reference:
# roughly the first thing LLaMA-Factory's loader does with it), in the same
# run. Usage: bench/dataset.sh [RECORDS] (default 200000)
set -eu
cd "$(dirname "$0")/.."
n=${1:-200000}
bin=build/aimaas
[ -x "$bin" ] || make -s build/aimaas
port=18197
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
python3 - "$n" >"$dir/qa.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"instruction": f"Question {i}: what is {i} squared, explained step by step?", "input": "",
                      "output": f"{i} squared is {i * i}. " * 8}))
PY
bytes=$(stat -c %s "$dir/qa.jsonl")
AIMAAS_ADMIN_PASSWORD=bench-password AIMAAS_DATASET_MAX_BYTES=$((bytes + 1024)) \
	$bin serve --listen 127.0.0.1:$port --data-dir "$dir/data" --sim-gpus 1x24GiB >"$dir/log" 2>&1 &
pid=$!
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.05; done
tok=$(curl -s "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
	-d '{"username":"admin","password":"bench-password"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
best=
for i in 1 2 3; do
	t=$(timeout 120 curl -s -o "$dir/out.json" -w '%{time_total}' -H "Authorization: Bearer $tok" \
		-H 'content-type: application/octet-stream' --data-binary @"$dir/qa.jsonl" \
		"http://127.0.0.1:$port/api/v1/datasets?name=bench$i&file_name=qa.jsonl")
	best=$(python3 -c "print(min(float('$t'), float('${best:-1e9}')))")
done
grep -q '"state":"valid"' "$dir/out.json" || { echo "upload failed: $(head -c 300 "$dir/out.json")"; exit 1; }
rss=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
ref=$(python3 - "$dir/qa.jsonl" <<'PY'
import json, sys, time
best = 1e9
for _ in range(3):
    t = time.perf_counter()
    with open(sys.argv[1], 'rb') as f:
        recs = [json.loads(line) for line in f if line.strip()]
    ok = sum(1 for r in recs if r.get("instruction") and r.get("output"))
    best = min(best, time.perf_counter() - t)
print(f"{best:.3f}")
PY
)
mb=$(python3 -c "print(f'{$bytes / 1e6:.1f}')")
echo "records $n, $mb MB"
echo "aimaas upload + validation + stats + fsync, best of 3: ${best} s ($(python3 -c "print(f'{$bytes / 1e6 / $best:.0f}')") MB/s), peak RSS $((rss / 1024)) MB"
echo "python3 json.loads per line (reference), best of 3: ${ref} s; ratio aimaas/python $(python3 -c "print(f'{$best / $ref:.2f}')")"
