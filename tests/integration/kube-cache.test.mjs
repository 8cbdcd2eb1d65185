// A cluster whose nodes keep their own model cache (storage_mode node_cache,
// issue 14): a hub model's replica on a node first runs the same downloader
// as aimaas (`aimaas download` in aimaas's image, an init container) into
// the node's cache folder, then the engine reads it there. The fake
// kube-apiserver's kubelet runs that init container for real: build/aimaas
// download against the fake hub, into a folder standing for the node's disk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, startServer, tempDir, waitUntil } from './lib.mjs';
import { startKube } from '../fakes/kube-apiserver.mjs';
import { startHub, tinyRepo } from '../fakes/hub.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const NS = 'aimaas';
const H100 = { gpus: 2, gpuProduct: 'NVIDIA-H100-80GB-HBM3', gpuMemory: 81559, computeMajor: 9, computeMinor: 0 };
const CACHE = '/var/lib/aimaas-cache';
let k, hub, srv, T, nodes, model, runs = [];

// the kubelet's side of the fetcher: its command with the node's disk for the hostPath, its env from
// the pod spec (values, and keys of the Secret), its stdout as the container's log
function runInit(pod, c, io) {
  const vol = pod.spec.volumes.find((v) => v.name === c.volumeMounts[0].name);
  const onNode = join(nodes, pod.spec.nodeName, vol.hostPath.path);
  mkdirSync(onNode, { recursive: true });
  const secret = k.state.get('secrets', NS, pod.metadata.name);
  const env = { PATH: process.env.PATH };
  for (const e of c.env || []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef) env[e.name] = secret.stringData?.[e.valueFrom.secretKeyRef.key]
      ?? Buffer.from(secret.data[e.valueFrom.secretKeyRef.key], 'base64').toString();
  }
  const args = c.command.slice(1).map((a, i, all) => (all[i - 1] === '--dest' ? onNode : a));
  assert.equal(c.command[0], 'aimaas');
  const p = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  runs.push({ node: pod.spec.nodeName, args, env });
  p.stdout.on('data', (d) => io.log(d.toString()));
  p.stderr.on('data', (d) => io.log(d.toString()));
  p.on('exit', (code) => io.exit(code ?? 1));
}

before(async () => {
  hub = await startHub({ repos: { 'Qwen/Tiny-Instruct': { files: tinyRepo(24, 256), private: true } } });
  k = await startKube({ namespace: NS, runInit, nodes: [
    { name: 'gpu-1', address: '10.0.0.11', ...H100 }, { name: 'gpu-2', address: '10.0.0.12', ...H100 }] });
  nodes = tempDir();
  const dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  srv = await startServer({ dataDir: dir, env: { AIMAAS_MODELSCOPE_ENDPOINT: hub.msUrl, AIMAAS_MODELSCOPE_TOKEN: hub.token,
    AIMAAS_IMAGE: 'registry.local/aimaas:test' } });
  T = await srv.login();
  const m = await srv.api('POST', '/api/v1/models', { token: T, body: { hub_id: 'Qwen/Tiny-Instruct', source: 'modelscope', download: true } });
  assert.equal(m.status, 201, m.text);
  model = await waitUntil(srv, 'the model downloaded here', async () => {
    const x = (await srv.api('GET', `/api/v1/models/${m.json.id}`, { token: T })).json;
    return x.state === 'ready' && x;
  });
  const local = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(realpathSync(dir), 'models', 'Qwen2.5-7B-Instruct') } });
  assert.equal(local.status, 201, local.text);
  const c = await srv.api('POST', '/api/v1/clusters', { token: T,
    body: { name: 'c1', kubeconfig: k.kubeconfig('admin'), storage_mode: 'node_cache', storage_path: `${CACHE}/` } });
  assert.equal(c.status, 201, c.text);
  assert.equal(c.json.storage_mode, 'node_cache');
  assert.equal(c.json.storage_path, CACHE);
  await waitUntil(srv, 'c1 nodes ready', async () =>
    (await srv.api('GET', '/api/v1/nodes', { token: T })).json.items.filter((n) => n.cluster === 'c1' && n.state === 'ready').length === 2);
});

after(async () => {
  await srv?.stop();
  srv?.cleanup();
  await k?.stop();
  await hub?.stop();
});

const ours = (res) => k.state.list(res, NS).filter((o) => o.metadata.labels?.['app.kubernetes.io/managed-by'] === 'aimaas');
const live = (depId) => ours('pods').filter((p) => p.metadata.labels['aimaas.io/deployment'] === String(depId) && !p.metadata.deletionTimestamp);
const dep = async (id) => (await srv.api('GET', `/api/v1/deployments/${id}`, { token: T })).json;
const sha = (f) => createHash('sha256').update(readFileSync(f)).digest('hex');

test('a replica on a node-cache cluster fetches its model onto that node first, with progress, then serves from it', async () => {
  hub.control.slow(250000);
  const r = await srv.api('POST', '/api/v1/deployments', { token: T, body: { model: model.name, engine: 'vllm', name: 'cached', gpus: ['c1:gpu-1:0'] } });
  assert.ok(r.status === 201 || r.status === 202, r.text);
  const id = r.json.id;
  const pod = await waitUntil(srv, 'the pod', async () => live(id)[0]);
  const init = pod.spec.initContainers[0];
  assert.equal(init.name, 'fetch-model');
  assert.equal(init.image, 'registry.local/aimaas:test');
  const commit = (await srv.api('GET', `/api/v1/models/${model.id}/download`, { token: T })).json.commit;
  assert.deepEqual(init.command.slice(0, -2), ['aimaas', 'download', '--source', 'modelscope', '--repo', 'Qwen/Tiny-Instruct',
    '--revision', commit, '--dest', model.path]);
  assert.equal(init.command.at(-2), '--expect-files', 'the node copies the very files aimaas downloaded');
  assert.match(init.command.at(-1), /^[0-9a-f]{64}$/);
  const vol = pod.spec.volumes.find((v) => v.name === 'model');
  assert.deepEqual(vol.hostPath, { path: `${CACHE}/modelscope/Qwen/Tiny-Instruct`, type: 'DirectoryOrCreate' });
  const engine = pod.spec.containers[0];
  assert.deepEqual(engine.volumeMounts.find((m) => m.name === 'model'), { name: 'model', mountPath: model.path, readOnly: true });
  assert.deepEqual(init.volumeMounts, [{ name: 'model', mountPath: model.path }]);
  // the hub's token: in the Secret, read by the fetcher alone, nowhere in clear
  assert.ok(!JSON.stringify(pod).includes(hub.token), 'no token in the pod spec');
  assert.deepEqual(init.env.find((e) => e.name === 'AIMAAS_MODELSCOPE_TOKEN').valueFrom.secretKeyRef, { name: pod.metadata.name, key: 'AIMAAS_HUB_TOKEN' });
  assert.ok(!engine.env.some((e) => e.valueFrom?.secretKeyRef?.key === 'AIMAAS_HUB_TOKEN'), 'the engine does not get it');
  assert.equal(init.env.find((e) => e.name === 'AIMAAS_MODELSCOPE_ENDPOINT').value, hub.msUrl);
  // while it fetches, the replica says so, with the progress
  await waitUntil(srv, "fetching in the reason", async () =>
    /fetching the model onto node gpu-1: \d+% of/.test((await dep(id)).instances[0]?.reason || ''));
  hub.control.slow(0);
  const engineUp = await waitUntil(srv, 'the engine container started', async () => {
    const p = k.state.get('pods', NS, pod.metadata.name);
    return p?.status.containerStatuses?.[0]?.state?.running && p;
  });
  assert.equal(engineUp.status.initContainerStatuses[0].state.terminated.exitCode, 0);
  // the node's cache holds the same files as aimaas's copy
  const onNode = join(nodes, 'gpu-1', CACHE, 'modelscope', 'Qwen', 'Tiny-Instruct');
  const files = readdirSync(model.path).filter((f) => !f.startsWith('.')).sort();
  assert.deepEqual(readdirSync(onNode).sort(), files);
  for (const f of files) assert.equal(sha(join(onNode, f)), sha(join(model.path, f)), f);
  k.control.setReady(NS, pod.metadata.name, true);
  await waitUntil(srv, 'running', async () => (await dep(id)).instances[0].state === 'running');
  const log = await srv.api('GET', `/api/v1/deployments/${id}/logs?tail=200`, { token: T });
  assert.match(log.text, /"event":"progress"/, 'the fetcher\'s lines in the deployment log');
  assert.match(log.text, /"event":"done"/);

  // the same node again (a restart): the cache is complete, nothing is downloaded again
  const mark = hub.requests.length;
  k.control.crash(NS, pod.metadata.name, { exitCode: 1 });
  const second = await waitUntil(srv, 'a new pod', async () => live(id).find((p) => p.metadata.name !== pod.metadata.name));
  await waitUntil(srv, 'its engine started', async () => k.state.get('pods', NS, second.metadata.name)?.status.containerStatuses?.[0]?.state?.running);
  assert.equal(k.state.get('pods', NS, second.metadata.name).spec.nodeName, 'gpu-1');
  assert.ok(!hub.requests.slice(mark).some((q) => q.url.includes('FilePath=')), 'no file fetched again');
  await srv.api('DELETE', `/api/v1/deployments/${id}`, { token: T });
});

test('a failed fetch ends the replica with the hub\'s reason; a model not from a hub is refused with why', async () => {
  // the repository moved on since aimaas downloaded it (ModelScope pins a branch, not a commit): a node
  // must not serve other weights than those aimaas inspected and planned with
  hub.put('Qwen/Tiny-Instruct', { files: tinyRepo(24, 256), private: true });
  runs = [];
  const r = await srv.api('POST', '/api/v1/deployments', { token: T, body: { model: model.name, engine: 'vllm', name: 'lost', gpus: ['c1:gpu-2:0'] } });
  const id = r.json.id;
  const d = await waitUntil(srv, 'the fetch failure in the reason', async () => {
    const x = await dep(id);
    return /fetching the model onto node gpu-2 failed \(exit 1\): aimaas download: Qwen\/Tiny-Instruct at master is not what was downloaded before/.test(x.instances[0]?.reason || '') && x;
  });
  assert.ok(runs.some((x) => x.node === 'gpu-2'));
  assert.ok(!existsSync(join(nodes, 'gpu-2', CACHE, 'modelscope', 'Qwen', 'Tiny-Instruct', 'config.json')));
  assert.ok(d.instances[0].state !== 'running');
  await srv.api('DELETE', `/api/v1/deployments/${id}`, { token: T });

  const l = await srv.api('POST', '/api/v1/deployments', { token: T, body: { model: 'Qwen2.5-7B-Instruct', engine: 'vllm', name: 'local', gpus: ['c1:gpu-1:1'] } });
  await waitUntil(srv, 'refused: not from a hub', async () =>
    /is not from a model hub: cluster c1's nodes fetch their own copy/.test((await dep(l.json.id)).instances[0]?.reason || ''));
  assert.equal(live(l.json.id).length, 0);
});

test('node_cache storage: the path is a plain absolute folder on the nodes', async () => {
  for (const bad of ['relative/x', '/', '/etc/aimaas', '/var/lib/kubelet/x', '/a/../b'])
    assert.equal((await srv.api('POST', '/api/v1/clusters', { token: T,
      body: { name: 'c2', kubeconfig: k.kubeconfig('admin'), storage_mode: 'node_cache', storage_path: bad } })).json.error.field, 'storage_path', bad);
});
