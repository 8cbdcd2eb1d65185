// Issue 11, the gateway's share: bodies the scanner and jansson read
// differently (a crash, a bypassed allow-list, an unmetered stream),
// GET /v1/models/{id}, rejected requests in /metrics, /metrics behind a
// token, and JSON errors for empty query parameters and ids that are not
// UTF-8.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { ROOT, startServer, tempDir, assertError, rawRequest } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

let dir, srv, T;
const METRICS_TOKEN = 'prometheus-scrape-token-0123456789';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function running(name) {
  for (const end = Date.now() + 60000; Date.now() < end;) { // a loaded machine starts engines slowly
    const d = (await srv.api('GET', `/api/v1/deployments/${name}`, { token: T })).json;
    if (d.state === 'running' && d.instances.some((x) => x.state === 'running')) return d;
    await sleep(25);
  }
  throw new Error(`${name} never ran:\n${srv.log().slice(-2000)}`);
}

async function key(body) {
  const r = await srv.api('POST', '/api/v1/keys', { token: T, body });
  assert.equal(r.status, 201, r.text);
  return r.json.key;
}

const client = (k) => new OpenAI({ apiKey: k, baseURL: `${srv.url}/v1`, maxRetries: 0 });

// a raw body, as a client could send it (fetch would not let us send bad UTF-8 otherwise)
function v1(k, body, path = '/v1/chat/completions') {
  return fetch(`${srv.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
    body }).then(async (r) => {
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* SSE or not JSON */ }
    return { status: r.status, headers: r.headers, text, json };
  });
}

function oaiError(r, status, code, param) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', r.text);
  if (code !== undefined) assert.equal(r.json.error.code, code, r.text);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
}

async function alive(k) {
  const r = await v1(k, JSON.stringify({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }));
  assert.equal(r.status, 200, `aimaas must still answer: ${r.text}\n${srv.log().slice(-3000)}`);
}

const scrape = (headers = {}) => srv.api('GET', '/metrics', { headers });
const rejected = (text, reason) => Number((text.match(new RegExp(`aimaas_gateway_rejected_total\\{reason="${reason}"[^}]*\\} (\\d+)`)) || [])[1]);

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  srv = await startServer({ dataDir: dir, args: ['--sim-gpus', '2x24GiB', '--stop-engines-on-exit', '--gateway-max-body', '4096'],
    env: { AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'), AIMAAS_METRICS_TOKEN: METRICS_TOKEN } });
  T = await srv.login();
  await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(dir, 'models', 'Qwen2.5-7B-Instruct') } });
  const dep = (name, extra = {}) => srv.api('POST', '/api/v1/deployments', { token: T,
    body: { name, model: 'Qwen2.5-7B-Instruct', engine: 'aimaas-sim', engine_args: ['--sim-itl-ms', '1'], ...extra } });
  assert.equal((await dep('qwen', { aliases: ['qa', 'org/m'], max_model_len: 4096 })).status, 201);
  assert.equal((await dep('secret')).status, 201);
  await running('qwen');
  await running('secret');
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('item 1: bodies jansson refuses are a 400 naming the problem, streamed or to an alias, never a crash', async () => {
  const k = await key({ name: 'crash' });
  const msgs = '"messages":[{"role":"user","content":"hi"}]';
  const bad = [
    [`{"model":"qwen","stream":true,"max_tokens":99999999999999999999,${msgs}}`, /integer beyond 64 bits/],
    [`{"model":"qwen","stream":true,"temperature":NaN,${msgs}}`, /unknown word/],
    [`{"model":"qwen","stream":true,"stream_options":1e999,${msgs}}`, /beyond the range of a double/],
    [`{"model":"qwen","stream":tru,${msgs}}`, /unknown word/],
    [`{"model":"qwen","stream":true,"x":"\\ud800",${msgs}}`, /surrogate/],
    [`{"model":"qwen","stream":true,"x":"a\\u0000b",${msgs}}`, /u0000/],
    [`{"model":"qwen","stream":true,${msgs},}`, /member name/],
    [`{"model":"qa","max_tokens":-99999999999999999999,${msgs}}`, /integer beyond 64 bits/],
    [`{"model":"qa","top_p":-1e400,${msgs}}`, /double/],
  ];
  for (const [body, why] of bad) {
    const r = await v1(k, body);
    oaiError(r, 400, 'invalid_json');
    assert.match(r.json.error.message, why, body);
    assert.match(r.json.error.message, /at byte \d+/);
  }
  // raw bytes that are not UTF-8, in a value the old scan skipped over
  const r = await v1(k, Buffer.concat([Buffer.from('{"model":"qwen","stream":true,"x":"'), Buffer.from([0xff, 0xfe]),
    Buffer.from(`",${msgs}}`)]));
  oaiError(r, 400, 'invalid_json');
  assert.match(r.json.error.message, /UTF-8/);
  // the numbers at the edge of what jansson takes still pass
  const ok = await v1(k, `{"model":"qa","stream":true,"a_int":-9223372036854775808,"a_real":1.7976931348623157e308,"a_tiny":1e-400,${msgs},"max_tokens":2}`);
  assert.equal(ok.status, 200, ok.text);
  assert.match(ok.text, /data: \[DONE\]/);
  await alive(k);
});

test('item 1, same class: a path or method that is not UTF-8 gets a JSON error, not a crash', async () => {
  const k = await key({ name: 'paths' });
  const out = await rawRequest(srv.port, Buffer.concat([Buffer.from('GET /v1/'), Buffer.from([0xff, 0xc0]),
    Buffer.from(`x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k}\r\nConnection: close\r\n\r\n`)]), { waitMs: 500 });
  assert.match(out, /^HTTP\/1\.1 404/);
  assert.match(out, /"code":"unknown_url"/);
  await alive(k);
});

test('item 7: the gateway reads keys and values decoded, as the engine does, and refuses duplicates that matter', async () => {
  const qa = await key({ name: 'qa-only', models: ['qa', 'org/m'] });
  const msgs = '"messages":[{"role":"user","content":"hi"}],"max_tokens":3';
  // the allow-list: an escaped second "model" may not smuggle another model past it
  let r = await v1(qa, `{"model":"qa","mod\\u0065l":"secret",${msgs}}`);
  oaiError(r, 400, 'duplicate_key', 'model');
  r = await v1(qa, `{"mod\\u0065l":"secret",${msgs}}`);
  oaiError(r, 403, 'model_not_allowed', 'model');
  r = await v1(qa, `{"model":"secret","model":"qa",${msgs}}`);
  oaiError(r, 400, 'duplicate_key', 'model');
  r = await v1(qa, `{"model":"qa","stream":false,"stream":true,${msgs}}`);
  oaiError(r, 400, 'duplicate_key', 'stream');
  r = await v1(qa, `{"model":"qa","stream":true,"stream_options":{},"str\\u0065am_options":null,${msgs}}`);
  oaiError(r, 400, 'duplicate_key', 'stream_options');
  // what pydantic would read as true must not pass as "not a stream"
  for (const v of ['"true"', '1', '"yes"']) {
    r = await v1(qa, `{"model":"qa","stream":${v},${msgs}}`);
    oaiError(r, 400, 'invalid_type', 'stream');
  }
  oaiError(await v1(qa, `{"model":"qa","stream":true,"stream_options":true,${msgs}}`), 400, 'invalid_type', 'stream_options');
  oaiError(await v1(qa, `{"model":["qa"],${msgs}}`), 400, 'invalid_type', 'model');
  // an escaped value routes like the plain one
  r = await v1(qa, `{"model":"org\\/m",${msgs}}`);
  assert.equal(r.status, 200, r.text);
  r = await v1(qa, `{"model":"\\u0071a",${msgs}}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.usage.completion_tokens, 3);
  // an escaped "stream" streams, and is metered: usage, quota and TPM see it
  const meter = await key({ name: 'meter' });
  r = await v1(meter, `{"model":"qwen","str\\u0065am":true,${msgs}}`);
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /text\/event-stream/);
  assert.doesNotMatch(r.text, /"usage":\{/, 'the client did not ask for usage');
  await sleep(1300);
  const u = await srv.api('GET', '/api/v1/usage?group_by=key', { token: T });
  const row = u.json.items.find((x) => x.key_name === 'meter');
  assert.ok(row, u.text);
  assert.equal(row.completion_tokens, 3, 'the stream was metered');
});

test('item 17: GET /v1/models/{id} answers one model card (openai models.retrieve), 404 for an unknown or forbidden id', async () => {
  const all = client(await key({ name: 'all' }));
  const m = await all.models.retrieve('qwen');
  assert.equal(m.id, 'qwen');
  assert.equal(m.object, 'model');
  assert.equal(typeof m.created, 'number');
  assert.equal(m.owned_by, 'aimaas');
  assert.equal(m.max_model_len, 4096);
  const slash = await all.models.retrieve('org/m'); // sent as /v1/models/org%2Fm
  assert.equal(slash.id, 'org/m');
  assert.equal(slash.root, 'qwen');
  assert.equal((await srv.api('GET', '/v1/models/org/m', { token: undefined, headers: { authorization: `Bearer ${all.apiKey}` } })).json.id, 'org/m');
  await assert.rejects(all.models.retrieve('nope'), (e) => e.status === 404 && e.code === 'model_not_found');
  const list = await all.models.list();
  assert.ok(list.data.length >= 4);
  for (const x of list.data) assert.ok(x.max_model_len > 0, JSON.stringify(x)); // from the deployment, or the model's context
  const qaOnly = client(await key({ name: 'qa-list', models: ['qa'] }));
  await assert.rejects(qaOnly.models.retrieve('secret'), (e) => e.status === 404 && e.code === 'model_not_found');
  assert.equal((await qaOnly.models.retrieve('qa')).id, 'qa');
  assert.deepEqual((await qaOnly.models.list()).data.map((x) => x.id), ['qa']);
});

test('item 18: refused /v1 requests are counted by a fixed reason, never by the name asked for', async () => {
  const auth = { authorization: `Bearer ${METRICS_TOKEN}` };
  const before = (await scrape(auth)).text;
  const k = await key({ name: 'limited', models: ['qa'], rpm: 1 });
  oaiError(await v1('sk-wrong', '{"model":"qa"}'), 401);
  oaiError(await v1(k, '{"model":"secret"}'), 403, 'model_not_allowed');
  oaiError(await v1(k, '{"model":"no-such-model-name-xyz"}'), 404, 'model_not_found');
  oaiError(await v1(k, '{"model":"qa"}', '/v1/nothing-here'), 404, 'unknown_url');
  oaiError(await v1(k, JSON.stringify({ model: 'qa', prompt: 'x'.repeat(5000) })), 413);
  oaiError(await v1(k, '{"model":"qa",'), 400, 'invalid_json');
  assert.equal((await v1(k, '{"model":"qa","prompt":"x","max_tokens":1}', '/v1/completions')).status, 200);
  oaiError(await v1(k, '{"model":"qa","prompt":"x","max_tokens":1}', '/v1/completions'), 429, 'rate_limit_exceeded');
  const after = (await scrape(auth)).text;
  for (const [reason, n] of [['unauthorized', 1], ['forbidden', 1], ['unknown_model', 1], ['not_found', 1], ['too_large', 1],
    ['invalid', 1], ['rate_limited', 1]])
    assert.equal(rejected(after, reason) - rejected(before, reason), n, `${reason}:\n${after}`);
  assert.match(after, /aimaas_gateway_rejected_total\{reason="unauthorized",status="401"\}/);
  assert.doesNotMatch(after, /no-such-model-name-xyz/);
});

test('item 18: empty or invalid query parameters and ids that are not UTF-8 get a JSON error naming the field', async () => {
  assertError(await srv.api('GET', '/api/v1/usage?group_by=', { token: T }), 400, 'invalid_field', 'group_by');
  assertError(await srv.api('GET', '/api/v1/usage?group_by=,', { token: T }), 400, 'invalid_field', 'group_by');
  assertError(await srv.api('GET', '/api/v1/usage?interval=', { token: T }), 400, 'invalid_field', 'interval');
  assertError(await srv.api('GET', '/api/v1/usage?from=yesterday', { token: T }), 400, 'invalid_field', 'from');
  assertError(await srv.api('GET', '/api/v1/usage?to=', { token: T }), 400, 'invalid_field', 'to');
  assert.equal((await srv.api('GET', '/api/v1/usage?group_by=model&from=0', { token: T })).status, 200);
  // a query parameter that is not UTF-8 is refused by name, on every route that reads one
  assertError(await srv.api('GET', '/api/v1/usage?group_by=%FF', { token: T }), 400, 'invalid_field', 'group_by');
  assertError(await srv.api('GET', '/api/v1/models?kind=%C0%AF', { token: T }), 400, 'invalid_field', 'kind');
  assertError(await srv.api('GET', '/api/v1/tasks?target=%FF', { token: T }), 400, 'invalid_field', 'target');
  for (const r of ['deployments', 'deployments/%FF/command', 'deployments/%FF/metrics', 'keys', 'models', 'users', 'tasks', 'nodes',
    'gpus', 'gpus/%FF/history', 'datasets', 'datasets/%FF/preview', 'finetune/jobs', 'finetune/jobs/%FF/metrics']) {
    const path = r.includes('%FF') ? `/api/v1/${r}` : `/api/v1/${r}/%FF`;
    const res = await srv.api('GET', path, { token: T });
    assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status} ${res.text}`);
    assertError(res, res.status);
    assert.ok(res.json.error.message.length > 0, `${path}: ${res.text}`);
  }
  assertError(await srv.api('GET', '/api/v1/deployments/%FF%FE', { token: T }), 404, 'not_found');
});

test('item 10: /metrics needs the metrics token or an admin; a user or nobody gets a JSON 401/403', async () => {
  assertError(await scrape(), 401, 'unauthorized');
  assertError(await scrape({ authorization: 'Bearer not-the-token' }), 401, 'unauthorized');
  const ok = await scrape({ authorization: `Bearer ${METRICS_TOKEN}` });
  assert.equal(ok.status, 200);
  assert.match(ok.text, /aimaas_gateway_requests_total\{model="qwen"/);
  assert.equal((await srv.api('GET', '/metrics', { token: T })).status, 200, 'an admin');
  await srv.api('POST', '/api/v1/users', { token: T, body: { username: 'mallory', password: 'mallory-password' } });
  const user = await srv.login('mallory', 'mallory-password');
  assertError(await srv.api('GET', '/metrics', { token: user }), 403, 'forbidden');
  assert.doesNotMatch(srv.log(), new RegExp(METRICS_TOKEN), 'the token is never logged');
});

test('item 10: --metrics-public opens /metrics; --metrics-token-file reads the token; a short token is refused', async () => {
  const open = await startServer({ args: ['--metrics-public'] });
  try {
    assert.equal((await fetch(`${open.url}/metrics`)).status, 200);
  } finally {
    await open.stop();
    open.cleanup();
  }
  const d = tempDir();
  writeFileSync(join(d, 'token'), 'from-a-file-0123456789abcdef\n', { mode: 0o600 });
  const filed = await startServer({ args: ['--metrics-token-file', join(d, 'token')] });
  try {
    assert.equal((await fetch(`${filed.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${filed.url}/metrics`, { headers: { authorization: 'Bearer from-a-file-0123456789abcdef' } })).status, 200);
  } finally {
    await filed.stop();
    filed.cleanup();
  }
  writeFileSync(join(d, 'short'), 'abc\n');
  const bad = await startServer({ args: ['--metrics-token-file', join(d, 'short')], expectFail: true });
  assert.equal(bad.port, null);
  assert.match(bad.log(), /metrics token must be 16/);
  bad.cleanup();
});

test('same class as item 13: /v1/responses through the gateway is metered, plain and streamed (input/output tokens)', async () => {
  const r = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'responses-meter' } });
  assert.equal(r.status, 201, r.text);
  const c = client(r.json.key);
  const plain = await c.responses.create({ model: 'qwen', input: 'Say something.', max_output_tokens: 6 });
  assert.ok(plain.usage.input_tokens > 0 && plain.usage.output_tokens > 0, JSON.stringify(plain.usage));
  let done = null;
  const stream = c.responses.stream({ model: 'qwen', input: 'Say more.', max_output_tokens: 5 });
  for await (const ev of stream) if (ev.type === 'response.completed') done = ev.response;
  assert.ok(done && done.usage.output_tokens > 0, 'the stream ends with response.completed and its usage');
  const want = { requests: 2, prompt_tokens: plain.usage.input_tokens + done.usage.input_tokens,
    completion_tokens: plain.usage.output_tokens + done.usage.output_tokens };
  let got;
  for (let i = 0; i < 100; i++) { // the journal is folded within about half a second
    const u = await srv.api('GET', '/api/v1/usage?group_by=key', { token: T });
    got = u.json.items.find((x) => x.key_name === 'responses-meter');
    if (got && got.requests === 2) break;
    await sleep(50);
  }
  assert.deepEqual({ requests: got.requests, prompt_tokens: got.prompt_tokens, completion_tokens: got.completion_tokens }, want);
  const k = (await srv.api('GET', '/api/v1/keys', { token: T })).json.items.find((x) => x.name === 'responses-meter');
  assert.equal(k.used_tokens, want.prompt_tokens + want.completion_tokens, "the key's quota counts them too");
});

test('same class as item 13: a stream the engine cuts (its replica stopped) ends with an error event, counted as an error', async () => {
  // room on the two simulated GPUs: 'secret' is done with
  assert.equal((await srv.api('POST', '/api/v1/deployments/secret/stop', { token: T })).status, 202);
  for (let i = 0; i < 400 && (await srv.api('GET', '/api/v1/deployments/secret', { token: T })).json.state !== 'stopped'; i++) await sleep(25);
  const r = await srv.api('POST', '/api/v1/deployments', { token: T,
    body: { name: 'slow', model: 'Qwen2.5-7B-Instruct', engine: 'aimaas-sim', engine_args: ['--sim-itl-ms', '100'] } });
  assert.equal(r.status, 201, r.text);
  await running('slow');
  const k = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'cut-stream' } });
  const res = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${k.json.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'tell a long story' }], max_tokens: 200, stream: true }) });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  let text = new TextDecoder().decode((await reader.read()).value); // the stream has begun
  assert.equal((await srv.api('POST', '/api/v1/deployments/slow/stop', { token: T })).status, 202);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  assert.match(text, /data: \{"error":\{"message":"the engine's answer was cut[^\n]*\n\ndata: \[DONE\]\n\n$/, 'an error event, then [DONE]');
  let got;
  for (let i = 0; i < 100; i++) {
    got = (await srv.api('GET', '/api/v1/usage?group_by=key', { token: T })).json.items.find((x) => x.key_name === 'cut-stream');
    if (got) break;
    await sleep(50);
  }
  assert.equal(got.requests, 1);
  assert.equal(got.errors, 1, 'a cut stream is not a success in /usage');
});
