// Kubernetes clusters joining the pool (issue 13, first part): aimaas talks
// to the fake kube-apiserver (tests/fakes) over HTTPS with the CA, a token or
// a client certificate; the clusters' nodes and GPUs appear in /nodes, /gpus
// and the planner's capacity view; rights, TLS and credentials are checked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, startServer, tempDir, waitUntil } from './lib.mjs';
import { startKube } from '../fakes/kube-apiserver.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const NS = 'aimaas';
const RIGHTS = [
  { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['nodes'] },
  { verbs: ['get', 'list', 'watch', 'create', 'delete'], apiGroups: [''], resources: ['pods'], namespaces: [NS] },
];
// deploy/kubernetes/rbac.yaml's ClusterRole and Role (namespaces: a RoleBinding)
const LEAST = [
  { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['nodes'] },
  { verbs: ['list', 'watch'], apiGroups: [''], resources: ['pods'] },
  { verbs: ['get', 'list', 'watch', 'create', 'delete'], apiGroups: [''], resources: ['pods'], namespaces: [NS] },
  { verbs: ['get'], apiGroups: [''], resources: ['pods/log'], namespaces: [NS] },
  { verbs: ['get', 'list', 'create', 'delete'], apiGroups: [''], resources: ['services'], namespaces: [NS] },
  { verbs: ['get', 'create', 'patch', 'delete'], apiGroups: [''], resources: ['secrets'], namespaces: [NS] },
  { verbs: ['get', 'list', 'watch', 'create', 'delete'], apiGroups: ['batch'], resources: ['jobs'], namespaces: [NS] },
  { verbs: ['list', 'watch'], apiGroups: [''], resources: ['events'], namespaces: [NS] },
];
let k, other, dir, srv, T;

before(async () => {
  k = await startKube({
    namespace: NS,
    nodes: [
      { name: 'gpu-1', gpus: 4, gpuProduct: 'NVIDIA-H100-80GB-HBM3', gpuMemory: 81559, computeMajor: 9, computeMinor: 0 },
      { name: 'gpu-2', gpus: 2, gpuProduct: 'NVIDIA-L4', gpuMemory: 23034, taints: [{ key: 'x', value: 'y', effect: 'NoSchedule' }] },
    ],
    identities: { few: { rules: RIGHTS }, least: { rules: LEAST } },
  });
  other = await startKube({ namespace: NS, nodes: [{ name: 'n', gpus: 1 }] });
  dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  const sa = k.serviceAccount('admin');
  // lists in pages of one: every list goes through continue tokens
  srv = await startServer({ dataDir: dir, env: { AIMAAS_KUBE_SA_DIR: sa.dir, AIMAAS_KUBE_LIST_PAGE: '1', ...sa.env } });
  T = await srv.login();
  const m = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(dir, 'models', 'Qwen2.5-7B-Instruct') } });
  assert.equal(m.status, 201, m.text);
});

after(async () => {
  await srv?.stop();
  srv?.cleanup();
  await k?.stop();
  await other?.stop();
});

const add = (body) => srv.api('POST', '/api/v1/clusters', { token: T, body });
const nodesOf = async (c) => (await srv.api('GET', '/api/v1/nodes', { token: T })).json.items.filter((n) => n.cluster === c);

test('a cluster joins by kubeconfig (token): its nodes and GPUs appear with the feature-discovery facts', async () => {
  const r = await add({ name: 'c1', kubeconfig: k.kubeconfig('admin', { auth: 'token' }) });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.namespace, NS);
  assert.equal(r.json.kind, 'kubernetes');
  assert.equal(r.json.server, k.url);
  assert.equal(r.json.kubeconfig, undefined);
  assert.equal(r.json.credentials, undefined);
  const nodes = await waitUntil(srv, 'c1 nodes', async () => { const n = await nodesOf('c1'); return n.length === 2 && n; });
  const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
  assert.equal(byId['c1:gpu-1'].state, 'ready');
  assert.equal(byId['c1:gpu-1'].gpu_source, 'kubernetes');
  assert.equal(byId['c1:gpu-1'].gpus_allocatable, 4);
  assert.equal(byId['c1:gpu-1'].gpu_count, 4);
  assert.deepEqual(byId['c1:gpu-2'].taints, [{ key: 'x', value: 'y', effect: 'NoSchedule' }]);
  const gpus = (await srv.api('GET', '/api/v1/gpus?node=c1:gpu-1', { token: T })).json.items;
  assert.deepEqual(gpus.map((g) => g.index), [0, 1, 2, 3]);
  assert.equal(gpus[0].id, 'c1:gpu-1:0');
  assert.equal(gpus[0].name, 'NVIDIA-H100-80GB-HBM3');
  assert.equal(gpus[0].memory.total, 81559 * 2 ** 20);
  assert.equal(gpus[0].compute_capability, '9.0');
  const list = (await srv.api('GET', '/api/v1/clusters', { token: T })).json.items;
  const c1 = list.find((c) => c.id === 'c1');
  assert.equal(c1.state, 'reachable');
  assert.equal(c1.node_count, 2);
  assert.equal(c1.gpu_count, 6);
});

test('a dry-run deployment plan places a replica on a cluster node', async () => {
  const dry = await srv.api('POST', '/api/v1/deployments?dry_run=true',
    { token: T, body: { model: 'Qwen2.5-7B-Instruct', name: 'on-k8s', gpus: ['c1:gpu-1:0'] } });
  assert.equal(dry.status, 200, dry.text);
  assert.equal(dry.json.plan.replicas[0].node, 'c1:gpu-1');
});

test('a cluster joins with a client certificate', async () => {
  const r = await add({ name: 'c2', kubeconfig: k.kubeconfig('admin', { auth: 'cert' }) });
  assert.equal(r.status, 201, r.text);
  await waitUntil(srv, 'c2 nodes', async () => (await nodesOf('c2')).length === 2);
  const one = await srv.api('GET', '/api/v1/clusters/c2', { token: T });
  assert.equal(one.status, 200);
  assert.equal(one.json.state, 'reachable');
  assert.equal((await srv.api('DELETE', '/api/v1/clusters/c2', { token: T })).status, 200);
});

test('too few rights are refused, naming the missing verbs', async () => {
  const r = await add({ name: 'few', kubeconfig: k.kubeconfig('few') });
  assert.equal(r.status, 403, r.text);
  assert.match(r.json.error.message, /services \(get, list, create, delete\)/);
  assert.match(r.json.error.message, /pods\/log \(get\)/);
  assert.match(r.json.error.message, /batch\/jobs/);
  assert.doesNotMatch(r.json.error.message, /nodes/);
  assert.equal((await srv.api('GET', '/api/v1/clusters/few', { token: T })).status, 404);
  // the shipped manifest's rights are enough
  const least = await add({ name: 'least', kubeconfig: k.kubeconfig('least') });
  assert.equal(least.status, 201, least.text);
  await waitUntil(srv, 'least nodes', async () => (await nodesOf('least')).length === 2);
  assert.equal((await srv.api('DELETE', '/api/v1/clusters/least', { token: T })).status, 200);
});

test('a wrong CA is refused (TLS is verified); bad kubeconfigs are refused with a reason', async () => {
  const wrong = k.kubeconfig('admin').replace(k.caData, other.caData);
  const r = await add({ name: 'wrong-ca', kubeconfig: wrong });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error.message, /could not be reached: .*(SSL|certificate)/i);
  const insecure = k.kubeconfig('admin').replace(/certificate-authority-data: .*\n/, 'insecure-skip-tls-verify: true\n');
  const i = await add({ name: 'insecure', kubeconfig: insecure });
  assert.equal(i.status, 400);
  assert.match(i.json.error.message, /insecure-skip-tls-verify/);
  const file = k.kubeconfig('admin').replace(/certificate-authority-data: .*\n/, `certificate-authority: ${k.caFile}\n`);
  assert.match((await add({ name: 'file', kubeconfig: file })).json.error.message, /names a file/);
  const exec = k.kubeconfig('admin').replace(/    token: .*\n/, '    exec:\n      command: aws\n');
  assert.match((await add({ name: 'exec', kubeconfig: exec })).json.error.message, /exec credential plugins/);
  const bad = k.kubeconfig('admin').replace(/token: .*\n/, 'token: not-the-token\n');
  const u = await add({ name: 'badtoken', kubeconfig: bad });
  assert.equal(u.status, 400);
  assert.match(u.json.error.message, /refused the credentials/);
  assert.equal((await add({ name: 'local', kubeconfig: k.kubeconfig() })).status, 400);
  assert.equal((await add({ name: 'c1', kubeconfig: k.kubeconfig() })).status, 409);
});

test('users see the list, not one cluster, and cannot add one', async () => {
  const u = await srv.api('POST', '/api/v1/users', { token: T, body: { username: 'bob', password: 'bob-password-1', role: 'user' } });
  assert.equal(u.status, 201, u.text);
  const B = await srv.login('bob', 'bob-password-1');
  assert.equal((await srv.api('GET', '/api/v1/clusters', { token: B })).status, 200);
  assert.equal((await srv.api('GET', '/api/v1/clusters/c1', { token: B })).status, 403);
  assert.equal((await add({ name: 'x', kubeconfig: k.kubeconfig() }).then(() => srv.api('POST', '/api/v1/clusters', { token: B, body: { name: 'y', kubeconfig: k.kubeconfig() } }))).status, 403);
});

test('a node going NotReady shows not_ready; cordoned too; back ready after', async () => {
  k.control.setNodeReady('gpu-2', false);
  await waitUntil(srv, 'gpu-2 not_ready', async () => (await nodesOf('c1')).find((n) => n.id === 'c1:gpu-2')?.state === 'not_ready');
  k.control.setNodeReady('gpu-2', true);
  await waitUntil(srv, 'gpu-2 ready', async () => (await nodesOf('c1')).find((n) => n.id === 'c1:gpu-2')?.state === 'ready');
  k.control.setNodeSchedulable('gpu-2', false);
  await waitUntil(srv, 'gpu-2 cordoned', async () => (await nodesOf('c1')).find((n) => n.id === 'c1:gpu-2')?.state === 'not_ready');
  k.control.setNodeSchedulable('gpu-2', true);
  await waitUntil(srv, 'gpu-2 uncordoned', async () => (await nodesOf('c1')).find((n) => n.id === 'c1:gpu-2')?.state === 'ready');
});

test('GPUs held by other pods are recorded per node', async () => {
  const r = await fetch(`${k.url}/api/v1/namespaces/${NS}/pods`, {
    method: 'POST', headers: { authorization: `Bearer ${k.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'other' },
      spec: { nodeName: 'gpu-1', containers: [{ name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '2' } } }] } }),
    dispatcher: undefined,
  }).catch((e) => e);
  // Node's fetch does not take a CA: use the control path instead when TLS refuses
  if (r instanceof Error || !r.ok) {
    const https = await import('node:https');
    await new Promise((res, rej) => {
      const q = https.request(`${k.url}/api/v1/namespaces/${NS}/pods`, { method: 'POST', ca: k.ca, headers: { authorization: `Bearer ${k.token}`, 'content-type': 'application/json' } }, (rs) => { rs.resume(); rs.on('end', res); });
      q.on('error', rej);
      q.end(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'other' },
        spec: { nodeName: 'gpu-1', containers: [{ name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '2' } } }] } }));
    });
  }
  await waitUntil(srv, 'gpus_used_other 2', async () => (await nodesOf('c1')).find((n) => n.id === 'c1:gpu-1')?.gpus_used_other === 2);
  // the planner counts them as taken: two of gpu-1's four cards are left
  const dry = (gpus) => srv.api('POST', '/api/v1/deployments?dry_run=true',
    { token: T, body: { model: 'Qwen2.5-7B-Instruct', name: 'on-k8s', gpus } });
  const taken = await dry(['c1:gpu-1:0']);
  assert.equal(taken.status, 409, taken.text);
  assert.match(taken.json.error.message, /GPU 0 of c1:gpu-1 .* 0\.0 GiB free/);
  const ok = await dry(['c1:gpu-1:3']);
  assert.equal(ok.status, 200, ok.text);
});

test('in-cluster: the service account folder and KUBERNETES_SERVICE_HOST/PORT', async () => {
  const r = await add({ name: 'inside', in_cluster: true });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.in_cluster, true);
  assert.equal(r.json.namespace, NS);
  await waitUntil(srv, 'inside nodes', async () => (await nodesOf('inside')).length === 2);
  assert.equal((await srv.api('DELETE', '/api/v1/clusters/inside', { token: T })).status, 200);
});

test('a 410 on the watch is survived: a fresh list, changes still arrive', async () => {
  const before = k.control.requests.length;
  k.control.compact({ dropWatches: true });
  k.control.addNode({ name: 'gpu-3', gpus: 1, gpuProduct: 'NVIDIA-A10', gpuMemory: 23028 });
  await waitUntil(srv, 'gpu-3 joins after the 410', async () => (await nodesOf('c1')).some((n) => n.id === 'c1:gpu-3'));
  // the re-watch got the 410 and aimaas listed the nodes again
  assert.ok(k.control.requests.slice(before).some((q) => q.method === 'GET' && q.path.startsWith('/api/v1/nodes?limit=1')),
    JSON.stringify(k.control.requests.slice(before)));
  k.control.removeNode('gpu-3');
  await waitUntil(srv, 'gpu-3 gone', async () => (await nodesOf('c1')).find((n) => n.id === 'c1:gpu-3')?.state === 'gone');
  assert.equal((await srv.api('GET', '/api/v1/gpus?node=c1:gpu-3', { token: T })).json.items.length, 0);
});

test('the cluster key is 0600; credentials never appear in answers or in the log', async () => {
  assert.equal(statSync(join(dir, 'cluster.key')).mode & 0o777, 0o600);
  const answers = [];
  for (const p of ['/api/v1/clusters', '/api/v1/clusters/c1', '/api/v1/nodes', '/api/v1/gpus', '/api/v1/tasks?limit=100'])
    answers.push((await srv.api('GET', p, { token: T })).text);
  const secrets = [k.token, k.identities.admin.clientKeyData, k.identities.few.token, k.caData.slice(0, 40)];
  const db = readFileSync(join(dir, 'aimaas.db')).toString('latin1');
  for (const s of secrets) {
    for (const a of answers) assert.ok(!a.includes(s), 'a credential in an answer');
    assert.ok(!srv.log().includes(s), 'a credential in the log');
  }
  assert.ok(!db.includes(k.token), 'the token in the database in clear');
});

test('a cluster whose API server goes away is unreachable, its nodes unknown', async () => {
  const r = await add({ name: 'c3', kubeconfig: other.kubeconfig() });
  assert.equal(r.status, 201, r.text);
  await waitUntil(srv, 'c3:n ready', async () => (await nodesOf('c3')).find((n) => n.id === 'c3:n')?.state === 'ready');
  await other.stop();
  other = null;
  const c3 = await waitUntil(srv, 'c3 unreachable', async () => {
    const c = (await srv.api('GET', '/api/v1/clusters/c3', { token: T })).json;
    return c.state === 'unreachable' && c;
  });
  assert.ok(c3.last_error.length > 0);
  assert.equal((await nodesOf('c3'))[0].state, 'unknown');
  assert.equal((await srv.api('DELETE', '/api/v1/clusters/c3', { token: T })).status, 200);
});

test('after a restart the recorded clusters are watched again (credentials unsealed)', async () => {
  await srv.stop();
  const sa = k.serviceAccount('admin');
  srv = await startServer({ dataDir: dir, env: { AIMAAS_KUBE_SA_DIR: sa.dir, ...sa.env } });
  T = await srv.login();
  k.control.setNodeReady('gpu-2', false);
  await waitUntil(srv, 'gpu-2 not_ready after the restart',
    async () => (await nodesOf('c1')).find((n) => n.id === 'c1:gpu-2')?.state === 'not_ready');
  k.control.setNodeReady('gpu-2', true);
  await waitUntil(srv, 'gpu-2 ready', async () => (await nodesOf('c1')).find((n) => n.id === 'c1:gpu-2')?.state === 'ready');
  assert.equal((await srv.api('GET', '/api/v1/clusters/c1', { token: T })).json.state, 'reachable');
});

test('PATCH changes the namespace; DELETE removes the cluster, its nodes and GPUs', async () => {
  const p = await srv.api('PATCH', '/api/v1/clusters/c1', { token: T, body: { namespace: 'default' } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.namespace, 'default');
  const few = await srv.api('PATCH', '/api/v1/clusters/c1', { token: T, body: { kubeconfig: k.kubeconfig('few') } });
  assert.equal(few.status, 403, few.text);
  assert.match(few.json.error.message, /services/);
  const cert = await srv.api('PATCH', '/api/v1/clusters/c1', { token: T, body: { kubeconfig: k.kubeconfig('admin', { auth: 'cert' }) } });
  assert.equal(cert.status, 200, cert.text);
  await waitUntil(srv, 'c1 reachable again', async () => (await srv.api('GET', '/api/v1/clusters/c1', { token: T })).json.state === 'reachable');
  const d = await srv.api('DELETE', '/api/v1/clusters/c1', { token: T });
  assert.equal(d.status, 200, d.text);
  assert.equal((await nodesOf('c1')).length, 0);
  assert.equal((await srv.api('GET', '/api/v1/gpus', { token: T })).json.items.filter((g) => g.node.startsWith('c1:')).length, 0);
  assert.equal((await srv.api('GET', '/api/v1/clusters/c1', { token: T })).status, 404);
});
