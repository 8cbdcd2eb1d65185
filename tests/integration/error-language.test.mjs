// Error messages in the request's language: with Accept-Language asking for
// Chinese the API answers the Chinese form of the message (a planner's
// refusal with its numbers too, and a dataset's per-record reasons);
// without it, the English one, unchanged. "code" and "field" are the same
// in both. (The table itself: messages.test.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startServer, tempDir, assertError } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const ZH = { 'accept-language': 'zh-CN,zh;q=0.9,en;q=0.8' };
const HAN = /[\u4e00-\u9fff]/;
let dir, srv, T;

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  // one small card: a 7B model does not fit it
  srv = await startServer({ dataDir: dir, args: ['--sim-gpus', '1x8GiB:NVIDIA GeForce RTX 3070'] });
  T = await srv.login();
  const m = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(dir, 'models', 'Qwen2.5-7B-Instruct') } });
  assert.equal(m.status, 201, m.text);
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

// The same request in English and in Chinese: both errors, same status,
// code and field; returns the two messages.
async function both(method, path, opts, status, code, field) {
  const en = await srv.api(method, path, opts);
  const zh = await srv.api(method, path, { ...opts, headers: { ...(opts.headers || {}), ...ZH } });
  assertError(en, status, code, field);
  assertError(zh, status, code, field);
  assert.doesNotMatch(en.json.error.message, HAN, 'English stays English');
  assert.match(zh.json.error.message, HAN, `answered in Chinese: ${zh.text}`);
  return [en.json.error.message, zh.json.error.message];
}

test('a bad login', async () => {
  const [en, zh] = await both('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'wrong-password' } },
    401, 'unauthorized', null);
  assert.equal(en, 'wrong username or password');
  assert.equal(zh, '用户名或密码错误');
});

test('invalid fields on creating a user and a key, a missing id, a malformed body', async () => {
  let [en, zh] = await both('POST', '/api/v1/users', { token: T, body: { username: 'b b', password: 'password1' } },
    400, 'invalid_field', 'username');
  assert.equal(en, "'username' must be 1 to 64 letters (of any script), digits, '.', '_' or '-', starting with a letter or digit");
  assert.equal(zh, "'username' 必须是 1 到 64 个字母（任何文字，包括中文）、数字、'.'、'_' 或 '-'，并以字母或数字开头");
  [en, zh] = await both('POST', '/api/v1/users', { token: T, body: { username: 'bob', password: 'short' } },
    400, 'invalid_field', 'password');
  assert.equal(en, "'password' must be at least 8 characters");
  assert.equal(zh, "'password' 至少需要 8 个字符");
  [en, zh] = await both('POST', '/api/v1/keys', { token: T, body: { name: 'k', models: 'all' } }, 400, 'invalid_field', 'models');
  assert.equal(en, "'models' must be null (all models) or a list of model names");
  assert.equal(zh, "'models' 必须是 null（所有模型）或模型名称列表");
  // a word of the table as an argument, reordered
  [en, zh] = await both('GET', '/api/v1/users/abc', { token: T }, 404, 'not_found', null);
  assert.equal(en, "no user with id 'abc'");
  assert.equal(zh, "没有 id 为 'abc' 的用户");
  [en, zh] = await both('POST', '/api/v1/users', { token: T, raw: '{"username":', headers: { 'content-type': 'application/json' } },
    400, 'malformed_json', null);
  assert.match(en, /^request body is not valid JSON: .* \(line 1, column \d+\)$/);
  assert.match(zh, /^请求体不是有效的 JSON：.*（第 1 行，第 \d+ 列）$/);
});

test('a planner refusal reads with its numbers in Chinese', async () => {
  const body = { name: 'q7', model: 'Qwen2.5-7B-Instruct', engine: 'vllm' };
  const [en, zh] = await both('POST', '/api/v1/deployments', { token: T, body }, 409, 'conflict', 'gpus_per_replica');
  const m = en.match(/^Qwen2.5-7B-Instruct needs ([\d.]+) GiB per GPU with 1 GPU\(s\) \(weights ([\d.]+) \+ KV cache ([\d.]+) for (\d+) tokens \+ overhead ([\d.]+) GiB\), but the largest card gives ([\d.]+) GiB/);
  assert.ok(m, en);
  const [, need, w, kv, tokens, over, card] = m;
  assert.ok(zh.startsWith(`Qwen2.5-7B-Instruct 用 1 张 GPU 时每张需要 ${need} GiB（权重 ${w} + ${tokens} 个 token 的 KV 缓存 ${kv} + ` +
    `额外开销 ${over} GiB），但最大的卡只能提供 ${card} GiB`), zh);
  // the hint that follows is in Chinese too
  if (/max_model_len \d+ would fit/.test(en)) assert.match(zh, /将 max_model_len 设为 \d+ 即可放下/);
  assert.doesNotMatch(zh, /needs|would|GPUs/);
});

test('a bad dataset: its report\'s reasons in the asker\'s language; errors on upload too', async () => {
  const raw = '{"instruction": "hi", "output": "hello"}\n{"instruction": "x"}\nnot json\n';
  const up = await srv.api('POST', '/api/v1/datasets?name=bad-one&format=alpaca&file_name=bad.jsonl',
    { token: T, raw, headers: { 'content-type': 'application/octet-stream', ...ZH } });
  assert.equal(up.status, 201, up.text);
  assert.equal(up.json.state, 'invalid');
  const zhErrs = up.json.report.errors;
  assert.deepEqual(zhErrs.map((e) => e.record), [2, 3]);
  assert.equal(zhErrs[0].reason, "缺少 'output'");
  assert.match(zhErrs[1].reason, /^第 3 行不是有效的 JSON：/);
  assert.ok(zhErrs.every((e) => !('reason_zh' in e)), 'one reason per error in the answer');
  const en = await srv.api('GET', `/api/v1/datasets/${up.json.id}`, { token: T });
  assert.deepEqual(en.json.report.errors.map((e) => e.reason).slice(0, 1), ["missing 'output'"]);
  assert.match(en.json.report.errors[1].reason, /^line 3 is not valid JSON: /);
  assert.ok(en.json.report.errors.every((e) => !('reason_zh' in e)));
  const zh = await srv.api('GET', `/api/v1/datasets/${up.json.id}`, { token: T, headers: ZH });
  assert.deepEqual(zh.json.report.errors, zhErrs);
  const [enMsg, zhMsg] = await both('POST', '/api/v1/datasets?name=bad-one&format=alpaca',
    { token: T, raw: '{"instruction": "a", "output": "b"}\n', headers: { 'content-type': 'application/octet-stream' } },
    409, 'conflict', 'name');
  assert.equal(enMsg, "a dataset named 'bad-one' already exists");
  assert.equal(zhMsg, "已有名为 'bad-one' 的数据集");
  // fine-tuning on it is refused, in Chinese
  const [, ftZh] = await both('POST', '/api/v1/finetune/jobs',
    { token: T, body: { name: 'ft', base_model: 'Qwen2.5-7B-Instruct', datasets: ['bad-one'] } }, 400, 'invalid_field', 'datasets');
  assert.equal(ftZh, "数据集 'bad-one' 校验未通过（见其校验报告）；请修正后重新上传");
});

test('Accept-Language: q-values decide; anything but zh is English', async () => {
  let n = 0; // a name each: 5 failures for one name are rate limited
  const login = (h) => srv.api('POST', '/api/v1/auth/login', { body: { username: `nobody${n++}`, password: 'x' }, headers: h });
  const msg = async (h) => (await login(h)).json.error.message;
  assert.equal(await msg({ 'accept-language': 'zh' }), '用户名或密码错误');
  assert.equal(await msg({ 'accept-language': 'zh-Hans-CN' }), '用户名或密码错误');
  assert.equal(await msg({ 'accept-language': 'en;q=0.5, zh-TW;q=0.8' }), '用户名或密码错误');
  assert.equal(await msg({ 'accept-language': 'en-US,en;q=0.9,zh-CN;q=0.8' }), 'wrong username or password');
  assert.equal(await msg({ 'accept-language': 'fr' }), 'wrong username or password');
  assert.equal(await msg({ 'accept-language': 'zh;q=0' }), 'wrong username or password');
});

test('errors of the HTTP layer and of /v1 in Chinese for a client that asks; OpenAI clients keep English', async () => {
  // a chunked body whose framing is wrong, refused by the HTTP layer itself
  for (const [lang, want] of [['zh-CN', '分块传输的块大小错误'], ['en', 'bad chunk size']]) {
    const raw = await rawRequest(`POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAccept-Language: ${lang}\r\nAuthorization: Bearer ${T}\r\n` +
      'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.equal(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).error.message, want);
  }
  // /v1: OpenAI's error shape, the message in the asker's language
  const key = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'lang' } });
  assert.equal(key.status, 201, key.text);
  const chat = (h, body) => fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { ...h, 'content-type': 'application/json', authorization: `Bearer ${key.json.key}` }, body: JSON.stringify(body) });
  let r = await chat(ZH, { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 404);
  let e = (await r.json()).error;
  assert.equal(e.message, '模型 `no-such-model` 不存在');
  assert.equal(e.type, 'invalid_request_error');
  r = await chat({}, { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal((await r.json()).error.message, 'The model `no-such-model` does not exist');
  r = await chat(ZH, { messages: [] });
  assert.equal((await r.json()).error.message, '必须提供 model 参数');
});

// Sends bytes as they are; resolves with all the server sent before it closed.
function rawRequest(bytes) {
  const { hostname, port } = new URL(srv.url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => s.end(bytes));
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}
