// The Kubernetes scenario against a real cluster (opt-in: `make test-k8s KUBECONFIG=...`; CI runs
// the same steps against the fake in tests/integration/kube-runtime.test.mjs). Needs a cluster with
// NVIDIA's device plugin and at least one free GPU, the rights of deploy/kubernetes/rbac.yaml in
// the namespace, and model files the nodes see at the same path as this machine:
//   KUBECONFIG               the kubeconfig (inline credentials)
//   AIMAAS_K8S_NAMESPACE     where aimaas runs workloads (default: the context's)
//   AIMAAS_K8S_STORAGE_MODE  host_path | pvc;  AIMAAS_K8S_STORAGE_PATH (and _CLAIM for pvc)
//   AIMAAS_K8S_MODEL         a model folder under the storage path (a small one: Qwen2.5-0.5B-Instruct)
//   AIMAAS_K8S_IMAGE         the image of the aimaas-sim engine: one built with deploy/kubernetes/Dockerfile
//                            (it holds aimaas-sim; no GPU work, so it runs anywhere a GPU can be allotted)
//   AIMAAS_K8S_TIMEOUT_S     how long a pod may take to be ready (default 600: image pulls)
// Steps: join (rights checked), deploy one replica, ready by the pod's probe, an answer through the
// gateway (aimaas must reach the node's NodePort), the log copied, kill -9 and restart (the pod is
// adopted, not doubled), delete (nothing of aimaas's left in the namespace: kubectl when present).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { startServer, tempDir, waitUntil } from '../integration/lib.mjs';

const need = ['KUBECONFIG', 'AIMAAS_K8S_STORAGE_MODE', 'AIMAAS_K8S_STORAGE_PATH', 'AIMAAS_K8S_MODEL', 'AIMAAS_K8S_IMAGE'];
const missing = need.filter((v) => !process.env[v]);
const skip = missing.length ? `set ${missing.join(', ')} (see the top of this file)` : false;
const E = process.env;
const TIMEOUT = Number(E.AIMAAS_K8S_TIMEOUT_S || 600) * 1000;
let dir, srv, T, ns;

before(async () => {
  if (skip) return;
  dir = tempDir();
  const roots = ['--model-root', E.AIMAAS_K8S_STORAGE_PATH];
  srv = await startServer({ dataDir: dir, args: roots });
  T = await srv.login();
}, { timeout: 60000 });

after(async () => {
  if (srv) {
    await srv.stop();
    srv.cleanup();
  }
});

const kubectl = (...a) => {
  try {
    return execFileSync('kubectl', ['--kubeconfig', E.KUBECONFIG, ...a], { encoding: 'utf8' });
  } catch { return null; }
};

test('a real cluster: join, deploy, ready, answer, logs, kill -9 and adoption, delete leaving nothing', { skip, timeout: TIMEOUT + 300000 }, async () => {
  const body = { name: 'real', kubeconfig: readFileSync(E.KUBECONFIG, 'utf8'), storage_mode: E.AIMAAS_K8S_STORAGE_MODE,
    storage_path: E.AIMAAS_K8S_STORAGE_PATH };
  if (E.AIMAAS_K8S_NAMESPACE) body.namespace = E.AIMAAS_K8S_NAMESPACE;
  if (E.AIMAAS_K8S_STORAGE_CLAIM) body.storage_claim = E.AIMAAS_K8S_STORAGE_CLAIM;
  const c = await srv.api('POST', '/api/v1/clusters', { token: T, body });
  assert.equal(c.status, 201, c.text);
  ns = c.json.namespace;
  await waitUntil(srv, 'a node with GPUs', async () =>
    (await srv.api('GET', '/api/v1/gpus', { token: T })).json.items.some((g) => g.node?.startsWith('real:')), 60000);
  const m = await srv.api('POST', '/api/v1/models', { token: T, body: { path: E.AIMAAS_K8S_MODEL } });
  assert.equal(m.status, 201, m.text);
  const img = await srv.api('PATCH', '/api/v1/engines/aimaas-sim', { token: T, body: { image: E.AIMAAS_K8S_IMAGE } });
  assert.equal(img.status, 200, img.text);
  const d = await srv.api('POST', '/api/v1/deployments', { token: T,
    body: { name: 'real-sim', model: basename(E.AIMAAS_K8S_MODEL), engine: 'aimaas-sim' } });
  assert.equal(d.status, 201, d.text);
  const id = d.json.id;
  const dep = async () => (await srv.api('GET', `/api/v1/deployments/${id}`, { token: T })).json;
  const up = await waitUntil(srv, 'ready on the cluster', async () => { const x = await dep(); return x.state === 'running' && x; }, TIMEOUT);
  const inst = up.instances[0];
  assert.ok(inst.runtime === 'kubernetes:real' && inst.pod && inst.node, JSON.stringify(inst));
  const key = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'k8s-test' } });
  const chat = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${key.json.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'real-sim', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 }) });
  assert.equal(chat.status, 200, await chat.clone().text());
  await waitUntil(srv, 'the pod log copied', async () =>
    (await srv.api('GET', `/api/v1/deployments/${id}/logs?tail=50`, { token: T })).text.includes(`pod ${ns}/${inst.pod}`), 30000);
  srv.proc.kill('SIGKILL');
  await srv.exited;
  srv = await startServer({ dataDir: dir, args: ['--model-root', E.AIMAAS_K8S_STORAGE_PATH] });
  T = await srv.login();
  const again = await waitUntil(srv, 'adopted', async () => { const x = await dep(); return x.state === 'running' && x; }, 120000);
  assert.equal(again.instances[0].pod, inst.pod, 'the same pod, adopted');
  assert.equal((await srv.api('DELETE', `/api/v1/deployments/${id}`, { token: T })).status, 202);
  await waitUntil(srv, 'deleted', async () => (await srv.api('GET', `/api/v1/deployments/${id}`, { token: T })).status === 404, 180000);
  const left = kubectl('-n', ns, 'get', 'pods,services,secrets,jobs', '-l', 'app.kubernetes.io/managed-by=aimaas', '-o', 'name');
  if (left !== null) assert.equal(left.trim(), '', `left behind: ${left}`);
  assert.equal((await srv.api('DELETE', '/api/v1/clusters/real', { token: T })).status, 200);
});
