// Scale to zero: a deployment with idle_after_s stops after that long
// without a request and frees its GPUs (still listed in /v1/models); the
// gateway holds requests for it while it starts again, once for a burst;
// an on-demand start evicts the least recently used evictable deployment
// when the GPUs are full; the wait limit's 503; kill -9 during a cold start.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, startServer, tempDir, waitUntil } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';
import { engines, sql } from './procs.mjs';

const SIM = resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim');
const servers = [];

async function boot({ gpus = '2x24GiB', args = [], dir } = {}) {
  dir ??= tempDir('aimaas-s0-');
  mkdirSync(join(dir, 'models'), { recursive: true });
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  const srv = await startServer({ dataDir: dir, args: ['--sim-gpus', gpus, '--stop-engines-on-exit',
    '--gateway-keepalive-ms', '200', ...args], env: { AIMAAS_SIM: SIM, AIMAAS_SCRAPE_MS: '300' } });
  servers.push(srv);
  const T = await srv.login();
  const m = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(dir, 'models', 'Qwen2.5-7B-Instruct') } });
  assert.ok(m.status === 201 || m.status === 409, m.text);
  const key = (await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'app' } })).json.key;
  return { srv, T, key, dir };
}

after(async () => {
  for (const s of servers) {
    if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop();
    s.cleanup();
  }
});

const dep = (ctx, name, extra = {}) => ctx.srv.api('POST', '/api/v1/deployments', { token: ctx.T,
  body: { name, model: 'Qwen2.5-7B-Instruct', engine: 'aimaas-sim', engine_args: ['--sim-itl-ms', '1'], ...extra } });
const get = async (ctx, name) => (await ctx.srv.api('GET', `/api/v1/deployments/${name}`, { token: ctx.T })).json;
const until = (ctx, what, fn, ms = 30000) => waitUntil(ctx.srv, what, fn, ms);

function chat(ctx, model, { stream = false, signal } = {}) {
  return fetch(`${ctx.srv.url}/v1/chat/completions`, {
    method: 'POST', signal,
    headers: { authorization: `Bearer ${ctx.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, stream }),
  });
}

async function answered(r, stream) {
  const text = await r.text();
  assert.equal(r.status, 200, text);
  if (stream) {
    assert.match(text, /data: \[DONE\]/);
    assert.match(text, /"delta":\{"content":/);
    assert.doesNotMatch(text, /"error"/);
  } else {
    assert.equal(JSON.parse(text).usage.completion_tokens, 4);
  }
  return text;
}

const reservations = (ctx, id) => sql(ctx.dir, `SELECT COUNT(*) AS n FROM gpu_reservations r JOIN instances i
  ON r.owner_kind = 'instance' AND r.owner_id = i.id WHERE i.deployment_id = ${id}`)[0].n;

test('idle: stops after its idle time, frees its GPUs, stays listed; a burst of 50 starts it once', async () => {
  const ctx = await boot();
  // bad input names its field
  let r = await dep(ctx, 'bad', { min_replicas: 0 });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.field, 'min_replicas');
  r = await dep(ctx, 'bad', { evictable: true });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.field, 'evictable');
  r = await dep(ctx, 'bad', { idle_after_s: -1 });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.field, 'idle_after_s');

  r = await dep(ctx, 'z', { idle_after_s: 2, min_replicas: 0,
    engine_args: ['--sim-itl-ms', '1', '--sim-startup-ms', '1500', '--sim-output-tokens', '5000'] });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.idle_after_s, 2);
  assert.equal(r.json.min_replicas, 0);
  const id = r.json.id;
  await until(ctx, 'z ran', async () => (await get(ctx, 'z')).state === 'running');
  await answered(await chat(ctx, 'z'), false);
  // a request under way keeps it awake past its idle time
  const long = fetch(`${ctx.srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${ctx.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'z', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4000, stream: true }) });
  await new Promise((res) => setTimeout(res, 2600));
  assert.equal((await get(ctx, 'z')).state, 'running', 'not idle while a request is under way');
  await answered(await long, true);
  const d = await until(ctx, 'z went idle', async () => { const x = await get(ctx, 'z'); return x.state === 'idle' && x; }, 15000);
  assert.match(d.reason, /^idle for 2 s$/);
  assert.deepEqual(d.instances, []);
  assert.equal(reservations(ctx, id), 0, 'its GPUs are free');
  assert.equal(engines(ctx.dir).length, 0, 'no engine runs');
  const models = await (await fetch(`${ctx.srv.url}/v1/models`, { headers: { authorization: `Bearer ${ctx.key}` } })).json();
  const card = models.data.find((x) => x.id === 'z');
  assert.equal(card?.state, 'idle', 'still listed, as idle');
  const tasks = (await ctx.srv.api('GET', '/api/v1/tasks?target=deployment:' + id, { token: ctx.T })).json;
  assert.ok(JSON.stringify(tasks).includes('deployment.idle'), JSON.stringify(tasks));

  // 50 at once, half streamed: one start, all answered, none twice; a held stream the engine
  // refuses (past the context) gets its error as an event after the keep-alive comments
  const t0 = Date.now();
  const bad = fetch(`${ctx.srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${ctx.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'z', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 10000000, stream: true }) })
    .then((x) => x.text());
  const all = await Promise.all(Array.from({ length: 50 }, (_, i) => chat(ctx, 'z', { stream: i % 2 === 1 })
    .then((x) => answered(x, i % 2 === 1))));
  assert.equal(all.length, 50);
  const badText = await bad;
  assert.match(badText, /^: keepalive/);
  assert.match(badText, /data: \{"error":\{"message":"[^"]*(context|max_tokens|maximum)[^"]*"/);
  assert.match(badText, /data: \[DONE\]/);
  assert.ok(Date.now() - t0 >= 1400, 'they waited for the engine to start');
  const after = await get(ctx, 'z');
  assert.equal(after.state, 'running');
  assert.equal(after.instances.length, 1);
  assert.equal(after.cold_start.count, 1, JSON.stringify(after.cold_start));
  assert.ok(after.cold_start.last_ms >= 1400 && after.cold_start.median_ms === after.cold_start.last_ms);
  assert.equal(engines(ctx.dir).length, 1, 'started once');
  const wakes = sql(ctx.dir, `SELECT COUNT(*) AS n FROM tasks WHERE kind = 'deployment.wake' AND target = 'deployment:${id}'`)[0].n;
  assert.equal(wakes, 1);
  const met = await (await fetch(`${ctx.srv.url}/metrics`, { headers: { authorization: `Bearer ${ctx.T}` } })).text();
  assert.match(met, /aimaas_deployment_cold_start_seconds\{deployment="z",stat="last"\} [0-9.]+/);
  assert.match(met, /aimaas_gateway_held_requests 0/);
  // usage: 50 requests recorded, each once
  await new Promise((res) => setTimeout(res, 1200));
  const used = () => sql(ctx.dir, `SELECT SUM(requests) AS n, SUM(completion_tokens) AS c FROM usage_minutely
    WHERE deployment_id = ${id}`)[0];
  const before = used();
  assert.equal(before.n, 53);
  // a stream with "stream_options": null is metered all the same (the engine must not see a null after
  // the gateway's include_usage)
  const sn = await fetch(`${ctx.srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${ctx.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'z', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, stream: true,
      stream_options: null }) });
  assert.doesNotMatch(await answered(sn, true), /"usage":\{/, 'no usage chunk the client did not ask for');
  await new Promise((res) => setTimeout(res, 1200));
  const now = used();
  assert.deepEqual([now.n - before.n, now.c - before.c], [1, 4], 'metered');
  // min_replicas 0 alone on a deployment that scales to zero: accepted (it does already)
  r = await ctx.srv.api('PATCH', `/api/v1/deployments/${id}`, { token: ctx.T, body: { min_replicas: 0 } });
  assert.equal(r.status, 200, r.text);
  // turning scale to zero off keeps it running
  r = await ctx.srv.api('PATCH', `/api/v1/deployments/${id}`, { token: ctx.T, body: { min_replicas: 1 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.idle_after_s, 0);
  assert.equal(r.json.restarting, false);
  await new Promise((res) => setTimeout(res, 3000));
  assert.equal((await get(ctx, 'z')).state, 'running');
  // and then min_replicas 0 alone has no idle time to go by
  r = await ctx.srv.api('PATCH', `/api/v1/deployments/${id}`, { token: ctx.T, body: { min_replicas: 0 } });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.field, 'min_replicas');
});

test('eviction: a start with the GPUs full stops the least recently used evictable deployment', async () => {
  const ctx = await boot({ gpus: '2x24GiB' });
  // two cards, one replica a card: a and b fill them
  assert.equal((await dep(ctx, 'a', { idle_after_s: 600, evictable: true })).status, 201);
  assert.equal((await dep(ctx, 'b', { idle_after_s: 600, evictable: true })).status, 201);
  await until(ctx, 'a and b ran', async () => (await get(ctx, 'a')).state === 'running' && (await get(ctx, 'b')).state === 'running');
  await answered(await chat(ctx, 'b'), false);
  await answered(await chat(ctx, 'a'), false); // a used last: b is the least recently used
  await new Promise((res) => setTimeout(res, 1100)); // the idle check keeps when each was used
  // a never-evict deployment is not a candidate, and c does not fit now: created idle
  let r = await dep(ctx, 'c', { idle_after_s: 600 });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.state, 'idle');
  assert.match(r.json.reason, /no room/);
  await until(ctx, 'c listed', async () => (await (await fetch(`${ctx.srv.url}/v1/models`,
    { headers: { authorization: `Bearer ${ctx.key}` } })).json()).data.some((x) => x.id === 'c'));
  await answered(await chat(ctx, 'c', { stream: true }), true);
  const b = await get(ctx, 'b'), a = await get(ctx, 'a'), c = await get(ctx, 'c');
  assert.equal(c.state, 'running');
  assert.equal(b.state, 'idle');
  assert.match(b.reason, /evicted to make room for c \(least recently used\)/);
  assert.equal(a.state, 'running', 'the more recently used one stays');
  const kinds = sql(ctx.dir, `SELECT kind, target, message FROM tasks WHERE kind IN ('deployment.evict', 'deployment.wake')`);
  assert.ok(kinds.some((t) => t.kind === 'deployment.evict' && t.target === `deployment:${b.id}` && /make room for c/.test(t.message)),
    JSON.stringify(kinds));
  assert.ok(kinds.some((t) => t.kind === 'deployment.wake' && t.target === `deployment:${c.id}`));
  // b asked for again: no room, and c is not evictable while a is, so a goes
  await answered(await chat(ctx, 'b'), false);
  assert.equal((await get(ctx, 'a')).state, 'idle');
  assert.equal((await get(ctx, 'c')).state, 'running', 'never a deployment that did not opt in');
});

test('the wait limit: 503 with Retry-After; kill -9 during a cold start', async () => {
  const ctx = await boot({ args: ['--cold-start-wait', '1'] });
  const r = await dep(ctx, 'slow', { idle_after_s: 1, engine_args: ['--sim-startup-ms', '4000'] });
  assert.equal(r.status, 201, r.text);
  const id = r.json.id;
  await until(ctx, 'slow ran', async () => (await get(ctx, 'slow')).state === 'running');
  await until(ctx, 'slow went idle', async () => (await get(ctx, 'slow')).state === 'idle');
  const w = await chat(ctx, 'slow');
  assert.equal(w.status, 503);
  assert.ok(Number(w.headers.get('retry-after')) > 0);
  const e = await w.json();
  assert.equal(e.error.code, 'model_starting');
  assert.match(e.error.message, /still starting/);

  // held requests when aimaas dies: they fail (the connection closes), the
  // start is carried on by the next run, nothing is left half-placed
  await until(ctx, 'slow ran (woken by the refused request)', async () => (await get(ctx, 'slow')).state === 'running');
  await until(ctx, 'slow idle again', async () => (await get(ctx, 'slow')).state === 'idle');
  await until(ctx, 'no engine', async () => engines(ctx.dir).length === 0);
  const held = Array.from({ length: 4 }, (_, i) => chat(ctx, 'slow', { stream: i % 2 === 1 }).then((x) => x.text())
    .then(() => 'answered', () => 'failed'));
  await until(ctx, 'a start began', async () => engines(ctx.dir).length === 1, 10000);
  await ctx.srv.kill9();
  const outcomes = await Promise.all(held);
  assert.ok(outcomes.every((o) => o === 'failed' || o === 'answered'), JSON.stringify(outcomes));
  const again = await startServer({ dataDir: ctx.dir, args: ['--sim-gpus', '2x24GiB', '--stop-engines-on-exit'],
    env: { AIMAAS_SIM: SIM, AIMAAS_SCRAPE_MS: '300' } });
  servers.push(again);
  const c2 = { ...ctx, srv: again, T: await again.login() };
  const d = await until(c2, 'the start completed', async () => { const x = await get(c2, 'slow'); return x.state === 'running' && x; });
  assert.equal(d.instances.length, 1);
  assert.equal(engines(ctx.dir).length, 1, 'one engine');
  assert.equal(reservations(c2, id), 1, 'one reservation');
  assert.equal(d.cold_start?.count >= 1, true, 'the cold start was timed across the restart');
});
