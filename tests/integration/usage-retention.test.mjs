// Data that stays small (issue 17): raw usage records past their retention
// are deleted by the pruning thread while the hourly and daily roll-ups keep
// their totals, so GET /usage answers the same before and after; finished
// tasks are pruned by count and age, expired sessions go (personal tokens
// 30 days later); a successful API call is a DEBUG line unless --access-log.
//
// Rows are seeded with the sqlite3 shell while aimaas is stopped (the
// trigger rolls them up as it does any writer's rows other than the sink's).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, waitUntil } from './lib.mjs';

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const H = 3600000;
const D = 24 * H;
const sql = (db, q) => execFileSync('sqlite3', [db, q]).toString().trim();

test('raw usage past the retention is pruned, the roll-ups keep the answers; tasks and sessions pruned', async () => {
  const dir = tempDir();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'aimaas.db');
  let srv = await startServer({ dataDir: dir });
  let T = await srv.login();
  let r = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'k' } });
  assert.equal(r.status, 201, r.text);
  const key = r.json.id;
  await srv.stop();
  const now = Date.now();
  const T0 = now - now % H - 5 * D + 1234567; // five days ago, not on an hour
  // 5,000 rows over ~5 days: a key or none, three models, a deployment or none, some errors
  sql(db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
    INSERT INTO usage_records(at, key_id, user_id, model, deployment_id, endpoint, prompt_tokens,
      completion_tokens, ttft_ms, duration_ms, status)
    SELECT ${T0} + i * 86011, CASE WHEN i % 3 = 0 THEN ${key} END, 1, 'm' || (i % 3), CASE WHEN i % 5 THEN 7 END,
      '/v1/chat/completions', i % 17, i % 29, CASE i % 6 WHEN 0 THEN NULL ELSE (i % 40) * 1.25 END,
      10 + (i % 13) * 0.5, CASE WHEN i % 23 = 0 THEN 500 ELSE 200 END FROM n;`);
  // 300 finished tasks (the newest 250 recent, 50 from 100 days ago), two expired sessions
  sql(db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
    INSERT INTO tasks(kind, actor, state, created_at, finished_at, refusals)
    SELECT 'key.create', 'admin', CASE WHEN i % 2 THEN 'failed' ELSE 'succeeded' END,
      CASE WHEN i <= 50 THEN ${now - 100 * D} ELSE ${now} - (300 - i) * 1000 END,
      CASE WHEN i <= 50 THEN ${now - 100 * D} ELSE ${now} - (300 - i) * 1000 END, i % 2 FROM n;
    INSERT INTO sessions(user_id, kind, token_hash, token_hint, created_at, expires_at)
      VALUES(1, 'session', 'old-1', 'o1', 0, ${now - D}), (1, 'token', 'old-2', 'o2', 0, ${now - 31 * D}),
        (1, 'token', 'recent-3', 'r3', 0, ${now - 2 * D});`);
  const tasksBefore = Number(sql(db, 'SELECT COUNT(*) FROM tasks'));

  // the answers with every raw row there (retention far away), for ranges
  // whose start is on an hour or within the retention (a range that starts
  // inside an hour whose raw rows are gone counts that whole hour)
  const ranges = [[null, null], [T0 - T0 % H, now], [T0 - T0 % H + 7 * H, now - 1], [now - 3 * D - (now % H), now - D + 17],
    [now - 20 * H + 5, now - 2 * H - 5], [0, now - 4 * D - now % D]];
  const groupings = [['model'], ['key'], ['user', 'deployment'], ['model', 'key']];
  const ask = async (srv, T) => {
    const out = [];
    for (const [from, to] of ranges)
      for (const groups of groupings)
        for (const interval of ['', 'hour', 'day']) {
          const q = new URLSearchParams({ group_by: groups.join(',') });
          if (interval) q.set('interval', interval);
          if (from !== null) q.set('from', String(from));
          if (to !== null) q.set('to', String(to));
          const got = await srv.api('GET', `/api/v1/usage?${q}`, { token: T });
          assert.equal(got.status, 200, got.text);
          out.push([String(q), got.json.items]);
        }
    return out;
  };
  srv = await startServer({ dataDir: dir, args: ['--usage-retention-days', '3650'] });
  T = await srv.login();
  const before = await ask(srv, T);
  assert.ok(before.reduce((n, [, items]) => n + items.length, 0) > 200);
  await srv.stop();

  // now a 2-day retention, a pass every second, 100 tasks kept
  srv = await startServer({ dataDir: dir, args: ['--usage-retention-days', '2', '--prune-interval', '1', '--task-keep', '100'] });
  await waitUntil(srv, 'a pruning pass', () => /prune: deleted \d+ rows/.test(srv.log()), 20000);
  T = await srv.login();
  const afterPrune = await ask(srv, T);
  for (let i = 0; i < before.length; i++)
    assert.deepEqual(afterPrune[i][1], before[i][1], afterPrune[i][0]);
  await srv.stop();

  // only raw rows older than the retention went, and every one of them is in the roll-ups
  const cutoff = now - 2 * D;
  assert.equal(sql(db, `SELECT COUNT(*) FROM usage_records WHERE at < ${cutoff}`), '0');
  const kept = Number(sql(db, 'SELECT COUNT(*) FROM usage_records'));
  assert.ok(kept > 1000 && kept < 5000, `raw rows kept: ${kept}`);
  // the minutes that ended before it went with them, the others stay
  assert.equal(sql(db, `SELECT COUNT(*) FROM usage_minutely WHERE minute_at + 60000 <= ${cutoff}`), '0');
  assert.ok(Number(sql(db, 'SELECT SUM(requests) FROM usage_minutely')) >= kept);
  assert.equal(sql(db, 'SELECT SUM(requests) FROM usage_hourly'), '5000');
  assert.equal(sql(db, 'SELECT SUM(requests) FROM usage_daily'), '5000');
  // tasks: the old ones and those beyond the newest 100 went (some written since stay)
  const tasks = Number(sql(db, 'SELECT COUNT(*) FROM tasks'));
  assert.ok(tasks < tasksBefore, `tasks: ${tasksBefore} -> ${tasks}`);
  assert.equal(sql(db, `SELECT COUNT(*) FROM tasks WHERE created_at < ${now - 90 * D}`), '0');
  assert.ok(Number(sql(db, 'SELECT COUNT(*) FROM tasks')) <= 101);
  assert.equal(sql(db, "SELECT COUNT(*) FROM sessions WHERE token_hash LIKE 'old-%'"), '0');
  assert.equal(sql(db, "SELECT COUNT(*) FROM sessions WHERE token_hash = 'recent-3'"), '1', 'a token expired 2 days ago is still listed');
});

test('successful API calls are DEBUG lines unless --access-log; errors stay at INFO', async () => {
  let srv = await startServer();
  cleanups.push(() => srv.cleanup());
  let T = await srv.login();
  assert.equal((await srv.api('GET', '/api/v1/tasks', { token: T })).status, 200);
  assert.equal((await srv.api('GET', '/api/v1/nope', { token: T })).status, 404);
  await srv.stop();
  assert.doesNotMatch(srv.log(), /INFO\s+access: .*"GET \/api\/v1\/tasks" 200/);
  assert.match(srv.log(), /access: .*"GET \/api\/v1\/nope" 404/);
  srv = await startServer({ args: ['--access-log'] });
  cleanups.push(() => srv.cleanup());
  T = await srv.login();
  assert.equal((await srv.api('GET', '/api/v1/tasks', { token: T })).status, 200);
  await srv.stop();
  assert.match(srv.log(), /INFO\s+access: .*"GET \/api\/v1\/tasks" 200/);
});
