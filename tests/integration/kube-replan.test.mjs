// When the cluster disagrees with the plan: a workload aimaas did not see in
// time takes the planned node's GPUs, so the pod stays Pending with
// "Insufficient nvidia.com/gpu"; after AIMAAS_KUBE_REPLAN_MS the replica is
// placed again, on what is free now (the other node), and the pending pod goes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, waitUntil } from './lib.mjs';
import { startKube } from '../fakes/kube-apiserver.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const NS = 'aimaas';
const H100 = { gpus: 1, gpuProduct: 'NVIDIA-H100-80GB-HBM3', gpuMemory: 81559, computeMajor: 9, computeMinor: 0 };
let k, srv, T;

before(async () => {
  // the scheduler takes 1.5 s: time for another workload to take the card first
  k = await startKube({ namespace: NS, nodes: [{ name: 'gpu-1', ...H100 }, { name: 'gpu-2', ...H100 }], delays: { schedule: 1500 } });
  const dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  srv = await startServer({ dataDir: dir, env: { AIMAAS_KUBE_REPLAN_MS: '4000' } });
  T = await srv.login();
  assert.equal((await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(realpathSync(dir), 'models', 'Qwen2.5-7B-Instruct') } })).status, 201);
  const c = await srv.api('POST', '/api/v1/clusters', { token: T,
    body: { name: 'c1', kubeconfig: k.kubeconfig('admin'), storage_mode: 'host_path', storage_path: realpathSync(dir) } });
  assert.equal(c.status, 201, c.text);
  await waitUntil(srv, 'two nodes', async () => (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items.length === 2);
});

after(async () => {
  await srv?.stop();
  srv?.cleanup();
  await k?.stop();
});

// a pod bound straight to a node (no scheduler), as a DaemonSet's or another tool's would be
const foreign = (node) => new Promise((res, rej) => {
  const q = https.request(`${k.url}/api/v1/namespaces/default/pods`, { method: 'POST', ca: k.ca,
    headers: { authorization: `Bearer ${k.token}`, 'content-type': 'application/json' } }, (r) => { r.resume(); r.on('end', () => res(r.statusCode)); });
  q.on('error', rej);
  q.end(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'training-run' },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '1' } } }] } }));
});

test('a pod the cluster cannot fit where planned is replaced on a free node', async () => {
  const r = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'q', model: 'Qwen2.5-7B-Instruct', engine: 'vllm', gpus_per_replica: 1 } });
  assert.equal(r.status, 201, r.text);
  const ours = () => k.state.list('pods', NS).filter((p) => p.metadata.labels?.['aimaas.io/deployment'] === String(r.json.id));
  const first = await waitUntil(srv, 'the first pod', async () => ours()[0]);
  const planned = first.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values[0];
  assert.equal(await foreign(planned), 201); // takes the planned card before the scheduler gets there
  await waitUntil(srv, 'Pending for lack of GPUs', async () =>
    /Insufficient nvidia\.com\/gpu/.test((await srv.api('GET', `/api/v1/deployments/${r.json.id}`, { token: T })).json.instances?.[0]?.reason || ''));
  const next = await waitUntil(srv, 'placed again on the other node', async () => {
    const p = ours().filter((x) => x.metadata.name !== first.metadata.name && x.spec.nodeName);
    return p.length === 1 && p[0];
  }, 30000);
  assert.notEqual(next.spec.nodeName, planned);
  await waitUntil(srv, 'the pending pod deleted', async () => !k.state.get('pods', NS, first.metadata.name));
  assert.match(srv.log(), /the cluster cannot fit it where planned/);
});
