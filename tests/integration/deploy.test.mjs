// Models and deployments on the local runtime, end to end through the real
// vLLM adapter: tests/shims/vllm runs aimaas-sim under the name `vllm`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, symlinkSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, startServer, tempDir, assertError } from './lib.mjs';
import { makeModel, makeGguf } from '../fixtures/make-models.mjs';
import { sql } from './procs.mjs';

const SHIMS = resolve(ROOT, 'tests/shims');
const GPUS = '8x24GiB:NVIDIA GeForce RTX 4090';
let dir, srv, T;

const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const groupAlive = (pgid) => { try { process.kill(-pgid, 0); return true; } catch { return false; } };
// Whether a process of group pgid still runs an engine on this port: pids are reused (pid_max is
// 32768 here, and a full test run spawns thousands of processes), so a group id alone may name a
// new, unrelated session a few seconds later.
const engineAlive = (pgid, port) => readdirSync('/proc').filter((f) => /^\d+$/.test(f)).some((f) => {
  try {
    const stat = readFileSync(`/proc/${f}/stat`, 'utf8');
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    return pgrp === pgid && readFileSync(`/proc/${f}/cmdline`, 'utf8').split('\0').includes(String(port));
  } catch { return false; } // gone meanwhile
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --stop-engines-on-exit: the suite leaves no engine behind when it stops
// aimaas cleanly (a kill -9 runs no code, so engines still outlive that).
function start(extra = {}) {
  return startServer({ dataDir: dir, args: ['--sim-gpus', GPUS, '--stop-engines-on-exit'],
    env: { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim') }, ...extra });
}

async function waitFor(name, pred, what, ms = 15000) {
  const t0 = Date.now();
  let d;
  while (Date.now() - t0 < ms) {
    d = (await srv.api('GET', `/api/v1/deployments/${name}`, { token: T })).json;
    if (pred(d)) return d;
    await sleep(50);
  }
  throw new Error(`${name} never ${what}: ${JSON.stringify(d)}\n${srv.log().slice(-3000)}`);
}
const running = (name) => waitFor(name, (d) => d.state === 'running' && d.instances.every((i) => i.state === 'running'), 'ran');

before(async () => {
  dir = tempDir();
  const models = join(dir, 'models');
  mkdirSync(models);
  for (const m of ['Qwen2.5-7B-Instruct', 'Qwen3-32B', 'DeepSeek-R1-Distill-Qwen-32B', 'Qwen2.5-VL-7B-Instruct', 'bge-large-zh-v1.5', 'bge-reranker-v2-m3'])
    makeModel(m, models);
  makeGguf(join(models, 'qwen2.5-0.5b-instruct-q4_k_m.gguf'));
  // a model that runs its own code (as some GLM and InternVL models do)
  const glm = join(models, 'glm-4-9b-chat');
  mkdirSync(glm);
  writeFileSync(join(glm, 'config.json'), JSON.stringify({ architectures: ['ChatGLMModel'], model_type: 'chatglm',
    auto_map: { AutoModelForCausalLM: 'modeling_chatglm.ChatGLMForConditionalGeneration' }, num_layers: 40, hidden_size: 4096,
    num_attention_heads: 32, multi_query_group_num: 2, seq_length: 131072, torch_dtype: 'bfloat16', padded_vocab_size: 151552 }));
  symlinkSync('/etc', join(models, 'escape'));
  srv = await start();
  T = await srv.login();
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('models: registered from folders and GGUF files, inspected, confined to the roots', async () => {
  const m = join(dir, 'models');
  const reg = async (path, extra = {}) => srv.api('POST', '/api/v1/models', { token: T, body: { path, ...extra } });
  for (const name of ['Qwen2.5-7B-Instruct', 'Qwen3-32B', 'DeepSeek-R1-Distill-Qwen-32B', 'Qwen2.5-VL-7B-Instruct', 'bge-large-zh-v1.5', 'bge-reranker-v2-m3', 'glm-4-9b-chat'])
    assert.equal((await reg(join(m, name))).status, 201, name);
  const q = (await srv.api('GET', '/api/v1/models/Qwen3-32B', { token: T })).json;
  assert.equal(q.kind, 'llm');
  assert.equal(q.parameters, 32762123264);
  assert.equal(q.facts.architecture, 'Qwen3ForCausalLM');
  assert.deepEqual([q.facts.layers, q.facts.attention_heads, q.facts.kv_heads, q.facts.head_dim, q.facts.max_context],
    [64, 64, 8, 128, 40960]);
  assert.deepEqual(q.facts.bytes_by_dtype, { BF16: 65524246528 });
  assert.equal(q.facts.weight_files, 14, 'a sharded index');
  assert.equal(q.facts.chat_template, true);
  // what serving it takes on 1, 2, 4, 8 GPUs (the model page shows it): 61 GiB of BF16 weights split by TP
  assert.deepEqual(q.memory_estimate.map((e) => e.gpus), [1, 2, 4, 8]);
  assert.equal(q.memory_estimate[0].weights_bytes_per_gpu, 65524246528);
  assert.ok(q.memory_estimate[1].weights_bytes_per_gpu === 65524246528 / 2);
  for (const e of q.memory_estimate) assert.ok(e.need_bytes_per_gpu > e.weights_bytes_per_gpu, JSON.stringify(e));
  const kinds = Object.fromEntries((await srv.api('GET', '/api/v1/models', { token: T })).json.items.map((x) => [x.name, x.kind]));
  assert.equal(kinds['Qwen2.5-VL-7B-Instruct'], 'vlm');
  assert.equal(kinds['bge-large-zh-v1.5'], 'embedding');
  assert.equal(kinds['bge-reranker-v2-m3'], 'rerank');
  const g = await reg(join(m, 'qwen2.5-0.5b-instruct-q4_k_m.gguf'));
  assert.equal(g.status, 201);
  assert.equal(g.json.name, 'qwen2.5-0.5b-instruct-q4_k_m');
  assert.equal(g.json.facts.format, 'gguf');
  assert.equal(g.json.facts.architecture, 'qwen2');
  assert.equal(g.json.facts.max_context, 32768);
  assert.deepEqual(g.json.facts.quantization.tensor_types, { Q4_K: 25, F32: 1, Q6_K: 24 });
  const glm = (await srv.api('GET', '/api/v1/models/glm-4-9b-chat', { token: T })).json;
  assert.equal(glm.facts.needs_remote_code, true);
  assert.equal(glm.facts.kv_heads, 2);
  const q7 = (await srv.api('GET', '/api/v1/models/Qwen2.5-7B-Instruct', { token: T })).json;
  const tp8 = q7.memory_estimate.find((e) => e.gpus === 8); // 28 attention heads do not split over 8 GPUs
  assert.match(tp8.refused ?? '', /heads/, JSON.stringify(tp8));
  // outside the roots: another absolute path, '..', a symlink leading out
  assertError(await reg('/etc'), 400, 'invalid_field', 'path');
  assertError(await reg(join(m, '..', '..', 'etc')), 400, 'invalid_field', 'path');
  assertError(await reg(join(m, 'escape')), 400, 'invalid_field', 'path');
  assertError(await reg(join(m, 'nope')), 400, 'invalid_field', 'path');
  assertError(await reg('relative/path'), 400, 'invalid_field', 'path');
  assertError(await reg(join(m, 'Qwen3-32B')), 409, 'conflict', 'name');
  assertError(await srv.api('POST', '/api/v1/models', { token: T, body: {} }), 400, 'invalid_field');
  const hub = await srv.api('POST', '/api/v1/models', { token: T, body: { hub_id: 'Qwen/Qwen2.5-14B-Instruct', source: 'modelscope' } });
  assert.equal(hub.status, 201);
  assert.equal(hub.json.state, 'not_downloaded');
  assertError(await srv.api('POST', '/api/v1/models', { token: T, body: { hub_id: '../etc/passwd' } }), 400, 'invalid_field', 'hub_id');
  const up = await srv.api('PATCH', '/api/v1/models/Qwen3-32B', { token: T, body: { display_name: 'Qwen3 32B', tags: ['chat', 'zh'] } });
  assert.deepEqual(up.json.tags, ['chat', 'zh']);
  const roots = await srv.api('GET', '/api/v1/model-roots/browse', { token: T });
  assert.ok(roots.json.items.some((x) => x.name === 'Qwen3-32B' && x.type === 'model'));
  assert.ok(roots.json.items.some((x) => x.type === 'gguf'));
});

test('a dry run shows the plan and the exact command without starting anything', async () => {
  const r = await srv.api('POST', '/api/v1/deployments?dry_run=true', { token: T,
    body: { name: 'dry', model: 'Qwen3-32B', engine: 'vllm', gpus_per_replica: 4, max_model_len: 16384, engine_args: ['--enable-prefix-caching'] } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-task-id'), null, 'a dry run is no task');
  const argv = r.json.command.argv;
  assert.deepEqual(argv.slice(0, 3), ['vllm', 'serve', join(dir, 'models', 'Qwen3-32B')]);
  const flag = (f) => argv[argv.indexOf(f) + 1];
  assert.equal(flag('--tensor-parallel-size'), '4');
  assert.equal(flag('--served-model-name'), 'dry');
  assert.equal(flag('--host'), '127.0.0.1');
  assert.ok(!argv.includes('--api-key'), 'the key is not in argv, where ps shows it');
  assert.ok(r.json.command.env.includes('VLLM_API_KEY=********'), 'but in the environment, masked');
  assert.equal(flag('--max-model-len'), '16384');
  assert.equal(flag('--gpu-memory-utilization'), '0.90');
  assert.equal(argv.at(-1), '--enable-prefix-caching');
  assert.ok(r.json.command.env.includes('CUDA_DEVICE_ORDER=PCI_BUS_ID'));
  assert.ok(r.json.command.env.some((e) => /^CUDA_VISIBLE_DEVICES=\d,\d,\d,\d$/.test(e)));
  assert.equal(r.json.plan.replicas[0].gpus.length, 4);
  assert.ok(r.json.plan.need_bytes_per_gpu > 15 * 2 ** 30);
  assert.equal((await srv.api('GET', '/api/v1/deployments', { token: T })).json.total, 0);
});

test('a dry run writes nothing: no row, no id used, no task, refused or not', async () => {
  const tasks = async () => (await srv.api('GET', '/api/v1/tasks?limit=200', { token: T })).json.items.length;
  const seq = () => sql(dir, `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'deployments'), 0) AS seq`)[0].seq;
  const t0 = await tasks(), s0 = seq();
  const ok = await srv.api('POST', '/api/v1/deployments?dry_run=true', { token: T, body: { name: 'dry2', model: 'Qwen2.5-7B-Instruct' } });
  assert.equal(ok.status, 200, ok.text);
  assertError(await srv.api('POST', '/api/v1/deployments?dry_run=true', { token: T,
    body: { name: 'dry3', model: 'Qwen2.5-7B-Instruct', gpus_per_replica: 3 } }), 400, 'invalid_field', 'gpus_per_replica');
  assertError(await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: T, body: { name: 'j', base_model: 'nope', datasets: [] } }),
    400, 'invalid_field');
  assert.equal(seq(), s0, 'no deployment id was used');
  assert.equal(await tasks(), t0, 'no task was recorded');
});

test('bad deployments get 4xx errors naming the field', async () => {
  const dep = (body) => srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'x', model: 'Qwen2.5-7B-Instruct', ...body } });
  assertError(await dep({ model: 'no-such-model' }), 400, 'invalid_field', 'model');
  assertError(await dep({ gpus_per_replica: 3 }), 400, 'invalid_field', 'gpus_per_replica');
  assert.match((await dep({ gpus_per_replica: 3 })).json.error.message, /does not divide Qwen2.5-7B-Instruct's 28 attention heads; use 1, 2, 4, 7, 14, 28/);
  assertError(await dep({ replicas: 0 }), 400, 'invalid_field', 'replicas');
  assertError(await dep({ gpus: [9] }), 400, 'invalid_field', 'gpus');
  assert.match((await dep({ gpus: [9] })).json.error.message, /GPU 9 does not exist on node local/);
  assertError(await dep({ gpus: ['GPU-nope'] }), 400, 'invalid_field', 'gpus');
  assertError(await dep({ engine: 'tensorrt' }), 400, 'invalid_field', 'engine');
  assertError(await dep({ engine_args: ['--host', '0.0.0.0'] }), 400, 'invalid_field', 'engine_args[0]');
  assertError(await dep({ engine_args: ['--api-key=x'] }), 400, 'invalid_field', 'engine_args[0]');
  assertError(await dep({ env: { CUDA_VISIBLE_DEVICES: '0' } }), 400, 'invalid_field', 'env.CUDA_VISIBLE_DEVICES');
  assertError(await dep({ env: { 'bad name': '1' } }), 400, 'invalid_field', 'env');
  assertError(await dep({ name: 'bad name!' }), 400, 'invalid_field', 'name');
  assertError(await dep({ max_model_len: 999999 }), 400, 'invalid_field', 'max_model_len');
  assertError(await dep({ gpu_memory_utilization: 1.5 }), 400, 'invalid_field', 'gpu_memory_utilization');
  assertError(await dep({ engine: 'llama.cpp' }), 400, 'invalid_field', 'engine');
  assertError(await dep({ model: 'Qwen2.5-14B-Instruct' }), 409, 'conflict', 'model');
  assertError(await dep({ model: 'glm-4-9b-chat' }), 400, 'invalid_field', 'trust_remote_code');
  assertError(await dep({ replicas: '2' }), 400, 'invalid_field', 'replicas');
  assertError(await dep({ nonsense: 1 }), 400, 'invalid_field', 'nonsense');
  const glm = await srv.api('POST', '/api/v1/deployments?dry_run=true', { token: T,
    body: { name: 'glm', model: 'glm-4-9b-chat', trust_remote_code: true } });
  assert.ok(glm.json.command.argv.includes('--trust-remote-code'));
  const noTrust = await srv.api('POST', '/api/v1/deployments?dry_run=true', { token: T, body: { name: 'q', model: 'Qwen2.5-7B-Instruct', trust_remote_code: true } });
  assert.ok(!noTrust.json.command.argv.includes('--trust-remote-code'), 'only when the model needs its own code');
});

let pids = {};

test('four deployments on 8 GPUs through the vLLM adapter; a fifth is refused in numbers', async () => {
  const t0 = Date.now();
  const a = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'qwen2.5-7b', model: 'Qwen2.5-7B-Instruct', engine: 'vllm' } });
  assert.equal(a.status, 201, a.text);
  assert.ok(a.headers.get('x-task-id'));
  const b = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'qwen3-32b', model: 'Qwen3-32B', engine: 'vllm', gpus_per_replica: 4 } });
  assert.equal(b.status, 201, b.text);
  for (const [name, model] of [['bge-large', 'bge-large-zh-v1.5'], ['bge-reranker', 'bge-reranker-v2-m3']])
    assert.equal((await srv.api('POST', '/api/v1/deployments', { token: T, body: { name, model, engine: 'vllm' } })).status, 201);
  const all = {};
  for (const n of ['qwen2.5-7b', 'qwen3-32b', 'bge-large', 'bge-reranker']) all[n] = await running(n);
  console.log(`# four deployments running ${Date.now() - t0} ms after the first POST`);
  assert.equal(all['qwen2.5-7b'].instances[0].gpu_indices.length, 1);
  assert.equal(all['qwen3-32b'].instances[0].gpu_indices.length, 4);
  assert.equal(all['bge-large'].instances[0].gpu_indices.length, 1);
  assert.ok(all['bge-large'].instances[0].mem_fraction < 0.2, 'an embedding model takes only what it needs');
  const cmd = (await srv.api('GET', '/api/v1/deployments/qwen3-32b/command', { token: T })).json.instances[0];
  assert.equal(cmd.argv[cmd.argv.indexOf('--tensor-parallel-size') + 1], '4');
  assert.ok(cmd.env.includes('VLLM_API_KEY=********') && !JSON.stringify(cmd).includes('ame_'), 'the engine key is masked');
  assert.ok((await srv.api('GET', '/api/v1/deployments/bge-large/command', { token: T })).json.instances[0].argv.includes('pooling'));
  // the engines listen on loopback and demand aimaas's key
  const port = all['qwen2.5-7b'].instances[0].port;
  assert.equal((await fetch(`http://127.0.0.1:${port}/v1/models`)).status, 401);
  // GPU memory shows the reservations
  const gpus = (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items;
  const g0 = gpus.find((g) => g.index === all['qwen2.5-7b'].instances[0].gpu_indices[0]);
  assert.ok(g0.memory.reserved > 20 * 2 ** 30);
  // a fifth does not fit, and the refusal says why in numbers
  const r = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'r1', model: 'DeepSeek-R1-Distill-Qwen-32B', engine: 'vllm', gpus_per_replica: 4 } });
  assertError(r, 409, 'conflict');
  assert.match(r.json.error.message, /needs 4 × [\d.]+ GiB .*weights [\d.]+ \+ KV cache [\d.]+ \+ overhead [\d.]+ GiB per GPU\); 3 GPU\(s\) have that free; GPU \d has [\d.]+ GiB free \(reserved by [a-z0-9.-]+ [\d.]+ GiB/);
  for (const [n, d] of Object.entries(all)) pids[n] = d.instances[0].pid;
});

test('logs: tail, follow within 100 ms, download; metrics are scraped', async () => {
  const tail = await srv.api('GET', '/api/v1/deployments/qwen2.5-7b/logs?tail=50', { token: T });
  assert.match(tail.text, /Application startup complete\./);
  assert.match(tail.text, /=== aimaas .* starting vllm \(attempt 1\)/);
  const res = await fetch(`${srv.url}/api/v1/deployments/qwen2.5-7b/logs?follow=true&tail=1`, { headers: { authorization: `Bearer ${T}` } });
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  while (!buf.includes(': following')) buf += dec.decode((await reader.read()).value);
  assert.match(buf, /^data: \S.*\n\n: following/, 'the tail line is sent with its text');
  const port = (await srv.api('GET', '/api/v1/deployments/qwen2.5-7b', { token: T })).json.instances[0].port;
  await fetch(`http://127.0.0.1:${port}/health`); // as aimaas polls it: left out of the view
  await fetch(`http://127.0.0.1:${port}/metrics`);
  const t0 = Date.now();
  await fetch(`http://127.0.0.1:${port}/version`); // the engine logs the request
  let waited;
  while (!(buf.includes('GET /version'))) { buf += dec.decode((await reader.read()).value); waited = Date.now() - t0; }
  assert.ok(waited < 100, `a new line reached the follower in ${waited} ms`);
  assert.doesNotMatch(buf, /"GET \/(health|metrics) HTTP/, 'the polls are not followed');
  await reader.cancel();
  const dl = await srv.api('GET', '/api/v1/deployments/qwen2.5-7b/logs?download=true', { token: T });
  assert.match(dl.headers.get('content-disposition'), /attachment/);
  // aimaas's own polls (/health, /metrics) flood an engine's access log: left out unless ?all=true
  for (const q of ['?tail=400', '?download=true']) {
    const quiet = (await srv.api('GET', `/api/v1/deployments/qwen2.5-7b/logs${q}`, { token: T })).text;
    assert.match(quiet, /"GET \/version HTTP\/1.1" 200/);
    assert.doesNotMatch(quiet, /"GET \/(health|metrics) HTTP/, q);
    const all = (await srv.api('GET', `/api/v1/deployments/qwen2.5-7b/logs${q}&all=true`, { token: T })).text;
    assert.match(all, /"GET \/health HTTP\/1.1" 200/, q);
    assert.match(all, /"GET \/metrics HTTP\/1.1" 200/, q);
  }
  // serving metrics: scraped from the engine's /metrics every 5 s
  const d = await waitFor('qwen2.5-7b', (x) => x.metrics && 'requests_running' in x.metrics, 'showed metrics', 7000);
  assert.equal(typeof d.metrics.kv_cache_usage, 'number');
});

test('kill -9 of an engine brings it back', async () => {
  const before = (await srv.api('GET', '/api/v1/deployments/bge-large', { token: T })).json.instances[0];
  process.kill(before.pid, 'SIGKILL');
  const d = await waitFor('bge-large', (x) => x.state === 'running' && x.instances[0].pid !== before.pid && x.instances[0].state === 'running', 'came back');
  assert.equal(d.instances[0].restarts, 1);
  assert.deepEqual(d.instances[0].gpu_indices, before.gpu_indices, 'same GPUs');
  pids['bge-large'] = d.instances[0].pid;
  const log = (await srv.api('GET', '/api/v1/deployments/bge-large/logs?tail=400', { token: T })).text;
  assert.match(log, /the engine stopped \(signal 9\)/);
});

test('kill -9 of aimaas, then a restart: every engine still serving with the same pid', async () => {
  await srv.kill9();
  for (const pid of Object.values(pids)) assert.ok(alive(pid), 'engines outlive aimaas');
  srv = await start();
  T = await srv.login();
  for (const [n, pid] of Object.entries(pids)) {
    const d = (await srv.api('GET', `/api/v1/deployments/${n}`, { token: T })).json;
    assert.equal(d.instances[0].pid, pid, n);
    assert.equal(d.instances[0].state, 'running', n);
  }
  assert.match(srv.log(), /re-adopted engine local \d+:\d+:\//); // the local runtime's reference: pid:start:log
  await sleep(700);
  for (const [n, pid] of Object.entries(pids))
    assert.equal((await srv.api('GET', `/api/v1/deployments/${n}`, { token: T })).json.instances[0].pid, pid, `${n} not restarted`);
});

test('stop, start, restart and delete leave no stray process', async () => {
  const pid = pids['qwen2.5-7b'];
  const stop = await srv.api('POST', '/api/v1/deployments/qwen2.5-7b/stop', { token: T });
  assert.equal(stop.status, 202);
  await waitFor('qwen2.5-7b', (x) => x.state === 'stopped' && x.instances.length === 0, 'stopped');
  assert.ok(!groupAlive(pid), 'the whole process group is gone');
  const task = (await srv.api('GET', `/api/v1/tasks/${stop.headers.get('x-task-id')}`, { token: T })).json;
  assert.equal(task.state, 'succeeded');
  const freed = (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items;
  assert.ok(freed.some((g) => g.memory.reserved === 0), 'its GPU memory is released');
  await srv.api('POST', '/api/v1/deployments/qwen2.5-7b/start', { token: T });
  const s = await running('qwen2.5-7b');
  const p2 = s.instances[0].pid;
  await srv.api('POST', '/api/v1/deployments/qwen2.5-7b/restart', { token: T });
  const r = await waitFor('qwen2.5-7b', (x) => x.state === 'running' && x.instances[0]?.pid && x.instances[0].pid !== p2 && x.instances[0].state === 'running', 'restarted');
  assert.ok(!groupAlive(p2));
  const del = await srv.api('DELETE', '/api/v1/deployments/qwen2.5-7b', { token: T });
  assert.equal(del.status, 202);
  const t0 = Date.now();
  while ((await srv.api('GET', '/api/v1/deployments/qwen2.5-7b', { token: T })).status !== 404 && Date.now() - t0 < 15000) await sleep(50);
  assertError(await srv.api('GET', '/api/v1/deployments/qwen2.5-7b', { token: T }), 404);
  assert.ok(!groupAlive(r.instances[0].pid));
  const served = await srv.api('DELETE', '/api/v1/models/Qwen3-32B', { token: T });
  assertError(served, 409, 'conflict');
  assert.match(served.json.error.message, /deployment\(s\), '[^']+' among them/, 'the refusal names a deployment to delete');
});

test('failures come with their reason and the last log lines; pinned GPUs and scaling', async () => {
  const oom = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'oom', model: 'Qwen2.5-VL-7B-Instruct', engine: 'vllm',
    gpus: [7], engine_args: ['--sim-startup-error', 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB'] } });
  assert.equal(oom.status, 201, oom.text);
  assert.deepEqual(oom.json.instances[0].gpu_indices, [7], 'pinned');
  const d = await waitFor('oom', (x) => x.instances[0]?.state === 'backoff', 'backed off');
  assert.match(d.instances[0].reason, /^exit 1: torch.OutOfMemoryError: CUDA out of memory/);
  assert.ok(d.instances[0].last_log_lines.some((l) => /Engine core initialization failed/.test(l)));
  await srv.api('DELETE', '/api/v1/deployments/oom', { token: T });
  // a missing engine program
  const eng = await srv.api('PATCH', '/api/v1/engines/llama.cpp', { token: T, body: { binary: '/nonexistent/llama-server' } });
  const byName = Object.fromEntries(eng.json.items.map((e) => [e.name, e]));
  assert.equal(byName['llama.cpp'].found, null, 'the engine list says the program is not there');
  assert.match(byName.vllm.found, /tests\/shims\/vllm$/, 'found on PATH as an engine start would find it');
  await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(dir, 'models', 'qwen2.5-0.5b-instruct-q4_k_m.gguf') } });
  const g = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'tiny', model: 'qwen2.5-0.5b-instruct-q4_k_m', engine: 'llama.cpp' } });
  assert.equal(g.status, 201, g.text);
  // it fails at once, saying where to set the program: no five backed-off attempts
  const t0 = Date.now();
  const gd = await waitFor('tiny', (x) => x.state === 'failed', 'failed', 5000);
  assert.ok(Date.now() - t0 < 3000, `failed at once, not after backoffs (${Date.now() - t0} ms)`);
  assert.equal(gd.instances[0].state, 'failed');
  assert.equal(gd.instances[0].failures, 0, 'no failed start counted toward a backoff');
  assert.match(gd.instances[0].reason, /^engine program '\/nonexistent\/llama-server' not found or not executable, set it on the Engines page$/);
  assert.match(gd.reason, /set it on the Engines page/);
  assert.equal(byName['llama.cpp'].missing, "engine program '/nonexistent/llama-server' not found or not executable, set it on the Engines page");
  await srv.api('DELETE', '/api/v1/deployments/tiny', { token: T });
  // scaling the reranker to two replicas, then back
  const up = await srv.api('PATCH', '/api/v1/deployments/bge-reranker', { token: T, body: { replicas: 2 } });
  assert.equal(up.status, 200, up.text);
  const two = await waitFor('bge-reranker', (x) => x.instances.length === 2 && x.instances.every((i) => i.state === 'running'),
    'scaled up');
  assert.ok(engineAlive(two.instances[1].pid, two.instances[1].port), 'the second replica\'s engine runs');
  await srv.api('PATCH', '/api/v1/deployments/bge-reranker', { token: T, body: { replicas: 1 } });
  await waitFor('bge-reranker', (x) => x.instances.length === 1, 'scaled down');
  // its engine is gone: the row goes only once the whole group has (status ENDED)
  assert.ok(!engineAlive(two.instances[1].pid, two.instances[1].port), 'the removed replica\'s engine is gone');
  // settings changed later (the console's edit): a secret env value reads masked and, sent back
  // masked, keeps what is stored; the engine restarts with the new settings
  const withEnv = await srv.api('PATCH', '/api/v1/deployments/bge-reranker', { token: T,
    body: { env: { HF_TOKEN: 'hf-secret-1', LOG_LEVEL: 'info' } } });
  assert.equal(withEnv.status, 200, withEnv.text);
  assert.deepEqual(withEnv.json.env, { HF_TOKEN: '********', LOG_LEVEL: 'info' });
  const again = await srv.api('PATCH', '/api/v1/deployments/bge-reranker', { token: T,
    body: { env: { ...withEnv.json.env, LOG_LEVEL: 'debug' }, max_num_seqs: 64 } });
  assert.equal(again.status, 200, again.text);
  const envOf = (pid) => { try { return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0'); } catch { return []; } };
  const back = await waitFor('bge-reranker', (x) => x.state === 'running' && x.instances[0]?.pid &&
    envOf(x.instances[0].pid).includes('LOG_LEVEL=debug'), 'restarted with the new env');
  const environ = envOf(back.instances[0].pid);
  assert.ok(environ.includes('HF_TOKEN=hf-secret-1'), 'the masked value kept the stored secret');
  assert.ok(!srv.log().includes('hf-secret-1'), 'and it is not logged');
});

test('cards without bf16 get fp16; a model too large for the cards is refused with a way out', async () => {
  const d2 = tempDir();
  mkdirSync(join(d2, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(d2, 'models'));
  makeModel('Qwen3-32B', join(d2, 'models'));
  const s = await startServer({ dataDir: d2, args: ['--sim-gpus', '6x11GiB:NVIDIA GeForce RTX 2080 Ti'] });
  try {
    const t = await s.login();
    for (const m of ['Qwen2.5-7B-Instruct', 'Qwen3-32B'])
      await s.api('POST', '/api/v1/models', { token: t, body: { path: join(d2, 'models', m) } });
    const r = await s.api('POST', '/api/v1/deployments?dry_run=true', { token: t, body: { name: 'q', model: 'Qwen2.5-7B-Instruct', gpus_per_replica: 2 } });
    assert.equal(r.status, 200, r.text);
    const argv = r.json.command.argv;
    assert.equal(argv[argv.indexOf('--dtype') + 1], 'half');
    const one = await s.api('POST', '/api/v1/deployments?dry_run=true', { token: t, body: { name: 'q', model: 'Qwen2.5-7B-Instruct' } });
    assertError(one, 409, 'conflict');
    assert.match(one.json.error.message, /needs [\d.]+ GiB per GPU with 1 GPU\(s\).*largest card gives 9.9 GiB; with 2 GPUs it needs [\d.]+ GiB each/);
    const big = await s.api('POST', '/api/v1/deployments?dry_run=true', { token: t, body: { name: 'b', model: 'Qwen3-32B', gpus_per_replica: 4 } });
    assertError(big, 409, 'conflict');
    assert.match(big.json.error.message, /no split over these 6 GPUs fits \(over 4 it needs [\d.]+ GiB each\)/);
  } finally {
    await s.stop();
    s.cleanup();
  }
});

test('by default engines keep serving while aimaas is stopped or upgraded', async () => {
  const d3 = tempDir();
  mkdirSync(join(d3, 'models'));
  makeModel('bge-large-zh-v1.5', join(d3, 'models'));
  const env = { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim') };
  let s = await startServer({ dataDir: d3, args: ['--sim-gpus', '1x24GiB'], env });
  let t = await s.login();
  await s.api('POST', '/api/v1/models', { token: t, body: { path: join(d3, 'models', 'bge-large-zh-v1.5') } });
  await s.api('POST', '/api/v1/deployments', { token: t, body: { name: 'e', model: 'bge-large-zh-v1.5' } });
  let pid;
  for (let i = 0; i < 200 && !pid; i++) {
    const d = (await s.api('GET', '/api/v1/deployments/e', { token: t })).json;
    if (d.state === 'running') pid = d.instances[0].pid;
    else await sleep(25);
  }
  assert.ok(pid);
  await s.stop(); // SIGTERM, a clean stop
  assert.ok(alive(pid), 'the engine still serves');
  s = await startServer({ dataDir: d3, args: ['--sim-gpus', '1x24GiB', '--stop-engines-on-exit'], env });
  t = await s.login();
  assert.equal((await s.api('GET', '/api/v1/deployments/e', { token: t })).json.instances[0].pid, pid);
  await s.stop();
  assert.ok(!groupAlive(pid), '--stop-engines-on-exit stops it');
  s.cleanup();
});
