// Simulated nodes (--sim-gpus NODE/...): every node and its GPUs in the API,
// and one planner that keeps a replica's tensor-parallel group on one node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, startServer, tempDir, assertError } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const SHIMS = resolve(ROOT, 'tests/shims');
let dir, srv, T;

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  srv = await startServer({ dataDir: dir,
    args: ['--sim-gpus', 'node-a/2x24GiB:NVIDIA L4', '--sim-gpus', 'node-b/2x24GiB:NVIDIA L4', '--stop-engines-on-exit'],
    env: { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim') } });
  T = await srv.login();
  const m = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(dir, 'models', 'Qwen2.5-7B-Instruct') } });
  assert.equal(m.status, 201, m.text);
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

const dep = (body, q = '') => srv.api('POST', `/api/v1/deployments${q}`, { token: T, body: { model: 'Qwen2.5-7B-Instruct', ...body } });

test('GET /nodes and /gpus show every simulated node and its GPUs', async () => {
  const nodes = (await srv.api('GET', '/api/v1/nodes', { token: T })).json.items;
  const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
  assert.deepEqual(Object.keys(byId).sort(), ['local', 'node-a', 'node-b']);
  assert.equal(byId['node-a'].state, 'ready');
  assert.equal(byId['node-a'].gpu_source, 'simulated');
  assert.equal(byId['node-a'].gpu_count, 2);
  assert.equal(byId['node-b'].gpus.length, 2);
  assert.equal(byId.local.gpu_count, 0);
  const gpus = (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items;
  assert.deepEqual(gpus.map((g) => `${g.node}:${g.index}`), ['node-a:0', 'node-a:1', 'node-b:0', 'node-b:1']);
  assert.ok(gpus.every((g) => g.simulated && g.name === 'NVIDIA L4' && g.memory.total === 24 * 2 ** 30));
  const onB = (await srv.api('GET', '/api/v1/gpus?node=node-b', { token: T })).json.items;
  assert.deepEqual(onB.map((g) => g.index), [0, 1]);
  const one = await srv.api('GET', `/api/v1/gpus/${gpus[3].id}`, { token: T });
  assert.equal(one.status, 200);
  assert.equal(one.json.node, 'node-b');
});

test('a TP-2 replica goes to the node with two free GPUs, and is refused when they are split', async () => {
  // one card of node-a taken: a TP-2 replica fits only on node-b
  const a = await dep({ name: 'one-a', gpus: ['node-a:0'] });
  assert.equal(a.status, 201, a.text);
  assert.equal(a.json.instances[0].node_id, 'node-a');
  const dry = await dep({ name: 'two', gpus_per_replica: 2 }, '?dry_run=true');
  assert.equal(dry.status, 200, dry.text);
  assert.equal(dry.json.plan.replicas[0].node, 'node-b');
  assert.deepEqual(dry.json.plan.replicas[0].gpus.map((g) => `${g.node}:${g.index}`).sort(), ['node-b:0', 'node-b:1']);
  const two = await dep({ name: 'two', gpus_per_replica: 2 });
  assert.equal(two.status, 201, two.text);
  const got = (await srv.api('GET', '/api/v1/deployments/two', { token: T })).json;
  assert.equal(got.instances.length, 1);
  assert.equal(got.instances[0].node_id, 'node-b');
  assert.deepEqual([...got.instances[0].gpu_indices].sort(), [0, 1]);
  // free GPUs split across nodes (node-a:1 and, once 'two' is gone, node-b:1)
  assert.equal((await srv.api('DELETE', '/api/v1/deployments/two', { token: T })).status < 300, true);
  for (let i = 0; i < 200; i++) {
    const r = await srv.api('GET', '/api/v1/deployments/two', { token: T });
    if (r.status === 404) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const b = await dep({ name: 'one-b', gpus: ['node-b:0'] });
  assert.equal(b.status, 201, b.text);
  const why = /tensor parallel size 2 needs 2 GPUs with [\d.]+ GiB free on one node \(a replica never spans nodes\); node-a has 1 free, node-b has 1 free/;
  const no = await dep({ name: 'split', gpus_per_replica: 2 }, '?dry_run=true');
  assertError(no, 409, undefined, 'gpus_per_replica');
  assert.match(no.json.error.message, why);
  const no2 = await dep({ name: 'split', gpus_per_replica: 2 });
  assertError(no2, 409, undefined, 'gpus_per_replica');
  assert.match(no2.json.error.message, why);
  // pinning one replica's GPUs on two nodes is bad input
  const pin = await dep({ name: 'pin', gpus: ['node-a:1', 'node-b:1'] });
  assertError(pin, 400, undefined, 'gpus');
  assert.match(pin.json.error.message, /GPUs of one replica must be on one node: GPU 1 of node-a and GPU 1 of node-b/);
  // reservations: one per GPU and owner, never over a card
  const gpus = (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items;
  for (const g of gpus) assert.ok(g.memory.reserved <= g.memory.total, JSON.stringify(g));
  assert.deepEqual(gpus.filter((g) => g.memory.reserved > 0).map((g) => `${g.node}:${g.index}`), ['node-a:0', 'node-b:0']);
});

test('/metrics lists every node\'s GPUs with what aimaas reserved on each', async () => {
  const m = await srv.api('GET', '/metrics', { token: T });
  assert.equal(m.status, 200, m.text);
  const gpus = (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items;
  for (const g of gpus) {
    const at = `node="${g.node}",gpu="${g.index}",uuid="${g.id}"`;
    assert.ok(m.text.includes(`aimaas_gpu_memory_bytes{${at},state="total"} ${g.memory.total}\n`), at);
    const r = m.text.match(new RegExp(`aimaas_gpu_memory_bytes\\{${at.replace(/[.]/g, '\\.')},state="reserved"\\} (\\d+)`));
    assert.ok(r, at);
    assert.equal(Number(r[1]), g.memory.reserved, at);
  }
  assert.ok(gpus.some((g) => g.memory.reserved > 0));
});
