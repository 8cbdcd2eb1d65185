#!/usr/bin/env bash
# bench/usage.sh [ROWS]: how usage scales (issue 17). Seeds ROWS usage
# records (default 10,000,000) spread over the last 45 days, then times the
# server's start-up and the usage queries the console makes
# (ui/src/pages/Usage.vue; Dashboard.vue reads /tasks), in ms per query,
# with every raw row kept, then the first pruning pass at the default
# retention (raw rows older than 30 days deleted; the roll-ups keep their
# totals) and the same queries again.
#
# The rows go straight into SQLite, in the real table shape (usage_records,
# as rows written before per-minute usage, and the usage_minutely,
# usage_hourly and usage_daily groups the usage sink writes in one
# transaction), not through the gateway: 10 M proxied requests take hours on
# a small machine, and what is measured here is reading them back.
# Every one of 20 keys calls each of 7 models (one deployment each): 140
# groups an hour once there are a few hundred requests an hour.
# Not part of `make test`. Needs sqlite3, curl, node (for the JSON).
set -euo pipefail
ROWS=${1:-10000000}
BIN=${AIMAAS_BIN:-build/aimaas}
DIR=$(mktemp -d /tmp/aimaas-bench-usage.XXXXXX)
PORT=${PORT:-18931}
PW=bench-password-1
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
ms() { date +%s%3N; }

start() {
	AIMAAS_ADMIN_PASSWORD=$PW "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR" "$@" \
		>>"$DIR/server.log" 2>&1 &
	PID=$!
	for _ in $(seq 1 400); do
		curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && return 0
		sleep 0.05
	done
	echo "server did not start"; cat "$DIR/server.log"; exit 1
}
stop() { kill $PID; wait $PID || true; }

start
stop
NOW=$(($(date +%s) * 1000))
T0=$(ms)
sqlite3 "$DIR/aimaas.db" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
INSERT INTO api_keys(user_id, name, key_hash, key_hint, created_at, updated_at)
  SELECT 1, 'bench-' || value, 'bench-hash-' || value, 'sk-...' || value, $NOW, $NOW
  FROM generate_series(1, 20);
INSERT INTO usage_records(jid, at, key_id, user_id, model, deployment_id, instance_id, endpoint, prompt_tokens,
  completion_tokens, ttft_ms, duration_ms, status, stream, rolled)
  SELECT 'b' || value, $NOW - 45 * 86400000 + value * (45 * 86400000 / $ROWS),
    (SELECT min(id) FROM api_keys) + value % 20, 1, 'model-' || (value % 7), 1 + value % 7, NULL,
    '/v1/chat/completions', 50 + value % 200, 20 + value % 300,
    CASE WHEN value % 4 = 0 THEN -1 ELSE 30 + value % 90 END, 200 + value % 1000,
    CASE WHEN value % 50 = 0 THEN 500 ELSE 200 END, value % 2, 1
  FROM generate_series(1, $ROWS);
INSERT INTO usage_minutely SELECT (at / 60000) * 60000, COALESCE(user_id, 0), COALESCE(key_id, 0), model,
  COALESCE(deployment_id, 0), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(status >= 400),
  TOTAL(CASE WHEN ttft_ms >= 0 THEN ttft_ms END), COUNT(CASE WHEN ttft_ms >= 0 THEN 1 END), TOTAL(duration_ms)
  FROM usage_records GROUP BY 1, 2, 3, 4, 5;
INSERT INTO usage_hourly SELECT (at / 3600000) * 3600000, COALESCE(user_id, 0), COALESCE(key_id, 0), model,
  COALESCE(deployment_id, 0), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(status >= 400),
  TOTAL(CASE WHEN ttft_ms >= 0 THEN ttft_ms END), COUNT(CASE WHEN ttft_ms >= 0 THEN 1 END), TOTAL(duration_ms)
  FROM usage_records GROUP BY 1, 2, 3, 4, 5;
INSERT INTO usage_daily SELECT (hour_at / 86400000) * 86400000, user_id, key_id, model, deployment_id,
  SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(errors), TOTAL(ttft_sum), SUM(ttft_n),
  TOTAL(duration_sum) FROM usage_hourly GROUP BY 1, 2, 3, 4, 5;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
echo "seeded $ROWS rows in $(( $(ms) - T0 )) ms ($(du -h "$DIR/aimaas.db" | cut -f1))"

login() {
	TOKEN=$(curl -sf -X POST -H 'content-type: application/json' -d "{\"username\":\"admin\",\"password\":\"$PW\"}" \
		http://127.0.0.1:$PORT/api/v1/auth/login | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')
}

q() { # name, path: the best and the median of 5 calls, in ms
	local t=() n
	for _ in 1 2 3 4 5; do
		n=$(curl -s -o /dev/null -w '%{time_total}' -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$2")
		t+=("$(node -e "console.log(Math.round($n * 1000))")")
	done
	IFS=$'\n' t=($(sort -n <<<"${t[*]}")); unset IFS
	printf '%-48s best %4s ms, median %4s ms\n' "$1" "${t[0]}" "${t[2]}"
}
queries() {
	local now=$(($(date +%s) * 1000))
	for by in model key user; do
		for days in 1 7 30; do
			local from=$((now - days * 86400000))
			q "Usage: by $by, $days d, $([ $days = 1 ] && echo hourly || echo daily) series" "/api/v1/usage?group_by=$by&interval=$([ $days = 1 ] && echo hour || echo day)&from=$from"
			q "Usage: by $by, $days d, totals" "/api/v1/usage?group_by=$by&from=$from"
		done
	done
	q "Dashboard: recent tasks" "/api/v1/tasks?limit=10"
	q "all time, by model,key,user,deployment" "/api/v1/usage?group_by=model,key,user,deployment"
}

# 1. every raw row kept (a retention of 10 years): start-up and queries
T0=$(ms)
start --usage-retention-days 3650
echo "start-up with $ROWS raw rows (to /healthz answering, polled every 50 ms): $(( $(ms) - T0 )) ms;" \
	"the server says: $(grep -o 'started in [0-9.]* ms' "$DIR/server.log" | tail -1)"
login
queries
stop

# 2. the default retention (30 days): the first pruning pass deletes the
# oldest 15 days of raw rows, in batches, while the server serves
start --prune-interval 1
echo "waiting for the first pruning pass..."
until grep -q 'prune: deleted' "$DIR/server.log"; do sleep 0.5; done
echo "pruning: $(grep -o 'prune: deleted.*' "$DIR/server.log" | tail -1)"
login
queries
stop
echo "raw rows left: $(sqlite3 "$DIR/aimaas.db" 'SELECT COUNT(*) FROM usage_records')," \
	"minute groups: $(sqlite3 "$DIR/aimaas.db" 'SELECT COUNT(*) FROM usage_minutely')," \
	"hourly groups: $(sqlite3 "$DIR/aimaas.db" 'SELECT COUNT(*) FROM usage_hourly')," \
	"daily groups: $(sqlite3 "$DIR/aimaas.db" 'SELECT COUNT(*) FROM usage_daily')"
