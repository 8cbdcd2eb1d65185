// A model's files are hostile (they come from hubs): implausible numbers in
// config.json, a GGUF header or a safetensors header refuse the registration
// with 400 naming the file and the field, and a model whose files turn bad
// becomes "invalid" on re-inspection; aimaas never crashes on them (it used
// to divide INT64_MIN by -1 in the inspector: SIGFPE).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, startServer, tempDir, assertError, pollHealthz } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

// A loose bound for one /healthz answer while a worker churns (the stalls it
// catches lasted seconds): a loaded 2-core machine, more under ASan's allocator.
const BOUND = /asan/.test(BIN) ? 1000 : 500;

let dir, models, srv, T;

function gguf(kvs) {
  const parts = [];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); parts.push(b); };
  const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v))); parts.push(b); };
  const str = (s) => { u64(Buffer.byteLength(s)); parts.push(Buffer.from(s)); };
  parts.push(Buffer.from('GGUF'));
  u32(3);
  u64(0);
  u64(kvs.length);
  for (const [k, type, v] of kvs) {
    str(k);
    u32(type);
    if (type === 8) str(v);
    else if (type === 11 || type === 10) u64(v);
    else u32(v);
  }
  return Buffer.concat(parts);
}

function safetensors(header, dataBytes = 0) {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.alloc(dataBytes)]);
}

const register = (path, name) => srv.api('POST', '/api/v1/models', { token: T, body: { path, name } });

before(async () => {
  dir = tempDir();
  models = join(dir, 'models');
  mkdirSync(models);
  srv = await startServer({ dataDir: dir, args: ['--model-root', models] });
  T = await srv.login();
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('config.json: INT64_MIN hidden size and -1 heads are refused naming the field', async () => {
  const m = join(models, 'evil-config');
  mkdirSync(m);
  writeFileSync(join(m, 'config.json'),
    '{"architectures":["LlamaForCausalLM"],"hidden_size":-9223372036854775808,"num_attention_heads":-1,"num_hidden_layers":2}');
  let r = await register(m, 'evil-config');
  assertError(r, 400, 'invalid_field', 'path');
  assert.match(r.json.error.message, /config\.json: 'num_attention_heads' is -1; expected an integer from 1 to 65536/);
  writeFileSync(join(m, 'config.json'),
    '{"architectures":["LlamaForCausalLM"],"hidden_size":-9223372036854775808,"num_attention_heads":1}');
  r = await register(m, 'evil-config');
  assertError(r, 400, 'invalid_field', 'path');
  assert.match(r.json.error.message, /'hidden_size' is -9223372036854775808/);
  writeFileSync(join(m, 'config.json'), '{"num_hidden_layers":4,"max_position_embeddings":1e999}');
  r = await register(m, 'evil-config');
  assertError(r, 400, 'invalid_field', 'path');
  assert.equal((await srv.api('GET', '/healthz')).status, 200);
});

test('GGUF: the same values in a GGUF header are refused naming the key', async () => {
  const f = join(models, 'evil.gguf');
  writeFileSync(f, gguf([['general.architecture', 8, 'llama'], ['llama.embedding_length', 11, -(2n ** 63n)],
    ['llama.attention.head_count', 11, -1], ['llama.block_count', 4, 2]]));
  let r = await register(f, 'evil-gguf');
  assertError(r, 400, 'invalid_field', 'path');
  assert.match(r.json.error.message, /GGUF key 'llama\.embedding_length' is negative/);
  writeFileSync(f, gguf([['general.architecture', 8, 'llama'], ['llama.embedding_length', 4, 4096],
    ['llama.attention.head_count', 11, -1]]));
  r = await register(f, 'evil-gguf');
  assertError(r, 400, 'invalid_field', 'path');
  assert.match(r.json.error.message, /'llama\.attention\.head_count' is negative/);
  writeFileSync(f, gguf([['general.architecture', 8, 'llama'], ['llama.context_length', 10, 2n ** 40n]]));
  r = await register(f, 'evil-gguf');
  assertError(r, 400, 'invalid_field', 'path');
  assert.match(r.json.error.message, /'llama\.context_length' is 1099511627776; expected an integer from 1 to 100000000/);
  assert.equal((await srv.api('GET', '/healthz')).status, 200);
});

test('safetensors: a shape whose size wraps 64 bits is refused', async () => {
  const m = join(models, 'evil-weights');
  mkdirSync(m);
  writeFileSync(join(m, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 64,
    num_attention_heads: 4, num_hidden_layers: 1 }));
  writeFileSync(join(m, 'model.safetensors'), safetensors({ w: { dtype: 'F32', shape: [2 ** 32, 2 ** 32], data_offsets: [0, 0] } }));
  const r = await register(m, 'evil-weights');
  assertError(r, 400, 'invalid_field', 'path');
  assert.match(r.json.error.message, /model\.safetensors: tensor w has a bad shape/);
});

test('a registered model whose config turns hostile becomes invalid on re-inspection, and is not deployable', async () => {
  makeModel('Qwen2.5-7B-Instruct', models);
  const m = join(models, 'Qwen2.5-7B-Instruct');
  let r = await register(m, 'qwen');
  assert.equal(r.status, 201, r.text);
  writeFileSync(join(m, 'config.json'), '{"hidden_size":-9223372036854775808,"num_attention_heads":-1}');
  r = await srv.api('POST', '/api/v1/models/qwen/inspect', { token: T });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'invalid');
  assert.match(r.json.facts.error, /'num_attention_heads' is -1/);
  const got = await srv.api('GET', '/api/v1/models/qwen', { token: T });
  assert.equal(got.json.state, 'invalid');
  assert.ok(!('memory_estimate' in got.json), 'no estimate from facts that are an error');
  r = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'q', model: 'qwen', start: false } });
  assert.ok(r.status >= 400 && r.status < 500, r.text);
  assert.equal((await srv.api('GET', '/healthz')).status, 200);
});

test('inspecting a model with a huge safetensors header does not stall the control plane', async () => {
  // 21 MB of header JSON (300,000 one-element tensors): reading it took the
  // main loop for seconds; now it runs on the worker
  const m = join(models, 'many-tensors');
  mkdirSync(m);
  writeFileSync(join(m, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 64,
    num_attention_heads: 4, num_hidden_layers: 1 }));
  const n = 300000;
  const parts = ['{'];
  for (let i = 0; i < n; i++) parts.push(`${i ? ',' : ''}"model.layers.0.t${i}.weight":{"dtype":"F16","shape":[1],"data_offsets":[${2 * i},${2 * i + 2}]}`);
  parts.push('}');
  const h = Buffer.from(parts.join(''));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(join(m, 'model.safetensors'), Buffer.concat([len, h, Buffer.alloc(2 * n)]));
  const poll = pollHealthz(srv.url);
  await new Promise((res) => setTimeout(res, 100));
  const t0 = performance.now();
  const r = await register(m, 'many-tensors');
  const took = performance.now() - t0;
  const again = await srv.api('POST', '/api/v1/models/many-tensors/inspect', { token: T });
  const { lat, bad } = await poll.stop();
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.facts.tensors, n);
  assert.equal(r.json.facts.parameters, n);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.state, 'ready');
  assert.deepEqual(bad, []);
  lat.sort((a, b) => a - b);
  const max = lat[lat.length - 1];
  console.log(`# registration took ${took.toFixed(0)} ms; /healthz ${lat.length} answers, p50 ${lat[lat.length >> 1].toFixed(1)} ms, max ${max.toFixed(1)} ms`);
  assert.ok(max < BOUND, `/healthz took ${max.toFixed(0)} ms during the inspection`);
});

test('browsing a folder of 25,000 files walks a bounded part of it', async () => {
  const d = join(models, 'crowded');
  mkdirSync(d);
  for (let i = 0; i < 25000; i++) writeFileSync(join(d, `f${i}.bin`), '');
  const r = await srv.api('GET', `/api/v1/model-roots/browse?path=${encodeURIComponent(d)}`, { token: T });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.truncated, true);
  assert.deepEqual(r.json.items, []);
  const top = await srv.api('GET', '/api/v1/model-roots/browse', { token: T });
  assert.equal(top.json.truncated, false);
  assert.ok(top.json.items.some((x) => x.name === 'crowded' && x.type === 'folder'));
});
