// Who sees what (docs/api.md): two users, alice and bob, and an admin. Every
// route that takes an object's id is tried by the non-owner (404, as if the
// object did not exist), by the owner and by the admin (200). Datasets are
// private until shared; a shared one is seen and trained on by everyone,
// changed and deleted by its owner alone. Ownership is by user id: a new
// account with a deleted one's name owns nothing of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, startServer, tempDir, assertError } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const SHIMS = resolve(ROOT, 'tests/shims');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const PW = 'password-123';
let dir, srv, A, U; // admin token, user tokens by name
const QA = JSON.stringify(Array.from({ length: 32 }, (_, i) => ({ instruction: `Q ${i}?`, input: '', output: `A ${i}.` })));

async function mkUser(name) {
  const r = await srv.api('POST', '/api/v1/users', { token: A, body: { username: name, password: PW } });
  assert.equal(r.status, 201, r.text);
  return r.json.id;
}

const upload = (token, name) => srv.api('POST', `/api/v1/datasets?name=${name}&file_name=${name}.json`,
  { token, raw: QA, headers: { 'content-type': 'application/octet-stream' } });

async function waitFor(fn, what, ms = 20000) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    last = await fn();
    if (last.ok) return last.v;
    await sleep(50);
  }
  throw new Error(`${what} never happened: ${JSON.stringify(last)}\n${srv.log().slice(-2000)}`);
}

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  srv = await startServer({ dataDir: dir, args: ['--sim-gpus', '2x24GiB', '--stop-engines-on-exit'],
    env: { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'),
      AIMAAS_SIM_STEP_MS: '5' } });
  A = await srv.login();
  assert.equal((await srv.api('POST', '/api/v1/models', { token: A, body: { path: join(dir, 'models', 'Qwen2.5-7B-Instruct') } })).status, 201);
  U = {};
  for (const n of ['alice', 'bob']) {
    await mkUser(n);
    U[n] = await srv.login(n, PW);
  }
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test("datasets are private by default: another user gets 404 on every route, and cannot train on one", async () => {
  const up = await upload(U.alice, 'alice-qa');
  assert.equal(up.status, 201, up.text);
  assert.equal(up.json.visibility, 'private');
  const id = up.json.id;
  const routes = [['GET', `/api/v1/datasets/${id}`], ['GET', '/api/v1/datasets/alice-qa'],
    ['GET', `/api/v1/datasets/${id}/preview`], ['GET', `/api/v1/datasets/${id}/download`],
    ['PATCH', `/api/v1/datasets/${id}`, { visibility: 'shared' }], ['DELETE', `/api/v1/datasets/${id}`]];
  for (const [m, p, body] of routes)
    assertError(await srv.api(m, p, { token: U.bob, body }), 404, 'not_found');
  // the same answer as for a dataset that does not exist
  assertError(await srv.api('GET', '/api/v1/datasets/999999', { token: U.bob }), 404, 'not_found');
  for (const t of [U.alice, A]) {
    for (const [m, p] of routes.slice(0, 4)) assert.equal((await srv.api(m, p, { token: t })).status, 200, p);
  }
  const names = async (t) => (await srv.api('GET', '/api/v1/datasets', { token: t })).json.items.map((d) => d.name);
  assert.ok(!(await names(U.bob)).includes('alice-qa'));
  assert.ok((await names(U.alice)).includes('alice-qa'));
  assert.ok((await names(A)).includes('alice-qa'));
  // training on it: the answer for a dataset that does not exist, naming the entry
  const job = { base_model: 'Qwen2.5-7B-Instruct', datasets: ['alice-qa'], hyper: { max_steps: 2 } };
  assertError(await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: U.bob, body: job }), 400, 'invalid_field', 'datasets[0]');
  assertError(await srv.api('POST', '/api/v1/finetune/jobs', { token: U.bob, body: { ...job, datasets: [id] } }), 400, 'invalid_field', 'datasets[0]');
  assert.equal((await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: U.alice, body: job })).status, 200);
  assert.equal((await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: A, body: job })).status, 200);
});

test('a base model that runs its own code is an admin\'s to fine-tune', async () => {
  const glm = join(dir, 'models', 'glm-4-9b-chat');
  mkdirSync(glm);
  writeFileSync(join(glm, 'config.json'), JSON.stringify({ architectures: ['ChatGLMModel'], model_type: 'chatglm',
    auto_map: { AutoModelForCausalLM: 'modeling_chatglm.ChatGLMForConditionalGeneration' }, num_layers: 40, hidden_size: 4096,
    num_attention_heads: 32, multi_query_group_num: 2, seq_length: 131072, torch_dtype: 'bfloat16', padded_vocab_size: 151552 }));
  const reg = await srv.api('POST', '/api/v1/models', { token: A, body: { path: glm } });
  assert.equal(reg.status, 201, reg.text);
  const up = await upload(U.alice, 'alice-glm');
  assert.equal(up.status, 201, up.text);
  const job = { base_model: 'glm-4-9b-chat', datasets: ['alice-glm'], hyper: { max_steps: 2 } };
  const r = await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: U.alice, body: job });
  assertError(r, 403, 'forbidden', 'base_model');
  assert.match(r.json.error.message, /runs its own code/);
  // an admin gets past that (this weightless fixture then fails the model checks)
  const adm = await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: A, body: job });
  assertError(adm, 400, 'invalid_field', 'base_model');
  assert.doesNotMatch(adm.json.error.message, /runs its own code/);
});

test('a shared dataset: everyone sees and trains on it; only its owner or an admin changes or deletes it', async () => {
  const up = await upload(U.alice, 'alice-shared');
  const id = up.json.id;
  assertError(await srv.api('PATCH', `/api/v1/datasets/${id}`, { token: U.alice, body: { visibility: 'public' } }), 400, 'invalid_field', 'visibility');
  const sh = await srv.api('PATCH', `/api/v1/datasets/${id}`, { token: U.alice, body: { visibility: 'shared' } });
  assert.equal(sh.status, 200, sh.text);
  assert.equal(sh.json.visibility, 'shared');
  for (const p of [`/api/v1/datasets/${id}`, `/api/v1/datasets/${id}/preview`, `/api/v1/datasets/${id}/download`])
    assert.equal((await srv.api('GET', p, { token: U.bob })).status, 200, p);
  assert.ok((await srv.api('GET', '/api/v1/datasets', { token: U.bob })).json.items.some((d) => d.id === id));
  const job = { base_model: 'Qwen2.5-7B-Instruct', datasets: [id], hyper: { max_steps: 2 } };
  assert.equal((await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: U.bob, body: job })).status, 200);
  // seen, so refusing says why
  assertError(await srv.api('DELETE', `/api/v1/datasets/${id}`, { token: U.bob }), 403, 'forbidden');
  assertError(await srv.api('PATCH', `/api/v1/datasets/${id}`, { token: U.bob, body: { visibility: 'private' } }), 403, 'forbidden');
  // an admin may take it back; then it is gone for bob again
  assert.equal((await srv.api('PATCH', `/api/v1/datasets/${id}`, { token: A, body: { visibility: 'private' } })).status, 200);
  assertError(await srv.api('GET', `/api/v1/datasets/${id}`, { token: U.bob }), 404, 'not_found');
  assert.equal((await srv.api('DELETE', `/api/v1/datasets/${id}`, { token: U.alice })).status, 200);
});

test("a job on someone's shared dataset: its owner learns nothing of the job, and it cannot resume once unshared", async () => {
  const up = await upload(U.alice, 'alice-lent');
  const ds = up.json.id;
  assert.equal((await srv.api('PATCH', `/api/v1/datasets/${ds}`, { token: U.alice, body: { visibility: 'shared' } })).status, 200);
  const c = await srv.api('POST', '/api/v1/finetune/jobs', { token: U.bob,
    body: { name: 'bob-borrow', base_model: 'Qwen2.5-7B-Instruct', datasets: [ds], hyper: { max_steps: 5000, save_steps: 5 } } });
  assert.equal(c.status, 201, c.text);
  const del = await srv.api('DELETE', `/api/v1/datasets/${ds}`, { token: U.alice });
  assertError(del, 409, 'conflict');
  assert.doesNotMatch(del.json.error.message, new RegExp(`job ${c.json.id}\\b`));
  assert.equal((await srv.api('POST', `/api/v1/finetune/jobs/${c.json.id}/stop`, { token: U.bob, body: {} })).status, 200);
  await waitFor(async () => {
    const r = await srv.api('GET', `/api/v1/finetune/jobs/${c.json.id}`, { token: U.bob });
    return { ok: ['stopped', 'failed', 'succeeded'].includes(r.json.state), v: r.json.state };
  }, 'the job stopping');
  assert.equal((await srv.api('PATCH', `/api/v1/datasets/${ds}`, { token: U.alice, body: { visibility: 'private' } })).status, 200);
  assertError(await srv.api('POST', `/api/v1/finetune/jobs/${c.json.id}/resume`, { token: U.bob, body: {} }), 409, 'conflict', 'datasets');
  assert.equal((await srv.api('DELETE', `/api/v1/finetune/jobs/${c.json.id}`, { token: U.bob })).status, 200);
  assert.equal((await srv.api('DELETE', `/api/v1/datasets/${ds}`, { token: U.alice })).status, 200);
});

test("fine-tuning jobs, their metrics, logs and outputs are their owner's: 404 to anyone else", async () => {
  await upload(U.alice, 'alice-train');
  const c = await srv.api('POST', '/api/v1/finetune/jobs', { token: U.alice,
    body: { name: 'alice-job', base_model: 'Qwen2.5-7B-Instruct', datasets: ['alice-train'], hyper: { max_steps: 4, save_steps: 2 } } });
  assert.equal(c.status, 201, c.text);
  const id = c.json.id;
  const j = await waitFor(async () => {
    const r = await srv.api('GET', `/api/v1/finetune/jobs/${id}`, { token: U.alice });
    return { ok: r.json && ['succeeded', 'failed'].includes(r.json.state), v: r.json };
  }, 'the job finishing');
  assert.equal(j.state, 'succeeded', JSON.stringify(j));
  const reads = [`/api/v1/finetune/jobs/${id}`, '/api/v1/finetune/jobs/alice-job', `/api/v1/finetune/jobs/${id}/metrics`,
    `/api/v1/finetune/jobs/${id}/logs`, `/api/v1/finetune/jobs/${id}/logs?download=true`];
  for (const p of reads) {
    assertError(await srv.api('GET', p, { token: U.bob }), 404, 'not_found');
    assert.equal((await srv.api('GET', p, { token: U.alice })).status, 200, p);
    assert.equal((await srv.api('GET', p, { token: A })).status, 200, p);
  }
  // following the log is refused before any stream starts
  assertError(await srv.api('GET', `/api/v1/finetune/jobs/${id}/logs?follow=true`, { token: U.bob }), 404, 'not_found');
  for (const [m, p] of [['POST', 'stop'], ['POST', 'resume'], ['POST', 'export'], ['DELETE', '']])
    assertError(await srv.api(m, `/api/v1/finetune/jobs/${id}${p ? '/' + p : ''}`, { token: U.bob, body: m === 'POST' ? {} : undefined }),
      404, 'not_found');
  assert.ok(!(await srv.api('GET', '/api/v1/finetune/jobs', { token: U.bob })).json.items.some((x) => x.id === id));
  // the adapter it trained is alice's too: not listed, not seen, not deployable by bob
  const mid = j.result_model_id;
  assert.ok(mid, JSON.stringify(j));
  assertError(await srv.api('GET', `/api/v1/models/${mid}`, { token: U.bob }), 404, 'not_found');
  assert.equal((await srv.api('GET', `/api/v1/models/${mid}`, { token: U.alice })).json.visibility, 'private');
  assert.equal((await srv.api('GET', `/api/v1/models/${mid}`, { token: A })).status, 200);
  assert.ok(!(await srv.api('GET', '/api/v1/models', { token: U.bob })).json.items.some((m) => m.id === mid));
  assert.ok((await srv.api('GET', '/api/v1/models', { token: U.alice })).json.items.some((m) => m.id === mid));
  const dep = (t, name) => srv.api('POST', '/api/v1/deployments?dry_run=true', { token: t, body: { name, model: 'Qwen2.5-7B-Instruct',
    engine: 'vllm', lora_modules: [{ name: `${name}-lora`, model: j.output_name }] } });
  assertError(await dep(U.bob, 'bob-dep'), 400, 'invalid_field', 'lora_modules');
  const ad = await dep(U.alice, 'alice-dep');
  assert.equal(ad.status, 200, ad.text);
  // an admin may share it with everyone
  assert.equal((await srv.api('PATCH', `/api/v1/models/${mid}`, { token: A, body: { visibility: 'shared' } })).status, 200);
  assert.equal((await srv.api('GET', `/api/v1/models/${mid}`, { token: U.bob })).status, 200);
  assert.equal((await dep(U.bob, 'bob-dep')).status, 200);
});

test("deployments and tasks: another user's are 404 on every route", async () => {
  const c = await srv.api('POST', '/api/v1/deployments', { token: U.alice,
    body: { name: 'alice-serve', model: 'Qwen2.5-7B-Instruct', engine: 'vllm', start: false } });
  assert.equal(c.status, 201, c.text);
  const id = c.json.id;
  const task = Number(c.headers.get('x-task-id'));
  assert.ok(task > 0);
  for (const p of [`/api/v1/deployments/${id}`, '/api/v1/deployments/alice-serve', `/api/v1/deployments/${id}/command`,
    `/api/v1/deployments/${id}/metrics`, `/api/v1/deployments/${id}/logs`, `/api/v1/tasks/${task}`]) {
    assertError(await srv.api('GET', p, { token: U.bob }), 404, 'not_found');
    assert.equal((await srv.api('GET', p, { token: U.alice })).status, 200, p);
    assert.equal((await srv.api('GET', p, { token: A })).status, 200, p);
  }
  for (const [m, p, body] of [['PATCH', '', { replicas: 2 }], ['POST', '/start', {}], ['POST', '/stop', {}],
    ['POST', '/restart', {}], ['DELETE', '']])
    assertError(await srv.api(m, `/api/v1/deployments/${id}${p}`, { token: U.bob, body }), 404, 'not_found');
  assert.ok(!(await srv.api('GET', '/api/v1/deployments', { token: U.bob })).json.items.some((d) => d.id === id));
  assert.ok(!(await srv.api('GET', '/api/v1/tasks?limit=500', { token: U.bob })).json.items.some((t) => t.id === task));
});

test('ownership is by user id: a new account named like a deleted one owns nothing of it', async () => {
  const old = await mkUser('dave');
  const D = await srv.login('dave', PW);
  const ds = await upload(D, 'dave-data');
  assert.equal(ds.status, 201);
  const dep = await srv.api('POST', '/api/v1/deployments', { token: D,
    body: { name: 'dave-serve', model: 'Qwen2.5-7B-Instruct', engine: 'vllm', start: false } });
  assert.equal(dep.status, 201, dep.text);
  const task = Number(dep.headers.get('x-task-id'));
  assert.equal((await srv.api('DELETE', `/api/v1/users/${old}`, { token: A })).status, 200);
  assertError(await srv.api('GET', '/api/v1/auth/me', { token: D }), 401);

  await mkUser('dave');
  const D2 = await srv.login('dave', PW);
  for (const p of [`/api/v1/datasets/${ds.json.id}`, `/api/v1/deployments/${dep.json.id}`, '/api/v1/deployments/dave-serve',
    `/api/v1/tasks/${task}`])
    assertError(await srv.api('GET', p, { token: D2 }), 404, 'not_found');
  assertError(await srv.api('DELETE', `/api/v1/deployments/${dep.json.id}`, { token: D2 }), 404, 'not_found');
  assertError(await srv.api('DELETE', `/api/v1/datasets/${ds.json.id}`, { token: D2 }), 404, 'not_found');
  assert.equal((await srv.api('GET', '/api/v1/deployments', { token: D2 })).json.total, 0);
  assert.equal((await srv.api('GET', '/api/v1/datasets', { token: D2 })).json.items.length, 0);
  const tasks = (await srv.api('GET', '/api/v1/tasks?limit=500', { token: D2 })).json.items;
  assert.ok(!tasks.some((t) => t.id === task), JSON.stringify(tasks));
  // what the old dave left is the admins' to see and clean up
  assert.equal((await srv.api('GET', `/api/v1/deployments/${dep.json.id}`, { token: A })).status, 200);
  assert.equal((await srv.api('DELETE', `/api/v1/deployments/${dep.json.id}`, { token: A })).status, 202);
  assert.equal((await srv.api('DELETE', `/api/v1/datasets/${ds.json.id}`, { token: A })).status, 200);
});

test('a user whose engines still run cannot be deleted: 409 naming them, until they are stopped', async () => {
  const id = await mkUser('frank');
  const F = await srv.login('frank', PW);
  const idle = await srv.api('POST', '/api/v1/deployments', { token: F,
    body: { name: 'frank-idle', model: 'Qwen2.5-7B-Instruct', engine: 'vllm', start: false } });
  assert.equal(idle.status, 201, idle.text);
  const run = await srv.api('POST', '/api/v1/deployments', { token: F,
    body: { name: 'frank-live', model: 'Qwen2.5-7B-Instruct', engine: 'vllm' } });
  assert.equal(run.status, 201, run.text);
  const refused = await srv.api('DELETE', `/api/v1/users/${id}`, { token: A });
  assertError(refused, 409, 'conflict');
  assert.match(refused.json.error.message, /frank-live/);
  assert.doesNotMatch(refused.json.error.message, /frank-idle/);
  assert.equal((await srv.api('GET', '/api/v1/auth/me', { token: F })).status, 200, 'nothing was deleted');
  assert.equal((await srv.api('POST', '/api/v1/deployments/frank-live/stop', { token: F })).status, 202);
  await waitFor(async () => {
    const r = await srv.api('DELETE', `/api/v1/users/${id}`, { token: A });
    return { ok: r.status === 200, status: r.status, text: r.text };
  }, 'deleting frank once his engine stopped');
  for (const n of ['frank-idle', 'frank-live'])
    assert.equal((await srv.api('DELETE', `/api/v1/deployments/${n}`, { token: A })).status, 202);
});

test('a disabled user\'s key stops working on /v1 at once, even when another user is enabled meanwhile', async () => {
  const carol = await mkUser('carol');
  const erin = await mkUser('erin');
  const C = await srv.login('carol', PW);
  const k = await srv.api('POST', '/api/v1/keys', { token: C, body: { name: 'k' } });
  assert.equal(k.status, 201, k.text);
  const v1 = () => fetch(`${srv.url}/v1/models`, { headers: { authorization: `Bearer ${k.json.key}` } }).then((r) => r.status);
  assert.equal(await v1(), 200);
  assert.equal((await srv.api('PATCH', `/api/v1/users/${erin}`, { token: A, body: { disabled: true } })).status, 200);
  await sleep(1200); // the gateway's view has caught up with erin's lock-out
  // one user off, another on: as many disabled users as before
  assert.equal((await srv.api('PATCH', `/api/v1/users/${carol}`, { token: A, body: { disabled: true } })).status, 200);
  assert.equal((await srv.api('PATCH', `/api/v1/users/${erin}`, { token: A, body: { disabled: false } })).status, 200);
  assert.equal(await v1(), 401);
  await sleep(1200);
  assert.equal(await v1(), 401);
  assert.equal((await srv.api('PATCH', `/api/v1/users/${carol}`, { token: A, body: { disabled: false } })).status, 200);
  assert.equal(await v1(), 200);
});

test("a password change or reset ends the user's other console sessions on /v1 too, at once", async () => {
  await mkUser('gina');
  const s1 = await srv.login('gina', PW);
  const s2 = await srv.login('gina', PW);
  const s3 = await srv.login('gina', PW);
  const v1 = (t) => fetch(`${srv.url}/v1/models`, { headers: { cookie: `aimaas_session=${t}` } }).then((r) => r.status);
  assert.equal(await v1(s2), 200);
  await sleep(600); // the gateway's view holds every session
  const ch = await srv.api('PUT', '/api/v1/auth/password', { token: s1, body: { current_password: PW, new_password: 'password-456' } });
  assert.equal(ch.status, 200, ch.text);
  assert.equal(await v1(s2), 401);
  assert.equal(await v1(s1), 200, 'the session that changed it goes on');
  const id = (await srv.api('GET', '/api/v1/auth/me', { token: s1 })).json.id;
  const s4 = await srv.login('gina', 'password-456');
  assert.equal(await v1(s4), 200);
  await sleep(600);
  assert.equal((await srv.api('PATCH', `/api/v1/users/${id}`, { token: A, body: { password: 'password-789' } })).status, 200);
  assert.equal(await v1(s4), 401);
  assert.equal(await v1(s3), 401);
});

test('a failed anonymous call is nobody\'s task, even with a user named "anonymous"', async () => {
  await mkUser('anonymous');
  const N = await srv.login('anonymous', PW);
  const r = await srv.api('POST', '/api/v1/auth/login', { body: {} });
  assertError(r, 400, 'invalid_field', 'username');
  const task = Number(r.headers.get('x-task-id'));
  assert.ok(task > 0);
  assertError(await srv.api('GET', `/api/v1/tasks/${task}`, { token: N }), 404, 'not_found');
  assert.equal((await srv.api('GET', `/api/v1/tasks/${task}`, { token: A })).json.actor, 'anonymous');
});
