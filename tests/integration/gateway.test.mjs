// The OpenAI-compatible gateway, driven by the official openai client:
// keys and limits, routing, streaming without batching, failover, usage.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { ROOT, startServer, tempDir, assertError, ADMIN_PASSWORD } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

let dir, srv, T;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function running(name, n = 1) {
  for (let i = 0; i < 400; i++) {
    const d = (await srv.api('GET', `/api/v1/deployments/${name}`, { token: T })).json;
    if (d.state === 'running' && d.instances.filter((x) => x.state === 'running').length >= n) return d;
    await sleep(25);
  }
  throw new Error(`${name} never ran:\n${srv.log().slice(-2000)}`);
}

async function key(body) {
  const r = await srv.api('POST', '/api/v1/keys', { token: T, body });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const client = (k) => new OpenAI({ apiKey: k, baseURL: `${srv.url}/v1`, maxRetries: 0 });

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'models'));
  for (const m of ['Qwen2.5-7B-Instruct', 'bge-large-zh-v1.5', 'bge-reranker-v2-m3']) makeModel(m, join(dir, 'models'));
  srv = await startServer({ dataDir: dir, args: ['--sim-gpus', '6x24GiB', '--stop-engines-on-exit', '--gateway-keepalive-ms', '100'],
    env: { AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'), AIMAAS_SCRAPE_MS: '300' } });
  T = await srv.login();
  for (const m of ['Qwen2.5-7B-Instruct', 'bge-large-zh-v1.5', 'bge-reranker-v2-m3'])
    await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(dir, 'models', m) } });
  const sim = (name, model, args = [], extra = {}) => srv.api('POST', '/api/v1/deployments', { token: T,
    body: { name, model, engine: 'aimaas-sim', engine_args: args, ...extra } });
  assert.equal((await sim('qwen', 'Qwen2.5-7B-Instruct', ['--sim-itl-ms', '1'], { replicas: 2 })).status, 201);
  assert.equal((await sim('slow', 'Qwen2.5-7B-Instruct', ['--sim-ttft-ms', '350', '--sim-itl-ms', '60'])).status, 201);
  assert.equal((await sim('bge', 'bge-large-zh-v1.5')).status, 201);
  assert.equal((await sim('reranker', 'bge-reranker-v2-m3')).status, 201);
  await running('qwen', 2);
  for (const n of ['slow', 'bge', 'reranker']) await running(n);
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('chat, streamed chat with include_usage, completions, through the gateway', async () => {
  const k = (await key({ name: 'app' })).key;
  assert.match(k, /^sk-/);
  const c = client(k);
  const r = await c.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.usage.completion_tokens, 8);
  const s = await c.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8,
    stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const x of s) chunks.push(x);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.deepEqual(chunks.at(-1).choices, [], 'the usage-only last chunk has "choices": []');
  assert.equal(chunks.at(-1).usage.completion_tokens, 8);
  assert.equal(chunks.map((x) => x.choices[0]?.delta?.content ?? '').join(''), r.choices[0].message.content);
  // without include_usage the client gets no usage chunk (the gateway asked for it, and drops it)
  const s2 = await c.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, stream: true });
  const c2 = [];
  for await (const x of s2) c2.push(x);
  assert.ok(c2.every((x) => x.choices.length === 1));
  const comp = await c.completions.create({ model: 'qwen', prompt: 'Once', max_tokens: 3 });
  assert.equal(comp.object, 'text_completion');
  assert.equal(comp.usage.completion_tokens, 3);
  // usage is metered exactly, streamed or not
  await sleep(1300);
  const u = await srv.api('GET', '/api/v1/usage?group_by=key,model', { token: T });
  const row = u.json.items.find((x) => x.key_name === 'app' && x.model === 'qwen');
  assert.equal(row.requests, 4);
  assert.equal(row.completion_tokens, 8 + 8 + 4 + 3);
});

test('aliases route like the name; they must be unique', async () => {
  const up = await srv.api('PATCH', '/api/v1/deployments/qwen', { token: T, body: { aliases: ['gpt-4o-mini', 'qwen-chat'] } });
  assert.equal(up.status, 200, up.text);
  assert.deepEqual(up.json.aliases, ['gpt-4o-mini', 'qwen-chat']);
  const c = client((await key({ name: 'alias' })).key);
  const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  assert.equal(r.usage.completion_tokens, 2);
  assert.ok((await c.models.list()).data.some((m) => m.id === 'qwen-chat'));
  assertError(await srv.api('PATCH', '/api/v1/deployments/slow', { token: T, body: { aliases: ['gpt-4o-mini'] } }), 409, 'conflict', 'aliases');
  assertError(await srv.api('PATCH', '/api/v1/deployments/slow', { token: T, body: { aliases: ['bad name!'] } }), 400, 'invalid_field', 'aliases');
});

test('embeddings (base64 by default in the SDK, and float) and the model list filtered by key', async () => {
  const k = (await key({ name: 'rag', models: ['bge', 'reranker'] })).key;
  const c = client(k);
  const e = await c.embeddings.create({ model: 'bge', input: ['a', 'b'] });
  assert.equal(e.data.length, 2);
  assert.equal(e.data[0].embedding.length, 1024);
  const f = await c.embeddings.create({ model: 'bge', input: 'a', encoding_format: 'float' });
  f.data[0].embedding.forEach((v, i) => assert.ok(Math.abs(v - e.data[0].embedding[i]) < 1e-6));
  const models = await c.models.list();
  assert.deepEqual(models.data.map((m) => m.id).sort(), ['bge', 'reranker']);
  await assert.rejects(c.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err.status === 403 && err.code === 'model_not_allowed');
});

test('rerank on /v1/rerank and /rerank, with and without top_n', async () => {
  const k = (await key({ name: 'rr' })).key;
  const body = { model: 'reranker', query: 'What is a GPU?', documents: ['Cats sleep.', 'A GPU is a graphics processor.', 'GPU memory.'] };
  for (const path of ['/v1/rerank', '/rerank', '/v2/rerank']) {
    const r = await fetch(srv.url + path, { method: 'POST', headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
      body: JSON.stringify(body) });
    assert.equal(r.status, 200, path);
    const j = await r.json();
    assert.equal(j.results.length, 3);
    assert.equal(j.results[0].index, 1);
  }
  const top = await fetch(`${srv.url}/v1/rerank`, { method: 'POST', headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, top_n: 1 }) }).then((r) => r.json());
  assert.equal(top.results.length, 1);
});

test('keys: missing, wrong, revoked, expired, a stopped or unknown model', async () => {
  const hit = (k, model = 'qwen') => fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { ...(k ? { authorization: `Bearer ${k}` } : {}), 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }) });
  const shape = async (r, status, code) => {
    assert.equal(r.status, status);
    const j = await r.json();
    assert.deepEqual(Object.keys(j.error).sort(), ['code', 'message', 'param', 'type']);
    if (code) assert.equal(j.error.code, code);
  };
  await shape(await hit(null), 401, 'invalid_api_key');
  await shape(await hit('sk-wrong'), 401, 'invalid_api_key');
  const k = await key({ name: 'temp' });
  assert.equal((await hit(k.key)).status, 200);
  const rev = await srv.api('DELETE', `/api/v1/keys/${k.id}`, { token: T });
  assert.equal(rev.json.revoked, true);
  await shape(await hit(k.key), 401, 'invalid_api_key');
  const soon = await key({ name: 'soon', expires_at: Date.now() + 400 });
  assert.equal((await hit(soon.key)).status, 200);
  await sleep(500);
  await shape(await hit(soon.key), 401, 'expired_api_key');
  const ok = (await key({ name: 'ok' })).key;
  await shape(await hit(ok, 'no-such-model'), 404, 'model_not_found');
  await srv.api('POST', '/api/v1/deployments/bge/stop', { token: T });
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`${srv.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${ok}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bge', input: 'x' }) });
    if (r.status === 503) { await shape(r, 503, 'model_not_running'); break; }
    await sleep(50);
  }
  await srv.api('POST', '/api/v1/deployments/bge/start', { token: T });
  const list = await srv.api('GET', '/api/v1/keys', { token: T });
  assert.ok(!list.text.includes(ok), 'secrets are never listed');
  assert.ok(!srv.log().includes(ok), 'nor logged');
});

test('the console session calls /v1 with its cookie and CSRF header (the playground), and only so', async () => {
  const login = await srv.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
  assert.equal(login.status, 200, login.text);
  const { token, csrf_token: csrf } = login.json;
  const hit = (headers, body = { model: 'qwen', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, stream: true }) =>
    fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body) });
  const cookie = `aimaas_session=${token}; aimaas_csrf=${csrf}`;
  const r = await hit({ cookie, 'x-csrf-token': csrf });
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.match(text, /data: \[DONE\]/);
  // usage is the user's, with no key
  await sleep(1300);
  const u = await srv.api('GET', '/api/v1/usage?group_by=key', { token: T });
  assert.ok(u.json.items.some((x) => x.key_id === null && x.requests >= 1), u.text);
  // without the CSRF header (another site's form): refused
  const no = await hit({ cookie });
  assert.equal(no.status, 403);
  assert.equal((await no.json()).error.code, 'csrf');
  // GET is safe without it
  const models = await fetch(`${srv.url}/v1/models`, { headers: { cookie } });
  assert.equal(models.status, 200);
  // a session token is not an API key, and a key is not a session
  assert.equal((await hit({ authorization: `Bearer ${token}` })).status, 401);
  const k = (await key({ name: 'not-a-cookie' })).key;
  assert.equal((await hit({ cookie: `aimaas_session=${k}`, 'x-csrf-token': csrf })).status, 401);
  // after signing out the cookie no longer works
  const out = await srv.api('POST', '/api/v1/auth/logout', { token });
  assert.equal(out.status, 200, out.text);
  const gone = await hit({ cookie, 'x-csrf-token': csrf });
  assert.equal(gone.status, 401);
  assert.match((await gone.json()).error.message, /log in again/);
});

test('RPM and TPM limits answer 429 with Retry-After', async () => {
  const rpm = (await key({ name: 'rpm', rpm: 3 })).key;
  const c = client(rpm);
  for (let i = 0; i < 3; i++) await c.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 });
  const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${rpm}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }) });
  assert.equal(r.status, 429);
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
  assert.equal((await r.json()).error.code, 'rate_limit_exceeded');
  const tpm = (await key({ name: 'tpm', tpm: 50 })).key;
  const ct = client(tpm);
  await ct.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x'.repeat(100) }], max_tokens: 10 });
  await assert.rejects(ct.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }),
    (e) => e.status === 429 && e.code === 'rate_limit_exceeded');
  const quota = (await key({ name: 'quota', quota_tokens: 20 })).key;
  await client(quota).chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 10 });
  await assert.rejects(client(quota).chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }),
    (e) => e.status === 429 && e.code === 'insufficient_quota');
});

test('streaming: chunks arrive spaced as the engine sends them, with keep-alive comments before the first', async () => {
  const k = (await key({ name: 'stream' })).key;
  const t0 = Date.now();
  const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'x' }], max_tokens: 6, stream: true }) });
  assert.equal(r.headers.get('x-accel-buffering'), 'no');
  const dec = new TextDecoder();
  let buf = '';
  const times = [];
  let comments = 0;
  for await (const part of r.body) {
    buf += dec.decode(part);
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (ev.startsWith(':')) { comments++; assert.ok(!times.length, 'comments only before the first token'); }
      if (ev.includes('"content":"') && !ev.includes('"content":""')) times.push(Date.now() - t0);
    }
  }
  assert.ok(comments >= 2, `keep-alive comments while the first token was pending (${comments})`);
  assert.equal(times.length, 6);
  assert.ok(times[0] >= 300, `first token after the engine's TTFT (${times[0]} ms)`);
  for (let i = 1; i < 6; i++) assert.ok(times[i] - times[i - 1] >= 40, `token ${i} came ${times[i] - times[i - 1]} ms after the previous: not batched`);
});

test('failover: killing one of two replicas under load loses no request that had not started streaming', async () => {
  const k = (await key({ name: 'load' })).key;
  const d = await running('qwen', 2);
  const victim = d.instances[0].pid;
  let killed = false;
  const one = async (i) => {
    if (i === 150 && !killed) { killed = true; process.kill(victim, 'SIGKILL'); }
    const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'qwen', messages: [{ role: 'user', content: `q${i}` }], max_tokens: 4 }) });
    return r.status;
  };
  const statuses = [];
  for (let b = 0; b < 500; b += 25) statuses.push(...await Promise.all(Array.from({ length: 25 }, (_, j) => one(b + j))));
  const bad = statuses.filter((s) => s !== 200);
  assert.deepEqual(bad, [], `${bad.length} of 500 failed`);
  // the killed replica comes back and rejoins the rotation
  await running('qwen', 2);
});

test('gateway metrics and the usage API', async () => {
  const m = await srv.api('GET', '/metrics', { token: T });
  assert.match(m.text, /aimaas_gateway_requests_total\{model="qwen",status="200"\} \d+/);
  assert.match(m.text, /aimaas_gateway_completion_tokens_total\{model="qwen"\} \d+/);
  assert.match(m.text, /aimaas_gateway_time_to_first_token_seconds_count\{model="slow"\} [1-9]/);
  assert.match(m.text, /aimaas_gateway_request_duration_seconds_bucket\{model="qwen",le="\+Inf"\} \d+/);
  assert.match(m.text, /aimaas_gateway_requests_in_flight\{model="qwen"\} 0/);
  await sleep(1200);
  const byDay = await srv.api('GET', '/api/v1/usage?group_by=model&interval=day', { token: T });
  assert.ok(byDay.json.items.some((r) => r.model === 'qwen' && r.requests >= 500 && r.bucket_at));
  assertError(await srv.api('GET', '/api/v1/usage?group_by=color', { token: T }), 400, 'invalid_field', 'group_by');
});

test("history for the console: a deployment's serving metrics and each GPU's memory over time", async () => {
  const c = client((await key({ name: 'hist' })).key);
  // load in rounds until a scrape sees it: scraped every 300 ms here (AIMAAS_SCRAPE_MS), an
  // engine found idle three times in a row only every fourth round, so one short burst may fall
  // between two scrapes on a slow machine
  let load = null;
  const burst = () => Promise.all(Array.from({ length: 8 }, () => c.chat.completions.create({ model: 'slow',
    messages: [{ role: 'user', content: 'Hello' }], max_tokens: 12 })));
  let m;
  for (let i = 0; i < 150; i++) {
    if (!load) load = burst().finally(() => { load = null; });
    m = (await srv.api('GET', '/api/v1/deployments/slow/metrics', { token: T })).json;
    if (m.series.t.length >= 3 && m.series.requests_running.some((x) => x > 0)) break;
    await sleep(100);
  }
  await load;
  assert.ok(m.series.t.length >= 3, JSON.stringify(m));
  assert.ok(m.series.requests_running.some((x) => x > 0), 'the engine was seen busy');
  assert.deepEqual(Object.keys(m.current).sort(), ['generation_tokens_total', 'kv_cache_usage', 'prompt_tokens_total',
    'requests_running', 'requests_waiting', 'tokens_per_second']);
  assert.ok(m.series.t.every((t, i) => i === 0 || t > m.series.t[i - 1]), 'oldest first');
  const thin = (await srv.api('GET', '/api/v1/deployments/slow/metrics?max=2', { token: T })).json;
  assert.equal(thin.series.t.length, 2);
  assert.equal(thin.series.t[1], (await srv.api('GET', '/api/v1/deployments/slow/metrics', { token: T })).json.series.t.at(-1));
  assertError(await srv.api('GET', '/api/v1/deployments/slow/metrics?max=0', { token: T }), 400, 'invalid_field', 'max');
  assertError(await srv.api('GET', '/api/v1/deployments/nope/metrics', { token: T }), 404, 'not_found');
  const gpus = (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items;
  const h = (await srv.api('GET', `/api/v1/gpus/${encodeURIComponent(gpus[0].id)}/history`, { token: T })).json;
  assert.ok(h.t.length >= 1, JSON.stringify(h));
  assert.ok(h.memory_reserved.at(-1) > 0, "aimaas's reservation on the first card shows");
  assert.equal(h.memory_used.length, h.t.length);
  assertError(await srv.api('GET', '/api/v1/gpus/GPU-nope/history', { token: T }), 404, 'not_found');
});

test('playground compare: a client that leaves mid-way frees everything; a slow model is waited for', async () => {
  const body = { models: ['qwen', 'slow'], messages: [{ role: 'user', content: 'compare' }], max_tokens: 2 };
  const ac = new AbortController();
  const p = fetch(`${srv.url}/api/v1/playground/compare`, { method: 'POST', signal: ac.signal,
    headers: { authorization: `Bearer ${T}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await sleep(100);
  ac.abort();
  await assert.rejects(p);
  await sleep(500); // the slow engine answers after the client left
  const r = await srv.api('POST', '/api/v1/playground/compare', { token: T, body });
  assert.equal(r.status, 200, r.text);
  const [fast, slow] = r.json.results;
  assert.equal(fast.status, 200);
  assert.equal(slow.status, 200);
  assert.ok(slow.latency_ms >= 300, `the slow model's TTFT is 350 ms: ${slow.latency_ms}`);
});

test("playground compare goes through the gateway: metered under the caller; a stopped model is that model's 503", async () => {
  const made = await srv.api('POST', '/api/v1/users', { token: T, body: { username: 'cmp-user', password: 'cmp-password' } });
  assert.equal(made.status, 201, made.text);
  const U = await srv.login('cmp-user', 'cmp-password');
  // an alias goes through the gateway's routing like its name
  const r = await srv.api('POST', '/api/v1/playground/compare', { token: U, body: { models: ['qwen', 'qwen-chat'],
    messages: [{ role: 'user', content: 'compare' }], max_tokens: 3 } });
  assert.equal(r.status, 200, r.text);
  for (const x of r.json.results) {
    assert.equal(x.status, 200, JSON.stringify(x));
    assert.equal(x.usage.completion_tokens, 3);
  }
  // in the user's usage, with no key (as the console's own /v1 calls), by the name asked for
  let rows = [];
  for (let i = 0; i < 40 && rows.length < 2; i++) {
    await sleep(100);
    const u = await srv.api('GET', '/api/v1/usage?group_by=key,user,model', { token: U });
    assert.equal(u.status, 200, u.text);
    rows = u.json.items.filter((x) => x.user === 'cmp-user' && x.key_id === null);
  }
  assert.deepEqual(rows.map((x) => [x.model, x.requests, x.completion_tokens]).sort(), [['qwen', 1, 3], ['qwen-chat', 1, 3]]);
  // a model that is not running: its leg says so, the other answers
  const dep = await srv.api('POST', '/api/v1/deployments', { token: T,
    body: { name: 'parked', model: 'Qwen2.5-7B-Instruct', engine: 'aimaas-sim', engine_args: [] } });
  assert.equal(dep.status, 201, dep.text);
  await running('parked');
  assert.equal((await srv.api('POST', '/api/v1/deployments/parked/stop', { token: T })).status, 202);
  let c;
  for (let i = 0; i < 100; i++) {
    c = await srv.api('POST', '/api/v1/playground/compare', { token: U, body: { models: ['qwen', 'parked'],
      messages: [{ role: 'user', content: 'compare' }], max_tokens: 2 } });
    assert.equal(c.status, 200, c.text);
    if (c.json.results[1].status === 503) break;
    await sleep(50);
  }
  const [ok, parked] = c.json.results;
  assert.equal(ok.status, 200, JSON.stringify(ok));
  assert.equal(parked.status, 503, JSON.stringify(parked));
  assert.match(parked.error, /`parked` is not running/);
  // a name nothing serves is the request's error
  assertError(await srv.api('POST', '/api/v1/playground/compare', { token: U, body: { models: ['qwen', 'nope'],
    messages: [{ role: 'user', content: 'x' }] } }), 400, 'invalid_field', 'models');
  // the internal credential is nowhere to be seen, and a client cannot borrow the control plane's header
  const spoof = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { 'content-type': 'application/json', 'x-aimaas-user': '1' },
    body: JSON.stringify({ model: 'qwen', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }) });
  assert.equal(spoof.status, 401);
  await srv.api('DELETE', '/api/v1/deployments/parked', { token: T });
});
