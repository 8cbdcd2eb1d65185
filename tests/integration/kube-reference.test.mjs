// The reference set-up of ../shared/mission.md, deployed as the console does
// it (cards picked per deployment): three servers of six RTX 2080 Ti (11 GiB);
// server A is the machine aimaas runs on (simulated GPUs, engines as local
// processes), servers B and C are the nodes of a Kubernetes cluster (the fake
// kube-apiserver). The 32B and 14B models are their published AWQ (4-bit)
// checkpoints, as on 2080 Ti cards (no bf16; a 32B model in fp16 does not fit
// four of them). Every replica must run on the node the plan chose.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, startServer, tempDir, waitUntil } from './lib.mjs';
import { startKube } from '../fakes/kube-apiserver.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const NS = 'aimaas';
const SHIMS = resolve(ROOT, 'tests/shims');
const T2080 = { gpus: 6, gpuProduct: 'NVIDIA-GeForce-RTX-2080-Ti', gpuMemory: 11264, computeMajor: 7, computeMinor: 5 };
const MODELS = ['DeepSeek-R1-Distill-Qwen-32B-AWQ', 'Qwen2.5-VL-7B-Instruct', 'Qwen3-32B-AWQ', 'bge-large-zh-v1.5',
  'bge-reranker-v2-m3', 'Qwen2.5-14B-Instruct-AWQ'];
let k, srv, T;

before(async () => {
  k = await startKube({ namespace: NS, nodes: [{ name: 'server-b', address: '10.1.0.2', ...T2080 }, { name: 'server-c', address: '10.1.0.3', ...T2080 }] });
  const dir = tempDir();
  mkdirSync(join(dir, 'models'));
  for (const m of MODELS) makeModel(m, join(dir, 'models'));
  const models = realpathSync(join(dir, 'models'));
  srv = await startServer({
    dataDir: dir,
    args: ['--sim-gpus', '6x11GiB:NVIDIA GeForce RTX 2080 Ti', '--stop-engines-on-exit'], // server A's engines end with the test
    env: { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim') },
  });
  T = await srv.login();
  for (const m of MODELS) {
    const r = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(models, m) } });
    assert.equal(r.status, 201, r.text);
  }
  const c = await srv.api('POST', '/api/v1/clusters', { token: T,
    body: { name: 'lab', kubeconfig: k.kubeconfig('admin'), storage_mode: 'host_path', storage_path: models } });
  assert.equal(c.status, 201, c.text);
  await waitUntil(srv, 'servers B and C in the pool', async () =>
    (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items.filter((g) => g.node?.startsWith('lab:')).length === 12);
});

after(async () => {
  await srv?.stop();
  srv?.cleanup();
  await k?.stop();
});

const card = (node, i) => (node === 'local' ? i : `lab:${node}:${i}`);
const PLAN = [
  { name: 'deepseek-r1', model: 'DeepSeek-R1-Distill-Qwen-32B-AWQ', node: 'local', cards: [0, 1, 2, 3] },
  // 32k tokens of context need 10.0 GiB a card (9.9 usable): the planner says 16k fits, as the wizard shows
  { name: 'qwen-vl', model: 'Qwen2.5-VL-7B-Instruct', node: 'local', cards: [4, 5], max_model_len: 16384 },
  { name: 'qwen3-32b', model: 'Qwen3-32B-AWQ', node: 'server-b', cards: [0, 1, 2, 3] },
  { name: 'bge-large', model: 'bge-large-zh-v1.5', node: 'server-b', cards: [4] },
  { name: 'bge-reranker', model: 'bge-reranker-v2-m3', node: 'server-b', cards: [5] },
  { name: 'qwen2.5-14b', model: 'Qwen2.5-14B-Instruct-AWQ', node: 'server-c', cards: [0, 1] },
];

test('the reference set-up: six deployments on server A (local) and servers B and C (Kubernetes), each where it was planned', async () => {
  for (const p of PLAN) {
    const body = { name: p.name, model: p.model, engine: 'vllm', gpus: p.cards.map((i) => card(p.node, i)) };
    if (p.max_model_len) {
      const full = await srv.api('POST', '/api/v1/deployments?dry_run=true', { token: T, body });
      assert.equal(full.status, 409, full.text);
      assert.match(full.json.error.message, /with 4 GPUs it needs [\d.]+ GiB each; or with max_model_len \d+ would fit/);
      body.max_model_len = p.max_model_len;
    }
    const dry = await srv.api('POST', '/api/v1/deployments?dry_run=true', { token: T, body });
    assert.equal(dry.status, 200, `${p.name}: ${dry.text}`);
    const want = p.node === 'local' ? 'local' : `lab:${p.node}`;
    assert.equal(dry.json.plan.replicas[0].node, want, p.name);
    if (p.node !== 'local') assert.match(dry.json.plan.note, /whole cards/);
    if (p.model === 'Qwen2.5-VL-7B-Instruct') assert.equal(dry.json.plan.dtype, 'half', 'a bf16 model on cards without bf16');
    const r = await srv.api('POST', '/api/v1/deployments', { token: T, body });
    assert.equal(r.status, 201, `${p.name}: ${r.text}`);
    p.id = r.json.id;
  }
  // the cluster's replicas are pods on their nodes, each with its cards' count
  const pods = await waitUntil(srv, 'four pods scheduled', async () => {
    const ps = k.state.list('pods', NS).filter((x) => x.metadata.labels?.['app.kubernetes.io/managed-by'] === 'aimaas' && x.spec.nodeName);
    return ps.length === 4 && ps;
  });
  for (const p of PLAN.filter((x) => x.node !== 'local')) {
    const pod = pods.find((x) => x.metadata.labels['aimaas.io/deployment'] === String(p.id));
    assert.ok(pod, p.name);
    assert.equal(pod.spec.nodeName, p.node, p.name);
    assert.equal(pod.spec.containers[0].resources.limits['nvidia.com/gpu'], String(p.cards.length), p.name);
    const argv = pod.spec.containers[0].command;
    if (p.cards.length > 1) assert.equal(argv[argv.indexOf('--tensor-parallel-size') + 1], String(p.cards.length), p.name);
    k.control.setReady(NS, pod.metadata.name, true);
  }
  // everything runs: local engines as processes on server A, the rest as pods
  for (const p of PLAN) {
    const d = await waitUntil(srv, `${p.name} running`, async () => {
      const x = (await srv.api('GET', `/api/v1/deployments/${p.id}`, { token: T })).json;
      return x.state === 'running' && x;
    }, 60000);
    assert.equal(d.instances[0].node_id, p.node === 'local' ? 'local' : `lab:${p.node}`, p.name);
    assert.deepEqual(d.instances[0].gpu_indices ?? p.cards, p.cards, p.name);
    if (p.node === 'local') assert.ok(d.instances[0].pid > 0, `${p.name} runs here`);
  }
  // server C keeps four cards for fine-tuning: a 4-GPU replica fits there and nowhere else
  const four = await srv.api('POST', '/api/v1/deployments?dry_run=true',
    { token: T, body: { name: 'x', model: 'Qwen2.5-14B-Instruct-AWQ', engine: 'vllm', gpus_per_replica: 4 } });
  assert.equal(four.status, 200, four.text);
  assert.equal(four.json.plan.replicas[0].node, 'lab:server-c');
  const five = await srv.api('POST', '/api/v1/deployments?dry_run=true',
    { token: T, body: { name: 'x', model: 'Qwen2.5-14B-Instruct-AWQ', engine: 'vllm', gpus_per_replica: 2, replicas: 3 } });
  assert.equal(five.status, 409, five.text);
  // a local engine answers through the gateway as any other
  const key = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'dify' } });
  assert.equal(key.status, 201, key.text);
  const chat = await fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key.json.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'deepseek-r1', messages: [{ role: 'user', content: '你好' }], max_tokens: 8 }),
  });
  assert.equal(chat.status, 200, await chat.clone().text());
});
