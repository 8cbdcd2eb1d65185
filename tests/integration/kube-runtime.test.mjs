// The Kubernetes runtime (issue 13): a replica the planner puts on a cluster
// node runs there as a Pod with its Secret and NodePort Service, driven
// through the same runtime interface as local engines. Against the fake
// kube-apiserver (tests/fakes): the pod's shape, readiness, logs followed,
// a crash with OOMKilled, a pod stuck Pending with the scheduler's message,
// a node lost, kill -9 and adoption, and delete leaving nothing behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, waitUntil } from './lib.mjs';
import { startKube } from '../fakes/kube-apiserver.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const NS = 'aimaas';
const H100 = { gpus: 2, gpuProduct: 'NVIDIA-H100-80GB-HBM3', gpuMemory: 81559, computeMajor: 9, computeMinor: 0 };
let k, dir, models, srv, T;

const env = () => ({ AIMAAS_KUBE_LIST_PAGE: '2' });

before(async () => {
  k = await startKube({
    namespace: NS,
    nodes: [
      { name: 'gpu-1', address: '10.0.0.11', ...H100 },
      { name: 'gpu-2', address: '10.0.0.12', ...H100 },
      { name: 'gpu-t', address: '10.0.0.13', ...H100, taints: [{ key: 'team', value: 'research', effect: 'NoSchedule' }] },
    ],
  });
  dir = tempDir();
  models = join(dir, 'models');
  mkdirSync(models);
  makeModel('Qwen2.5-7B-Instruct', models);
  models = realpathSync(models);
  srv = await startServer({ dataDir: dir, env: env() });
  T = await srv.login();
  const m = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(models, 'Qwen2.5-7B-Instruct') } });
  assert.equal(m.status, 201, m.text);
  const c = await srv.api('POST', '/api/v1/clusters', { token: T,
    body: { name: 'c1', kubeconfig: k.kubeconfig('admin'), storage_mode: 'host_path', storage_path: realpathSync(dir) } });
  assert.equal(c.status, 201, c.text);
  assert.equal(c.json.storage_mode, 'host_path');
  await waitUntil(srv, 'c1 nodes ready', async () =>
    (await srv.api('GET', '/api/v1/nodes', { token: T })).json.items.filter((n) => n.cluster === 'c1' && n.state === 'ready').length === 3);
});

after(async () => {
  await srv?.stop();
  srv?.cleanup();
  await k?.stop();
});

const ours = (res) => k.state.list(res, NS).filter((o) => o.metadata.labels?.['app.kubernetes.io/managed-by'] === 'aimaas');
const podsOf = (depId) => ours('pods').filter((p) => p.metadata.labels['aimaas.io/deployment'] === String(depId));
const dep = async (id) => (await srv.api('GET', `/api/v1/deployments/${id}`, { token: T })).json;
const deploy = async (body) => {
  const r = await srv.api('POST', '/api/v1/deployments', { token: T, body: { model: 'Qwen2.5-7B-Instruct', engine: 'vllm', ...body } });
  assert.ok(r.status === 201 || r.status === 202, r.text);
  return r.json.id;
};
const onePod = (id, not) => waitUntil(srv, `a pod of deployment ${id}`, async () => {
  const p = podsOf(id).filter((x) => x.metadata.name !== not && !x.metadata.deletionTimestamp);
  return p.length === 1 && p[0].spec.nodeName && p[0];
});

let first; // the deployment of the first test, used by the later ones

test('a replica on a cluster node is a pod pinned there, its key in a Secret, reached by a NodePort Service', async () => {
  const t0 = Date.now();
  const id = await deploy({ name: 'k1', gpus: ['c1:gpu-2:0'] });
  first = id;
  const pod = await onePod(id);
  const tPod = Date.now() - t0;
  const spec = pod.spec;
  assert.equal(spec.nodeName, 'gpu-2');
  assert.equal(spec.restartPolicy, 'Never');
  assert.deepEqual(spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms,
    [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['gpu-2'] }] }]);
  const c = spec.containers[0];
  assert.equal(c.name, 'engine');
  assert.equal(c.image, 'vllm/vllm-openai:v0.10.1');
  assert.equal(c.command[0], 'vllm');
  assert.ok(c.command.includes(join(models, 'Qwen2.5-7B-Instruct')), c.command.join(' '));
  assert.ok(c.command.includes('0.0.0.0'), 'listens on the pod address');
  assert.deepEqual(c.resources.limits, { 'nvidia.com/gpu': '1' });
  assert.equal(c.readinessProbe.httpGet.path, '/health');
  assert.ok(c.startupProbe.failureThreshold * c.startupProbe.periodSeconds >= 600, 'minutes to load a model');
  // every variable from the Secret, key by key (another key there, a hub token, is not the engine's)
  assert.equal(c.envFrom, undefined);
  assert.ok(c.env.length >= 1 && c.env.every((e) => e.value === undefined && e.valueFrom.secretKeyRef.name === pod.metadata.name
    && e.valueFrom.secretKeyRef.key === e.name), JSON.stringify(c.env));
  assert.ok(c.env.some((e) => e.name === 'VLLM_API_KEY'));
  assert.equal(spec.initContainers, undefined, 'shared storage: nothing to fetch');
  assert.ok(!JSON.stringify(pod).includes('CUDA_VISIBLE_DEVICES'), 'the device plugin chooses the cards');
  const vols = Object.fromEntries(spec.volumes.map((v) => [v.name, v]));
  assert.deepEqual(vols.shm.emptyDir, { medium: 'Memory' });
  // of the shared storage (here aimaas's data dir) the pod sees the model's folder alone, read-only
  const mdir = join(models, 'Qwen2.5-7B-Instruct');
  const mv = spec.volumes.find((v) => v.hostPath);
  assert.deepEqual(mv.hostPath, { path: mdir, type: 'Directory' });
  assert.equal(spec.volumes.filter((v) => v.hostPath).length, 1);
  assert.deepEqual(c.volumeMounts.find((m) => m.name === mv.name), { name: mv.name, mountPath: mdir, readOnly: true });
  assert.equal(pod.metadata.labels['aimaas.io/instance'] !== undefined, true);
  // the secret: the engine's key, owned by the pod
  const secret = await waitUntil(srv, 'the secret owned by the pod', async () => {
    const s = k.state.get('secrets', NS, pod.metadata.name);
    return s?.metadata.ownerReferences?.[0]?.uid === pod.metadata.uid && s;
  });
  const keys = Object.keys(secret.data || secret.stringData || {});
  assert.ok(keys.includes('VLLM_API_KEY'), keys.join(','));
  // the service: NodePort to the engine's port, owned by the pod
  const svc = await waitUntil(srv, 'the service', async () => k.state.get('services', NS, pod.metadata.name));
  assert.equal(svc.spec.type, 'NodePort');
  assert.equal(svc.spec.selector['aimaas.io/pod'], pod.metadata.name);
  assert.equal(svc.metadata.ownerReferences[0].uid, pod.metadata.uid);
  const nodePort = svc.spec.ports[0].nodePort;
  // ready when the pod's readiness probe passes; reached at node address : node port
  assert.equal((await dep(id)).instances[0].state, 'starting');
  k.control.setReady(NS, pod.metadata.name, true);
  const d = await waitUntil(srv, 'running', async () => { const x = await dep(id); return x.instances[0].state === 'running' && x; });
  assert.equal(d.instances[0].node_id, 'c1:gpu-2');
  assert.equal(d.instances[0].address ?? `10.0.0.12:${nodePort}`, `10.0.0.12:${nodePort}`);
  const cmd = await srv.api('GET', `/api/v1/deployments/${id}/command`, { token: T });
  assert.equal(cmd.status, 200);
  console.log(`# POST /deployments -> pod created (fake, scheduled): ${tPod} ms`);
});

test("the pod's log is followed into the deployment's log", async () => {
  const pod = podsOf(first)[0];
  k.control.log(NS, pod.metadata.name, 'engine', 'INFO: Started server process', 'INFO: Application startup complete.');
  await waitUntil(srv, 'the pod log lines in the log', async () => {
    const r = await srv.api('GET', `/api/v1/deployments/${first}/logs?tail=50`, { token: T });
    return r.status === 200 && r.text.includes('Application startup complete.') && r.text.includes(`pod ${NS}/${pod.metadata.name}`);
  });
});

test('OOMKilled: the reason is shown, a new pod replaces it, the old objects are gone', async () => {
  const old = podsOf(first)[0];
  k.control.crash(NS, old.metadata.name, { reason: 'OOMKilled' });
  const d = await waitUntil(srv, 'OOMKilled in the reason', async () => {
    const x = await dep(first);
    return /OOMKilled \(exit 137\)/.test(x.instances[0].reason || '') && x;
  });
  assert.ok(['backoff', 'starting', 'pending'].includes(d.instances[0].state), d.instances[0].state);
  const next = await onePod(first, old.metadata.name);
  assert.notEqual(next.metadata.name, old.metadata.name);
  await waitUntil(srv, 'the crashed pod, its secret and service deleted', async () =>
    !k.state.get('pods', NS, old.metadata.name) && !k.state.get('secrets', NS, old.metadata.name) &&
    !k.state.get('services', NS, old.metadata.name));
  k.control.setReady(NS, next.metadata.name, true);
  await waitUntil(srv, 'running again', async () => (await dep(first)).instances[0].state === 'running');
});

test("a pod the cluster cannot schedule waits with the scheduler's message as its reason", async () => {
  const id = await deploy({ name: 'k-taint', gpus: ['c1:gpu-t:0'] });
  const inst = await waitUntil(srv, 'FailedScheduling in the reason', async () => {
    const x = await dep(id);
    return /untolerated taint/.test(x.instances[0]?.reason || '') && x.instances[0];
  });
  assert.equal(inst.state, 'starting');
  assert.match(inst.reason, /^Pending: 0\/3 nodes are available/);
  assert.equal((await srv.api('DELETE', `/api/v1/deployments/${id}`, { token: T })).status, 202);
  await waitUntil(srv, 'the pending pod deleted', async () => podsOf(id).length === 0);
  await waitUntil(srv, 'k-taint gone', async () => (await srv.api('GET', `/api/v1/deployments/${id}`, { token: T })).status === 404);
});

test('a node lost: the replica is placed again on a ready node', async () => {
  const id = await deploy({ name: 'k-lost', gpus_per_replica: 1 });
  const pod = await onePod(id);
  k.control.setReady(NS, pod.metadata.name, true);
  await waitUntil(srv, 'running', async () => (await dep(id)).instances[0].state === 'running');
  const lostNode = pod.spec.nodeName;
  k.control.setNodeReady(lostNode, false);
  await waitUntil(srv, 'the reason names the lost node', async () =>
    new RegExp(`node lost: ${lostNode} is not ready`).test((await dep(id)).instances[0].reason || ''));
  const next = await onePod(id, pod.metadata.name);
  assert.notEqual(next.spec.nodeName, lostNode);
  k.control.setReady(NS, next.metadata.name, true);
  await waitUntil(srv, 'running elsewhere', async () => (await dep(id)).instances[0].state === 'running');
  k.control.setNodeReady(lostNode, true);
  assert.equal((await srv.api('DELETE', `/api/v1/deployments/${id}`, { token: T })).status, 202);
  await waitUntil(srv, 'k-lost gone', async () => podsOf(id).length === 0 &&
    (await srv.api('GET', `/api/v1/deployments/${id}`, { token: T })).status === 404);
});

test("an admin's engine image (an offline registry); a cluster's cards are whole and tainted nodes are left out", async () => {
  const bad = await srv.api('PATCH', '/api/v1/engines/vllm', { token: T, body: { image: 'Not An Image!' } });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json.error.field, 'image');
  const img = 'registry.local:5000/vllm/vllm-openai:v0.10.1';
  const ok = await srv.api('PATCH', '/api/v1/engines/vllm', { token: T, body: { image: img } });
  assert.equal(ok.status, 200, ok.text);
  const e = ok.json.items.find((x) => x.name === 'vllm');
  assert.equal(e.image, img);
  assert.equal(e.default_image, 'vllm/vllm-openai:v0.10.1');
  const dry = await srv.api('POST', '/api/v1/deployments?dry_run=true',
    { token: T, body: { model: 'Qwen2.5-7B-Instruct', engine: 'vllm', name: 'two', gpus_per_replica: 1, replicas: 3 } });
  assert.equal(dry.status, 200, dry.text);
  assert.match(dry.json.plan.note, /each replica takes whole cards/);
  // three cards on untainted nodes, one taken by k1: three replicas go to three distinct cards, none on gpu-t
  const ids = dry.json.plan.replicas.map((r) => r.gpus[0].id);
  assert.equal(new Set(ids).size, 3);
  assert.ok(!ids.some((g) => g.startsWith('c1:gpu-t')), ids.join(','));
  assert.ok(!ids.includes((await dep(first)).instances[0].gpus?.[0] ?? 'c1:gpu-2:0'), ids.join(','));
  const four = await srv.api('POST', '/api/v1/deployments?dry_run=true',
    { token: T, body: { model: 'Qwen2.5-7B-Instruct', engine: 'vllm', name: 'two', gpus_per_replica: 1, replicas: 4 } });
  assert.equal(four.status, 409, four.text);
  assert.match(four.json.error.message, /3 GPU\(s\) have that free; 2 GPU\(s\) on tainted nodes are used only when pinned/);
  const id = await deploy({ name: 'k-img', gpus_per_replica: 1 });
  const pod = await onePod(id);
  assert.equal(pod.spec.containers[0].image, img);
  assert.equal((await srv.api('PATCH', '/api/v1/engines/vllm', { token: T, body: { image: '' } })).json.items
    .find((x) => x.name === 'vllm').image, 'vllm/vllm-openai:v0.10.1');
  assert.equal((await srv.api('DELETE', `/api/v1/deployments/${id}`, { token: T })).status, 202);
  await waitUntil(srv, 'k-img gone', async () => podsOf(id).length === 0 &&
    (await srv.api('GET', `/api/v1/deployments/${id}`, { token: T })).status === 404);
});

test('a fine-tuning job runs as a Kubernetes Job: its folder shared, progress read from it, logs, the end', async () => {
  const up = await srv.api('POST', '/api/v1/datasets?name=qa&file_name=qa.json', { token: T,
    raw: JSON.stringify(Array.from({ length: 16 }, (_, i) => ({ instruction: `Q${i}?`, input: '', output: `A${i}.` }))),
    headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(up.status, 201, up.text);
  const r = await srv.api('POST', '/api/v1/finetune/jobs', { token: T,
    body: { name: 'qa-k8s', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'], gpus: ['c1:gpu-1:1'] } });
  assert.equal(r.status, 201, r.text);
  const id = r.json.id;
  const jobDir = join(realpathSync(dir), 'finetune', String(id));
  const kjob = await waitUntil(srv, 'the Job', async () => ours('jobs').find((j) => j.metadata.labels['aimaas.io/job'] === String(id)));
  assert.equal(kjob.spec.backoffLimit, 0);
  const tpl = kjob.spec.template.spec, c = tpl.containers[0];
  assert.equal(tpl.restartPolicy, 'Never');
  assert.deepEqual(tpl.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values, ['gpu-1']);
  assert.equal(c.image, 'hiyouga/llamafactory:latest');
  assert.deepEqual(c.command, ['llamafactory-cli', 'train', join(jobDir, 'train.json')]);
  assert.deepEqual(c.resources.limits, { 'nvidia.com/gpu': '1' });
  const mounts = Object.fromEntries(c.volumeMounts.map((m) => [m.mountPath, m.readOnly]));
  assert.deepEqual(mounts, { '/dev/shm': undefined, [join(models, 'Qwen2.5-7B-Instruct')]: true, [jobDir]: false });
  const secret = await waitUntil(srv, "the Job's secret, owned by it", async () => {
    const x = k.state.get('secrets', NS, kjob.metadata.name);
    return x?.metadata.ownerReferences?.[0]?.kind === 'Job' && x;
  });
  const keys = Object.keys(secret.data || secret.stringData || {});
  assert.ok(keys.includes('LLAMABOARD_WORKDIR') && !keys.includes('CUDA_VISIBLE_DEVICES'), keys.join(','));
  const pod = await waitUntil(srv, "the Job's pod running", async () => {
    const p = ours('pods').find((x) => x.metadata.labels['aimaas.io/pod'] === kjob.metadata.name);
    return p?.status.phase === 'Running' && p;
  });
  assert.equal(pod.spec.nodeName, 'gpu-1');
  // the trainer writes its progress into the shared job folder, as LLaMA-Factory does
  mkdirSync(join(jobDir, 'out'), { recursive: true });
  writeFileSync(join(jobDir, 'out', 'trainer_log.jsonl'),
    `${JSON.stringify({ current_steps: 2, total_steps: 8, loss: 1.25, lr: 1e-4, epoch: 0.5, percentage: 25, elapsed_time: '0:00:04', remaining_time: '0:00:12' })}\n`);
  k.control.log(NS, pod.metadata.name, 'engine', "{'loss': 1.25, 'learning_rate': 0.0001, 'epoch': 0.5}");
  const running = await waitUntil(srv, 'running with progress', async () => {
    const j = (await srv.api('GET', `/api/v1/finetune/jobs/${id}`, { token: T })).json;
    return j.state === 'running' && j.progress?.step === 2 && j;
  });
  assert.equal(running.progress.total, 8);
  await waitUntil(srv, "the trainer's output in the job's log", async () => {
    const l = await srv.api('GET', `/api/v1/finetune/jobs/${id}/logs?tail=20`, { token: T });
    return l.status === 200 && l.text.includes("'loss': 1.25");
  });
  k.control.finishPod(NS, pod.metadata.name, 'succeeded');
  const done = await waitUntil(srv, 'succeeded', async () => {
    const j = (await srv.api('GET', `/api/v1/finetune/jobs/${id}`, { token: T })).json;
    return j.state === 'succeeded' && j;
  });
  assert.equal(done.reason ?? '', '');
  await waitUntil(srv, 'the Job, its pod and secret deleted', async () =>
    !ours('jobs').some((j) => j.metadata.name === kjob.metadata.name) && !k.state.get('secrets', NS, kjob.metadata.name) &&
    !ours('pods').some((p) => p.metadata.labels['aimaas.io/pod'] === kjob.metadata.name));
  // a crash: OOMKilled, named
  const r2 = await srv.api('POST', '/api/v1/finetune/jobs', { token: T,
    body: { name: 'qa-k8s-2', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'], gpus: ['c1:gpu-1:1'] } });
  assert.equal(r2.status, 201, r2.text);
  const pod2 = await waitUntil(srv, "the second Job's pod running", async () => {
    const p = ours('pods').find((x) => x.metadata.labels['aimaas.io/job'] === String(r2.json.id));
    return p?.status.phase === 'Running' && p;
  });
  k.control.crash(NS, pod2.metadata.name, { reason: 'OOMKilled' });
  const failed = await waitUntil(srv, 'failed with OOMKilled', async () => {
    const j = (await srv.api('GET', `/api/v1/finetune/jobs/${r2.json.id}`, { token: T })).json;
    return j.state === 'failed' && j;
  });
  assert.match(failed.reason, /OOMKilled/);
});

test('kill -9 and restart: every pod is adopted (no duplicates, none lost)', async () => {
  const id2 = await deploy({ name: 'k2', gpus_per_replica: 1, replicas: 2 });
  const pods2 = await waitUntil(srv, 'two pods', async () => { const p = podsOf(id2); return p.length === 2 && p.every((x) => x.spec.nodeName) && p; });
  for (const p of pods2) k.control.setReady(NS, p.metadata.name, true);
  await waitUntil(srv, 'both running', async () => (await dep(id2)).instances.every((i) => i.state === 'running'));
  const before = ours('pods').map((p) => p.metadata.name).sort();
  srv.proc.kill('SIGKILL');
  await srv.exited;
  srv = await startServer({ dataDir: dir, env: env() });
  await waitUntil(srv, 'adopted and running', async () => {
    const a = await dep(id2), b = await dep(first);
    return a.instances?.length === 2 && a.instances.every((i) => i.state === 'running') && b.instances?.[0]?.state === 'running';
  });
  await new Promise((r) => setTimeout(r, 1500)); // a pass or two: nothing is started again
  assert.deepEqual(ours('pods').map((p) => p.metadata.name).sort(), before);
  assert.ok(/re-adopted engine kubernetes:c1/.test(srv.log()), srv.log().slice(-2000));
});

test('delete leaves nothing behind: pods, jobs, secrets and services of aimaas all go', async () => {
  const all = (await srv.api('GET', '/api/v1/deployments', { token: T })).json.items;
  for (const d of all) assert.equal((await srv.api('DELETE', `/api/v1/deployments/${d.id}`, { token: T })).status, 202);
  await waitUntil(srv, 'nothing of aimaas left in the namespace', async () =>
    ours('pods').length === 0 && ours('secrets').length === 0 && ours('services').length === 0 && ours('jobs').length === 0);
  await waitUntil(srv, 'the deployments gone', async () => (await srv.api('GET', '/api/v1/deployments', { token: T })).json.items.length === 0);
});
