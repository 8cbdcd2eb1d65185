// What a plain user can hand an engine, and what aimaas shows of it
// (issue 11, items 2, 8 and 9): env and engine_args are checked against the
// rules in docs/api.md (an admin widens them per engine), each variable
// reaches the engine once with aimaas's own value, secrets are masked in
// every answer, SGLang's key never sits in argv, the files aimaas writes are
// its own, and refused writes do not grow the audit trail row by row.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { ROOT, startServer, tempDir, assertError } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const SHIMS = resolve(ROOT, 'tests/shims');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ENV = { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim') };
let dir, srv, admin, alice;

function start() {
  return startServer({ dataDir: dir, args: ['--sim-gpus', '4x24GiB', '--stop-engines-on-exit'], env: ENV });
}

async function waitFor(name, pred, what, token = alice, ms = 15000) {
  const t0 = Date.now();
  let d;
  while (Date.now() - t0 < ms) {
    d = (await srv.api('GET', `/api/v1/deployments/${name}`, { token })).json;
    if (pred(d)) return d;
    await sleep(50);
  }
  throw new Error(`${name} never ${what}: ${JSON.stringify(d)}\n${srv.log().slice(-3000)}`);
}
const environ = (pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
const mode = (p) => statSync(p).mode & 0o777;

before(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  // a model that runs its own code (auto_map), as some GLM and InternVL models do
  const glm = join(dir, 'models', 'glm-4-9b-chat');
  mkdirSync(glm);
  writeFileSync(join(glm, 'config.json'), JSON.stringify({ architectures: ['ChatGLMForConditionalGeneration'], model_type: 'chatglm',
    auto_map: { AutoModelForCausalLM: 'modeling_chatglm.ChatGLMForConditionalGeneration' }, num_layers: 40, hidden_size: 4096,
    num_attention_heads: 32, multi_query_group_num: 2, seq_length: 131072, torch_dtype: 'bfloat16', padded_vocab_size: 151552 }));
  srv = await start();
  admin = await srv.login();
  assert.equal((await srv.api('POST', '/api/v1/models', { token: admin, body: { path: join(dir, 'models', 'Qwen2.5-7B-Instruct') } })).status, 201);
  assert.equal((await srv.api('POST', '/api/v1/models', { token: admin, body: { path: glm } })).status, 201);
  assert.equal((await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'alice', password: 'alice-password' } })).status, 201);
  alice = await srv.login('alice', 'alice-password');
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

const dep = (body, token = alice, q = '') => srv.api('POST', `/api/v1/deployments${q}`, { token,
  body: { name: 'q', model: 'Qwen2.5-7B-Instruct', engine: 'vllm', ...body } });

test('a user may not set the loader\'s, interpreters\', shells\' or CUDA\'s variables, nor one aimaas sets', async () => {
  // a shared object uploaded as a "dataset" and preloaded ran as aimaas
  for (const k of ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'PATH', 'PYTHONPATH', 'BASH_ENV', 'ASAN_OPTIONS', 'CUDA_LAUNCH_BLOCKING',
    'HOME', 'VLLM_LOGGING_CONFIG_PATH', 'NCCL_NET_PLUGIN'])
    assertError(await dep({ env: { [k]: `${dir}/datasets/1/evil.so` } }), 400, 'invalid_field', `env.${k}`);
  // aimaas's own: the user's key became the engine's (it came first in envp)
  for (const k of ['VLLM_API_KEY', 'CUDA_VISIBLE_DEVICES', 'AIMAAS_SIM'])
    assertError(await dep({ env: { [k]: 'mine' } }), 400, 'invalid_field', `env.${k}`);
  assertError(await dep({ env: { VLLM_API_KEY: 'mine' } }, admin), 400, 'invalid_field', 'env.VLLM_API_KEY');
  // argv the same way: code loaded, files opened, flags aimaas sets (argparse folds '_' and takes prefixes)
  for (const args of [['--worker-extension-cls', 'evil.Ext'], ['--worker_extension_cls=evil.Ext'], ['--logits-processor-pattern', '.*'],
    ['--chat-template', '/etc/shadow'], ['--api_key', 'x'], ['--config', 'c.yaml'], ['--tool-parser-plugin', 'p.py'], ['--served-model'],
    [`${dir}/datasets/1/x`]])
    assertError(await dep({ engine_args: args }), 400, 'invalid_field', 'engine_args[0]');
  assertError(await dep({ engine_args: ['--seed', '1', '--download-dir=/tmp'] }), 400, 'invalid_field', 'engine_args[2]');
  // a model's own code runs as aimaas only when an admin says so: deploying it, and training it
  assertError(await dep({ model: 'glm-4-9b-chat', trust_remote_code: true }), 403, 'forbidden', 'trust_remote_code');
  assertError(await srv.api('POST', '/api/v1/finetune/jobs', { token: alice, body: { base_model: 'glm-4-9b-chat', datasets: ['none'] } }),
    403, 'forbidden', 'base_model');
  // only an admin widens the rules, per engine
  assertError(await srv.api('PATCH', '/api/v1/engines/vllm', { token: alice, body: { env_allow: ['LD_PRELOAD'] } }), 403);
  assertError(await srv.api('PATCH', '/api/v1/engines/vllm', { token: admin, body: { env_allow: ['ld preload'] } }), 400, 'invalid_field', 'env_allow');
  const w = await srv.api('PATCH', '/api/v1/engines/vllm', { token: admin, body: { env_allow: ['CUDA_LAUNCH_BLOCKING'] } });
  assert.equal(w.status, 200, w.text);
  assert.deepEqual(w.json.items.find((e) => e.name === 'vllm').env_allow, ['CUDA_LAUNCH_BLOCKING']);
  // what an admin allowed works; application variables always did; each name reaches the engine once
  const r = await dep({ env: { CUDA_LAUNCH_BLOCKING: '1', MY_SECRET: 'my-secret-value-1', DB_PASSWORD: 'db-password-2', VLLM_LOGGING_LEVEL: 'DEBUG' } });
  assert.equal(r.status, 201, r.text);
  const d = await waitFor('q', (x) => x.state === 'running' && x.instances[0]?.state === 'running', 'ran');
  const env = environ(d.instances[0].pid);
  const names = env.map((e) => e.slice(0, e.indexOf('=')));
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'no name twice');
  assert.ok(env.includes('CUDA_LAUNCH_BLOCKING=1') && env.includes('MY_SECRET=my-secret-value-1') && env.includes('VLLM_LOGGING_LEVEL=DEBUG'));
  assert.equal(names.filter((n) => n === 'VLLM_API_KEY').length, 1);
  // a change is checked the same way
  assertError(await srv.api('PATCH', '/api/v1/deployments/q', { token: alice, body: { env: { LD_PRELOAD: '/x.so' } } }), 400, 'invalid_field', 'env.LD_PRELOAD');
  assertError(await srv.api('PATCH', '/api/v1/deployments/q', { token: alice, body: { engine_args: ['--worker-cls', 'x.Y'] } }), 400, 'invalid_field', 'engine_args[0]');
  // an admin's narrowing applies to what is stored too: the next start refuses, with the field's name
  assert.equal((await srv.api('PATCH', '/api/v1/engines/vllm', { token: admin, body: { env_allow: [] } })).status, 200);
  assert.equal((await srv.api('POST', '/api/v1/deployments/q/restart', { token: alice })).status, 202);
  const refused = await waitFor('q', (x) => ['backoff', 'failed'].includes(x.instances[0]?.state), 'refused to start');
  assert.match(refused.instances[0].reason, /env may not set CUDA_LAUNCH_BLOCKING/);
  assert.equal((await srv.api('PATCH', '/api/v1/engines/vllm', { token: admin, body: { env_allow: ['CUDA_LAUNCH_BLOCKING'] } })).status, 200);
  assert.equal((await srv.api('POST', '/api/v1/deployments/q/start', { token: alice })).status, 202);
  await waitFor('q', (x) => x.instances[0]?.state === 'running', 'ran again');
});

test('engine_args may not undo the plan: each engine refuses the flags it is given, in its parser\'s spellings', async () => {
  // appended after aimaas's flags these won in argparse: a card's whole memory, a length the plan did not size
  let r = await dep({ engine_args: ['--gpu-memory-utilization', '0.99', '--max-model-len', '131072'] });
  assertError(r, 400, 'invalid_field', 'engine_args[0]');
  assert.match(r.json.error.message, /gpu_memory_utilization is a deployment field/);
  r = await dep({ engine_args: ['--enable-prefix-caching', '--max_model_len=131072'] }, alice, '?dry_run=true');
  assertError(r, 400, 'invalid_field', 'engine_args[1]');
  assert.match(r.json.error.message, /--max_model_len.*vllm's --max-model-len.*max_model_len is a deployment field/);
  // underscores (vLLM's parser folds them), prefixes (argparse), the simulator as vLLM
  for (const [engine, args] of [['vllm', ['--api_key=x']], ['vllm', ['--served_model_name=x']], ['vllm', ['--tensor_parallel_size=2']],
    ['vllm', ['--max-num', '512']], ['aimaas-sim', ['--gpu_memory_utilization', '0.99']], ['sglang', ['--context-length', '131072']],
    ['sglang', ['--mem-fraction', '0.95']], ['sglang', ['--tp', '2']], ['llama.cpp', ['-c', '131072']], ['llama.cpp', ['--n_gpu_layers', '0']]])
    assertError(await dep({ engine, engine_args: args }, alice, '?dry_run=true'), 400, 'invalid_field', 'engine_args[0]');
  r = await dep({ engine: 'llama.cpp', engine_args: ['-t', '8', '-np', '64'] }, alice, '?dry_run=true');
  assertError(r, 400, 'invalid_field', 'engine_args[2]');
  assert.match(r.json.error.message, /-np\/--parallel.*max_num_seqs is a deployment field/);
  // a change is checked the same way; what a user tunes still passes
  r = await srv.api('PATCH', '/api/v1/deployments/q', { token: alice, body: { engine_args: ['--seed', '1', '-tp', '4'] } });
  assertError(r, 400, 'invalid_field', 'engine_args[2]');
  assert.match(r.json.error.message, /gpus_per_replica is a deployment field/);
  r = await dep({ name: 'tuned', engine: 'aimaas-sim', engine_args: ['--sim-itl-ms', '1', '--max-num-batched-tokens', '8192', '--enable-prefix-caching'] },
    alice, '?dry_run=true');
  assert.equal(r.status, 200, r.text);
});

test('secrets are masked in every answer; SGLang\'s key is in a private file, never argv; files are aimaas\'s own', async () => {
  const SECRETS = ['my-secret-value-1', 'db-password-2'];
  const got = await srv.api('GET', '/api/v1/deployments/q', { token: alice });
  const cmd = await srv.api('GET', '/api/v1/deployments/q/command', { token: alice });
  assert.equal(cmd.status, 200, cmd.text);
  assert.ok(cmd.json.instances[0].env.includes('MY_SECRET=********') && cmd.json.instances[0].env.includes('DB_PASSWORD=********'));
  const dry = await dep({ name: 'dry', env: { MY_SECRET: 'my-secret-value-1', DB_PASSWORD: 'db-password-2' } }, alice, '?dry_run=true');
  assert.equal(dry.status, 200, dry.text);
  assert.ok(dry.json.command.env.includes('MY_SECRET=********'));
  const logs = await srv.api('GET', '/api/v1/deployments/q/logs', { token: alice });
  for (const s of SECRETS)
    for (const [what, text] of [['GET', got.text], ['/command', cmd.text], ['dry run', dry.text], ['engine log', logs.text], ['aimaas log', srv.log()]])
      assert.ok(!text.includes(s), `${what} shows ${s}`);
  assert.equal(got.json.env.MY_SECRET, '********');

  // what an engine prints of a secret (SGLang prints its ServerArgs, key included) is masked in
  // the reason, the last lines and the log served
  const leak = await dep({ name: 'leaky', engine: 'aimaas-sim', env: { MY_SECRET: 'my-secret-value-3' },
    engine_args: ['--sim-startup-error', 'ValueError: could not reach the database with my-secret-value-3'] });
  assert.equal(leak.status, 201, leak.text);
  const failed = await waitFor('leaky', (x) => ['backoff', 'failed'].includes(x.instances[0]?.state), 'failed');
  assert.match(failed.instances[0].reason, /ValueError: could not reach the database with \*{8}/);
  assert.ok(failed.instances[0].last_log_lines.some((l) => l.includes('database with ********')));
  for (const q of ['', '?download=true']) {
    const l = await srv.api('GET', `/api/v1/deployments/leaky/logs${q}`, { token: alice });
    assert.ok(l.text.includes('database with ********') && !l.text.includes('my-secret-value-3'), l.text);
  }
  assert.ok(!JSON.stringify(failed).includes('my-secret-value-3'));
  {
    const ac = new AbortController();
    const r = await fetch(`${srv.url}/api/v1/deployments/leaky/logs?follow=true`, { headers: { authorization: `Bearer ${alice}` }, signal: ac.signal });
    let text = '';
    const dec = new TextDecoder();
    for await (const chunk of r.body) {
      text += dec.decode(chunk);
      if (text.includes(': following')) break;
    }
    ac.abort();
    assert.ok(text.includes('database with ********') && !text.includes('my-secret-value-3'), text);
  }
  await srv.api('DELETE', '/api/v1/deployments/leaky', { token: alice });

  // SGLang reads its key from --config: a 0600 file in a 0700 folder (ps shows argv to every user)
  const sg = await dep({ name: 'sg', engine: 'sglang' }, admin, '?dry_run=true');
  assert.equal(sg.status, 200, sg.text);
  const argv = sg.json.command.argv;
  assert.ok(!argv.includes('--api-key') && !argv.some((a) => a.startsWith('ame_')), argv.join(' '));
  assert.match(argv[argv.indexOf('--config') + 1], /\/run\/instance-\d+\.yaml$/);
  assert.equal((await srv.api('PATCH', '/api/v1/engines/sglang', { token: admin, body: { binary: '/bin/true' } })).status, 200); // its Python "has" sglang (-c exits 0), then the engine ends
  assert.equal((await dep({ name: 'sg', engine: 'sglang' }, admin)).status, 201);
  const s = await waitFor('sg', (x) => x.instances[0]?.restarts >= 0 && ['backoff', 'failed'].includes(x.instances[0]?.state), 'tried', admin);
  const key = join(dir, 'run', `instance-${s.instances[0].id}.yaml`);
  assert.equal(mode(key), 0o600);
  assert.equal(mode(join(dir, 'run')), 0o700);
  assert.match(readFileSync(key, 'utf8'), /"api-key": "ame_/);
  await srv.api('DELETE', '/api/v1/deployments/sg', { token: admin });
  const t0 = Date.now();
  while (existsSync(key) && Date.now() - t0 < 10000) await sleep(50);
  assert.ok(!existsSync(key), 'the key file goes with its instance');

  // the database holds no key an engine takes: each derives from a nonce and <data>/engine.key
  const ekey = environ(got.json.instances[0].pid).find((e) => e.startsWith('VLLM_API_KEY=')).slice(13);
  assert.match(ekey, /^ame_[0-9a-f]{64}$/);
  for (const f of ['aimaas.db', 'aimaas.db-wal'])
    if (existsSync(join(dir, f))) assert.ok(!readFileSync(join(dir, f)).includes(ekey), `${f} holds the engine key`);
  assert.equal(mode(join(dir, 'engine.key')), 0o600);
  assert.equal(statSync(join(dir, 'engine.key')).size, 32);
  // the database (password hashes, key digests) and its WAL files; logs and folders: no one else's
  for (const f of ['aimaas.db', 'aimaas.db-wal', 'aimaas.db-shm'])
    assert.equal(mode(join(dir, f)), 0o600, f);
  assert.equal(mode(dir) & 0o007, 0, 'the data dir');
  const logdir = join(dir, 'logs', 'deployments', String(got.json.id));
  assert.equal(mode(logdir) & 0o027, 0);
  for (const f of readdirSync(logdir)) assert.equal(mode(join(logdir, f)) & 0o037, 0, f);
});

test('refused writes are counted on one task row, not one row each', async () => {
  const before = (await srv.api('GET', '/api/v1/tasks?kind=deployment.create&state=failed&limit=500', { token: alice })).json.total;
  let id = null;
  for (let i = 0; i < 60; i++) {
    const r = await dep({ name: `bad-${i}`, env: { LD_PRELOAD: '/x.so' } });
    assertError(r, 400, 'invalid_field', 'env.LD_PRELOAD');
    id ??= r.headers.get('x-task-id');
    assert.equal(r.headers.get('x-task-id'), id, 'the same row');
  }
  const after = await srv.api('GET', '/api/v1/tasks?kind=deployment.create&state=failed&limit=500', { token: alice });
  assert.ok(after.json.total <= Math.max(before, 1), `${after.json.total} failed rows`);
  const t = (await srv.api('GET', `/api/v1/tasks/${id}`, { token: alice })).json;
  assert.equal(t.state, 'failed');
  assert.ok(t.refusals >= 60, JSON.stringify(t));
  assert.equal(t.target, 'deployment:bad-59', 'the latest target and message');
  assert.match(t.message, /LD_PRELOAD/);
  // another user's refusals are theirs
  const other = (await dep({ name: 'bad-admin', env: { VLLM_API_KEY: 'x' } }, admin)).headers.get('x-task-id');
  assert.notEqual(other, id);
});

test('what else a user makes is capped: API keys, console sessions, ended tokens', async () => {
  for (let i = 0; i < 100; i++)
    assert.equal((await srv.api('POST', '/api/v1/keys', { token: alice, body: { name: `k${i}` } })).status, 201);
  assertError(await srv.api('POST', '/api/v1/keys', { token: alice, body: { name: 'k100' } }), 409, 'conflict');
  // signing in 130 times keeps 100 sessions (counted in the database after the last test stops aimaas)
  for (let i = 0; i < 130; i++) await srv.login('alice', 'alice-password');
  alice = await srv.login('alice', 'alice-password');
});

test('an old row is refused at start (sqlite3 edits it as an upgrade would find it)', { skip: spawnSync('sqlite3', ['-version']).status !== 0 }, async () => {
  await srv.stop();
  const db = join(dir, 'aimaas.db');
  const n = spawnSync('sqlite3', [db, `SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'alice'`]);
  assert.ok(Number(String(n.stdout).trim()) <= 100, `alice has ${String(n.stdout).trim()} sessions`);
  const r = spawnSync('sqlite3', [db, `UPDATE deployments SET env = '{"LD_PRELOAD":"/tmp/evil.so"}', engine_args = '[]' WHERE name = 'q'`]);
  assert.equal(r.status, 0, String(r.stderr));
  srv = await start();
  alice = await srv.login('alice', 'alice-password');
  const d = await waitFor('q', (x) => ['backoff', 'failed'].includes(x.instances[0]?.state), 'refused to start');
  assert.match(d.instances[0].reason, /LD_PRELOAD/);
  // a key an older aimaas kept in the database (not a nonce) is used as it is
  await srv.stop();
  const legacy = 'ame_legacy-key-kept-by-an-older-aimaas';
  const r2 = spawnSync('sqlite3', [db, `UPDATE deployments SET env = '{}' WHERE name = 'q';`
    + ` UPDATE instances SET api_key = '${legacy}' WHERE deployment_id = (SELECT id FROM deployments WHERE name = 'q')`]);
  assert.equal(r2.status, 0, String(r2.stderr));
  srv = await start();
  alice = await srv.login('alice', 'alice-password');
  assert.equal((await srv.api('POST', '/api/v1/deployments/q/start', { token: alice })).status, 202);
  const up = await waitFor('q', (x) => x.instances[0]?.state === 'running', 'ran with its old key');
  assert.ok(environ(up.instances[0].pid).includes(`VLLM_API_KEY=${legacy}`));
});
