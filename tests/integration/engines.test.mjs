// The SGLang and llama.cpp adapters end to end: aimaas starts each engine
// with the command line it builds for it (tests/shims/sglang stands in for
// `python3 -m sglang.launch_server`, tests/shims/llama-server for
// llama-server: aimaas-sim playing that engine, its flags and its /metrics
// names), the gateway routes a chat to it, and the deployment's serving
// metrics are read by that engine's names (src/engine/am_engine.c).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, assertError, startServer, tempDir } from './lib.mjs';
import { makeModel, makeGguf } from '../fixtures/make-models.mjs';

const SHIMS = resolve(ROOT, 'tests/shims');
let dir, srv, T, K;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function running(name) {
  let d;
  for (let i = 0; i < 400; i++) {
    d = (await srv.api('GET', `/api/v1/deployments/${name}`, { token: T })).json;
    if (d.state === 'running' && d.instances.every((x) => x.state === 'running')) return d;
    await sleep(25);
  }
  throw new Error(`${name} never ran: ${JSON.stringify(d)}\n${srv.log().slice(-3000)}`);
}

const chat = (model, max_tokens, stream = false) => fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
  headers: { authorization: `Bearer ${K}`, 'content-type': 'application/json' },
  body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello' }], max_tokens, stream }) });

before(async () => {
  dir = tempDir();
  const models = join(dir, 'models');
  mkdirSync(models);
  makeModel('Qwen2.5-7B-Instruct', models);
  makeGguf(join(models, 'qwen2.5-0.5b-instruct-q4_k_m.gguf'));
  srv = await startServer({ dataDir: dir, args: ['--sim-gpus', '2x24GiB', '--stop-engines-on-exit'],
    env: { AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'), AIMAAS_SCRAPE_MS: '300' } });
  T = await srv.login();
  for (const p of [join(models, 'Qwen2.5-7B-Instruct'), join(models, 'qwen2.5-0.5b-instruct-q4_k_m.gguf')])
    assert.equal((await srv.api('POST', '/api/v1/models', { token: T, body: { path: p } })).status, 201);
  for (const [engine, shim] of [['sglang', 'sglang'], ['llama.cpp', 'llama-server']]) {
    const r = await srv.api('PATCH', `/api/v1/engines/${engine}`, { token: T, body: { binary: join(SHIMS, shim) } });
    assert.equal(r.status, 200, r.text);
  }
  const k = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'engines' } });
  assert.equal(k.status, 201, k.text);
  K = k.json.key;
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

// Deploys, chats (a few slow streams at once, then one plain call), and
// waits for the scrapes to show the engine busy and its token counters.
async function serve(name, body, argv0) {
  const d = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name, ...body,
    engine_args: ['--sim-ttft-ms', '100', '--sim-itl-ms', '50', '--sim-output-tokens', '24'] } });
  assert.equal(d.status, 201, d.text);
  await running(name);
  const cmd = await srv.api('GET', `/api/v1/deployments/${name}/command`, { token: T });
  assert.ok(cmd.text.includes(argv0), `the engine's own command line: ${cmd.text}`);
  const streams = Promise.all([1, 2, 3].map(() => chat(name, 24, true).then((r) => r.text())));
  let m;
  for (let i = 0; i < 60; i++) {
    m = (await srv.api('GET', `/api/v1/deployments/${name}/metrics`, { token: T })).json;
    if (m.series.requests_running.some((x) => x > 0)) break;
    await sleep(100);
  }
  for (const s of await streams) assert.match(s, /data: \[DONE\]/);
  const r = await chat(name, 5);
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal((await r.json()).usage.completion_tokens, 5);
  assert.ok(m.series.requests_running.some((x) => x > 0), `the engine was seen busy: ${JSON.stringify(m)}`);
  for (let i = 0; i < 40; i++) {
    m = (await srv.api('GET', `/api/v1/deployments/${name}/metrics`, { token: T })).json;
    if (m.current.generation_tokens_total >= 3 * 24 + 5) break;
    await sleep(100);
  }
  assert.equal(m.current.generation_tokens_total, 3 * 24 + 5, JSON.stringify(m.current));
  assert.ok(m.current.prompt_tokens_total > 0, JSON.stringify(m.current));
  return m;
}

test("SGLang: deployed with SGLang's command line; its metrics (sglang:*) read", async () => {
  const m = await serve('sg', { model: 'Qwen2.5-7B-Instruct', engine: 'sglang' }, 'sglang.launch_server');
  assert.ok(m.series.kv_cache_usage.some((x) => x > 0), 'sglang:token_usage is the KV cache use');
  await srv.api('DELETE', '/api/v1/deployments/sg', { token: T });
});

test("llama.cpp: deployed with llama-server's command line; its metrics (llamacpp:*) read", async () => {
  const m = await serve('tiny', { model: 'qwen2.5-0.5b-instruct-q4_k_m', engine: 'llama.cpp' }, '--metrics');
  // a current llama-server exports no KV-cache gauge: it reads 0, as documented
  assert.ok(m.series.kv_cache_usage.every((x) => x === 0));
  await srv.api('DELETE', '/api/v1/deployments/tiny', { token: T });
});

test('programs: SGLang is found only where its Python has the module; a missing one fails a deployment at once', async () => {
  const fake = join(dir, 'python3'); // a Python without SGLang: find_spec('sglang') is None
  writeFileSync(fake, '#!/bin/sh\nexit 3\n', { mode: 0o755 });
  let r = await srv.api('PATCH', '/api/v1/engines/sglang', { token: T, body: { binary: fake } });
  assert.equal(r.status, 200, r.text);
  const sg = r.json.items.find((e) => e.name === 'sglang');
  assert.equal(sg.found, null, 'python3 alone is not SGLang');
  const why = `engine program '${fake}' cannot import the Python module 'sglang', install it or set another Python on the Engines page`;
  assert.equal(sg.missing, why);
  const d = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'nosg', model: 'Qwen2.5-7B-Instruct', engine: 'sglang' } });
  assert.equal(d.status, 201, d.text);
  let got;
  for (let i = 0; i < 300; i++) {
    got = (await srv.api('GET', '/api/v1/deployments/nosg', { token: T })).json;
    if (got.state === 'failed' || got.instances[0]?.state === 'backoff') break;
    await sleep(50);
  }
  assert.equal(got.state, 'failed', JSON.stringify(got));
  assert.deepEqual([got.instances[0].state, got.instances[0].reason, got.instances[0].failures], ['failed', why, 0],
    'failed at once, no backoff');
  await srv.api('DELETE', '/api/v1/deployments/nosg', { token: T });
  r = await srv.api('PATCH', '/api/v1/engines/sglang', { token: T, body: { binary: join(SHIMS, 'sglang') } });
  const back = r.json.items.find((e) => e.name === 'sglang');
  assert.deepEqual([back.found, back.missing], [join(SHIMS, 'sglang'), null], 'the shim answers the module check');
});

test('programs: LLaMA-Factory is set on the Engines page like the engines', async () => {
  let r = await srv.api('GET', '/api/v1/engines', { token: T });
  const lf = r.json.items.find((e) => e.name === 'llamafactory');
  assert.deepEqual([lf.role, lf.title, lf.binary, lf.binary_source, lf.kinds], ['finetune', 'LLaMA-Factory (fine-tuning)',
    process.env.AIMAAS_LLAMAFACTORY_CLI || 'llamafactory-cli', process.env.AIMAAS_LLAMAFACTORY_CLI ? 'env' : 'default', []]);
  assert.ok(r.json.items.filter((e) => e.name !== 'llamafactory').every((e) => e.role === 'serve'));
  r = await srv.api('PATCH', '/api/v1/engines/llamafactory', { token: T, body: { binary: '/nonexistent/llamafactory-cli' } });
  assert.equal(r.status, 200, r.text);
  let row = r.json.items.find((e) => e.name === 'llamafactory');
  assert.deepEqual([row.binary, row.binary_source, row.found], ['/nonexistent/llamafactory-cli', 'setting', null]);
  assert.equal(row.missing, "engine program '/nonexistent/llamafactory-cli' not found or not executable, set it on the Engines page");
  const cli = join(SHIMS, 'llamafactory-cli');
  row = (await srv.api('PATCH', '/api/v1/engines/llamafactory', { token: T, body: { binary: cli } })).json.items.find((e) => e.name === 'llamafactory');
  assert.deepEqual([row.binary, row.found], [cli, cli]);
  assertError(await srv.api('PATCH', '/api/v1/engines/llamafactory', { token: T, body: { image: 'x/y:1' } }), 400, 'invalid_field', 'image');
  const d = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'lf', model: 'Qwen2.5-7B-Instruct', engine: 'llamafactory' } });
  assertError(d, 400, 'invalid_field', 'engine');
  row = (await srv.api('PATCH', '/api/v1/engines/llamafactory', { token: T, body: { binary: '' } })).json.items.find((e) => e.name === 'llamafactory');
  assert.equal(row.binary_source, process.env.AIMAAS_LLAMAFACTORY_CLI ? 'env' : 'default');
});
