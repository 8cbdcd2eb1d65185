// The processes aimaas starts: they inherit no descriptor of aimaas (a
// client's connection above all), a kill of aimaas right after a spawn
// leaves neither an orphan nor a duplicate (the start is recorded first and
// adopted by its AIMAAS_OWNER marker), fine-tuning tasks follow their jobs
// across restarts, --stop-engines-on-exit stops trainers too, and a restart
// right after a kill -9 is not refused while the old process is torn down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import net from 'node:net';
import { ROOT, startServer, tempDir, assertError, waitUntil } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';
import { engines, trainers, socketsOf, inheritable, sql, alive, procsUnder } from './procs.mjs';

const SHIMS = resolve(ROOT, 'tests/shims');
const SIM = resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let dir, srv, T;

function start(env = {}, args = []) {
  return startServer({ dataDir: dir, args: ['--sim-gpus', '4x24GiB', '--stop-engines-on-exit', ...args],
    env: { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: SIM, AIMAAS_SIM_STEP_MS: '40', ...env } });
}

const until = (what, fn, ms) => waitUntil(srv, what, fn, ms);

const dep = (name) => srv.api('GET', `/api/v1/deployments/${name}`, { token: T }).then((r) => r.json);
const job = (id) => srv.api('GET', `/api/v1/finetune/jobs/${id}`, { token: T }).then((r) => r.json);
const running = (name) => until(`${name} ran`, async () => { const d = await dep(name); return d.state === 'running' && d.instances.every((i) => i.state === 'running') && d; });
const QA = JSON.stringify(Array.from({ length: 64 }, (_, i) => ({ instruction: `Q${i}?`, input: '', output: `A${i}.` })));
const HYPER = { num_train_epochs: 20, per_device_train_batch_size: 4, gradient_accumulation_steps: 1, logging_steps: 1, save_steps: 5 };

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'models'));
  for (const m of ['Qwen2.5-7B-Instruct', 'bge-large-zh-v1.5']) makeModel(m, join(dir, 'models'));
  srv = await start();
  T = await srv.login();
  for (const m of ['Qwen2.5-7B-Instruct', 'bge-large-zh-v1.5'])
    assert.equal((await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(dir, 'models', m) } })).status, 201);
  const up = await srv.api('POST', '/api/v1/datasets?name=qa&file_name=qa.json',
    { token: T, raw: QA, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(up.status, 201, up.text);
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('engines and trainers started while /v1 connections are open inherit none of them', async () => {
  const d = await srv.api('POST', '/api/v1/deployments', { token: T,
    body: { name: 'chat', model: 'Qwen2.5-7B-Instruct', engine: 'aimaas-sim', engine_args: ['--sim-itl-ms', '1'] } });
  assert.equal(d.status, 201, d.text);
  await running('chat');
  const k = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'fd' } });
  // kept-alive client connections, each handed to the gateway and answered
  const conns = [];
  for (let i = 0; i < 6; i++) {
    const s = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => s.on('connect', r));
    let got = '';
    s.on('data', (b) => { got += b; });
    s.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k.json.key}\r\n\r\n`);
    await until('answered', () => got.includes('\r\n\r\n'));
    conns.push(s);
  }
  // aimaas itself: every descriptor it holds is close-on-exec
  assert.deepEqual(inheritable(srv.proc.pid), [], 'descriptors of aimaas without close-on-exec');
  // an engine and a trainer started now
  assert.equal((await srv.api('POST', '/api/v1/deployments', { token: T,
    body: { name: 'emb', model: 'bge-large-zh-v1.5', engine: 'vllm' } })).status, 201);
  const j = await srv.api('POST', '/api/v1/finetune/jobs', { token: T,
    body: { name: 'fdjob', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'], hyper: HYPER } });
  assert.equal(j.status, 201, j.text);
  const e = (await running('emb')).instances[0].pid;
  const t = (await until('trained', async () => { const x = await job(j.json.id); return x.state === 'running' && x; })).pid;
  const mine = socketsOf(srv.proc.pid);
  for (const pid of [e, t]) {
    const shared = [...socketsOf(pid)].filter((s) => mine.has(s));
    assert.deepEqual(shared, [], `process ${pid} holds sockets of aimaas (its clients' connections)`);
  }
  // the trainer opens no socket: it has exactly what it was given
  assert.deepEqual([...socketsOf(t)], []);
  for (const s of conns) s.destroy();
  assert.equal((await srv.api('POST', `/api/v1/finetune/jobs/${j.json.id}/stop`, { token: T, body: {} })).status < 300, true);
  await until('stopped', async () => (await job(j.json.id)).state === 'stopped');
  for (const n of ['emb', 'chat']) await srv.api('DELETE', `/api/v1/deployments/${n}`, { token: T });
  await until('deleted', async () => (await srv.api('GET', '/api/v1/deployments', { token: T })).json.total === 0);
  await until('engines gone', () => engines(dir).length === 0);
});

test('aimaas killed right after spawning an engine: the restart adopts it, no orphan, no second engine', async () => {
  await srv.stop();
  srv = await start({ AIMAAS_TEST_CRASH_AFTER_SPAWN: 'instance' });
  T = await srv.login();
  await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'crash', model: 'bge-large-zh-v1.5', engine: 'vllm' } });
  const r = await srv.exited;
  assert.equal(r.signal, 'SIGKILL', 'the hook killed aimaas');
  // (read a few times: on a loaded machine the shim may be between its fork and its exec, when
  // /proc shows neither its final argv nor its environment yet)
  let orphan = [];
  for (let i = 0; i < 50 && (orphan.length !== 1 || !orphan[0].marker); i++) {
    orphan = engines(dir).filter((p) => p.argv.some((a) => a.includes('bge-large')));
    if (orphan.length !== 1 || !orphan[0].marker) await sleep(100);
  }
  assert.equal(orphan.length, 1, `the engine outlived aimaas: ${JSON.stringify(procsUnder(dir).map((p) => p.argv.slice(0, 3)))}`);
  assert.match(orphan[0].marker, /:instance:\d+:/, 'marked with its owner');
  srv = await start();
  T = await srv.login();
  const d = await running('crash');
  await sleep(600);
  const now = engines(dir).filter((p) => p.argv.some((a) => a.includes('bge-large')));
  assert.deepEqual(now.map((p) => p.pid), [orphan[0].pid], 'one engine: the one started before the kill, adopted');
  assert.equal(d.instances[0].pid, orphan[0].pid);
  assert.match(srv.log(), /adopted engine \d+:\d+:\/\S+replica-0.log of instance/); // the local runtime's reference, its log found
  await srv.api('DELETE', '/api/v1/deployments/crash', { token: T });
  await until('gone', () => !alive(orphan[0].pid));
});

test('a job may list a GPU once (one reservation per GPU and owner)', async () => {
  const g = (await srv.api('GET', '/api/v1/gpus', { token: T })).json;
  const id = (g.items ?? g)[0].id;
  const r = await srv.api('POST', '/api/v1/finetune/jobs', { token: T,
    body: { name: 'twice', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'], gpus: [id, id] } });
  assertError(r, 400, 'invalid_field', 'gpus');
  assert.match(r.json.error.message, /twice/);
});

test('aimaas killed right after spawning a trainer: one trainer, one reservation per GPU', async () => {
  await srv.stop();
  srv = await start({ AIMAAS_TEST_CRASH_AFTER_SPAWN: 'job' });
  T = await srv.login();
  const j = await srv.api('POST', '/api/v1/finetune/jobs', { token: T,
    body: { name: 'crashjob', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'], hyper: HYPER } });
  const r = await srv.exited;
  assert.equal(r.signal, 'SIGKILL', `the hook killed aimaas: ${j.text}`);
  const mine = () => trainers(dir).filter((p) => p.argv.some((a) => a.includes(`/finetune/${j.json.id}/`)));
  // read once: a trainer shim exec-ing the trainer shows an empty command line for an instant
  let alive1 = mine();
  for (let i = 0; i < 20 && alive1.length !== 1; i++) { await sleep(50); alive1 = mine(); }
  assert.equal(alive1.length, 1, 'the trainer outlived aimaas');
  const first = alive1[0].pid;
  srv = await start();
  T = await srv.login();
  const x = await until('running', async () => { const v = await job(j.json.id); return v.state === 'running' && v.progress?.step >= 2 && v; });
  assert.equal(x.pid, first, 'the trainer started before the kill, adopted');
  assert.deepEqual(mine().map((p) => p.pid), [first], 'no second trainer on the job folder');
  const dup = sql(dir, "SELECT gpu_id, COUNT(*) AS n FROM gpu_reservations WHERE owner_kind = 'job' GROUP BY owner_id, gpu_id HAVING n > 1");
  assert.deepEqual(dup, []);
  // the task follows its job across a kill -9 (not "interrupted")
  await srv.kill9();
  srv = await start();
  T = await srv.login();
  const task = (await srv.api('GET', `/api/v1/tasks/${x.task_id}`, { token: T })).json;
  assert.equal(task.state, 'running', JSON.stringify(task));
  assert.equal((await job(j.json.id)).pid, first);
});

test('--stop-engines-on-exit stops trainers too: saved, stopped, resumable', async () => {
  const id = (await srv.api('GET', '/api/v1/finetune/jobs', { token: T })).json.items.find((v) => v.name === 'crashjob').id;
  const pid = (await job(id)).pid;
  assert.ok(alive(pid));
  await srv.stop();
  assert.ok(!alive(pid), 'the trainer stopped with aimaas');
  assert.deepEqual(trainers(dir), []);
  srv = await start();
  T = await srv.login();
  const j = await job(id);
  assert.equal(j.state, 'stopped', JSON.stringify(j));
  assert.match(j.reason, /stopped at step \d+/);
  const task = (await srv.api('GET', `/api/v1/tasks/${j.task_id}`, { token: T })).json;
  assert.equal(task.state, 'cancelled', JSON.stringify(task));
  const res = await srv.api('POST', `/api/v1/finetune/jobs/${id}/resume`, { token: T, body: {} });
  assert.ok(res.status < 300, res.text);
  await until('resumed', async () => (await job(id)).state === 'running');
  await srv.api('POST', `/api/v1/finetune/jobs/${id}/stop`, { token: T, body: {} });
  await until('stopped', async () => (await job(id)).state === 'stopped');
});

test('a restart while the killed aimaas still holds its lock waits for it instead of refusing', async () => {
  await srv.stop();
  // what a dying process looks like from outside: the lock still held, the pid in it gone
  writeFileSync(join(dir, 'aimaas.lock'), '999999999\n');
  const holder = spawn('flock', ['-n', join(dir, 'aimaas.lock'), 'sleep', '0.6'], { stdio: 'ignore' });
  await sleep(100);
  srv = await start();
  T = await srv.login();
  assert.doesNotMatch(srv.log(), /already running/);
  await new Promise((r) => (holder.exitCode !== null ? r() : holder.on('exit', r)));
});

test('a marked process that nothing owns is ended at start, its whole group with it', async () => {
  const [{ value: owner }] = sql(dir, "SELECT value FROM settings WHERE key = 'owner_id'");
  // a group as an engine would leave it: a leader and a child, marked for an instance that does not exist
  const stray = spawn('sh', ['-c', 'sleep 60 & exec sleep 61'], { detached: true, stdio: 'ignore',
    env: { ...process.env, AIMAAS_OWNER: `${owner}:instance:9999:stray` } });
  // and one of another data dir, which is not ours to end
  const other = spawn('sleep', ['62'], { detached: true, stdio: 'ignore', env: { ...process.env, AIMAAS_OWNER: 'someoneelse:instance:1:x' } });
  await sleep(100);
  await srv.kill9();
  srv = await start();
  T = await srv.login();
  assert.ok(!alive(stray.pid), 'the stray leader is gone');
  assert.match(srv.log(), /no deployment or job owns it/);
  const child = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).find((n) => {
    try { return readFileSync(`/proc/${n}/stat`, 'utf8').includes(` ${stray.pid} `) && alive(Number(n)); } catch { return false; }
  });
  assert.equal(child, undefined, 'the stray group is gone');
  assert.ok(alive(other.pid), "another data dir's process is left alone");
  other.kill('SIGKILL');
});
