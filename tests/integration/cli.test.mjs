// The command line (src/cli/) against a live server: login with the password
// from stdin, tables and -o json, deploy --dry-run and for real on the
// simulator, logs and logs -f, keys, a dataset upload and a fine-tune, exit
// codes for a refused call and an unreachable server, and no token in argv.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, statSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, BIN, ADMIN_PASSWORD, startServer, tempDir, freePort } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const SHIMS = resolve(ROOT, 'tests/shims');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let dir, home, srv;

// aimaas with the test's config home and server; never a token in argv
function cli(args, { input, env = {} } = {}) {
  const r = spawnSync(BIN, args, { input, encoding: 'utf8', timeout: 20000,
    env: { ...process.env, XDG_CONFIG_HOME: home, AIMAAS_SERVER: srv.url, AIMAAS_TOKEN: '', ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const json = (args) => {
  const r = cli([...args, '-o', 'json']);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out);
};

before(async () => {
  dir = tempDir();
  home = tempDir('aimaas-cli-home-');
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  srv = await startServer({ dataDir: dir, args: ['--sim-gpus', '2x24GiB:NVIDIA GeForce RTX 4090', '--stop-engines-on-exit'],
    env: { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'),
      AIMAAS_SIM_STEP_MS: '15' } });
});

after(async () => {
  await srv.stop();
  srv.cleanup();
  rmSync(home, { recursive: true, force: true });
});

test('login reads the password from stdin and keeps an API token, 0600 in a 0700 folder', () => {
  const bad = cli(['login', 'admin', '--password-stdin'], { input: 'wrong-password\n' }); // the name as an argument
  assert.equal(cli(['login', 'admin', 'bob', '--password-stdin'], { input: 'x\n' }).code, 2);
  assert.equal(bad.code, 1, bad.err);
  const r = cli(['login', '--user', 'admin', '--password-stdin'], { input: `${ADMIN_PASSWORD}\n` });
  assert.equal(r.code, 0, r.err);
  const file = join(home, 'aimaas', 'cli.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(home, 'aimaas')).mode & 0o777, 0o700);
  const conf = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(conf.server, srv.url);
  assert.match(conf.token, /^amp_/); // a personal token, not the session
  assert.doesNotMatch(r.out + r.err, new RegExp(conf.token));
});

test('models: register, list and show in tables and JSON; a refused call exits 1 with the message', () => {
  const reg = cli(['models', 'register', join(dir, 'models', 'Qwen2.5-7B-Instruct')]);
  assert.equal(reg.code, 0, reg.err);
  const t = cli(['models', 'list']);
  assert.equal(t.code, 0, t.err);
  assert.match(t.out, /^ID\s+NAME\s+KIND\s+STATE/);
  assert.match(t.out, /Qwen2\.5-7B-Instruct\s+llm\s+ready/);
  const j = json(['models', 'list']);
  assert.equal(j.items[0].name, 'Qwen2.5-7B-Instruct');
  // parameters as the console says them (7.6B), the exact count in JSON
  const p = j.items[0].parameters;
  assert.ok(p > 1e9, `${p}`);
  assert.match(t.out, new RegExp(`\\s${(p / 1e9).toFixed(1).replace('.', '\\.')}B\\s`));
  assert.equal(json(['models', 'show', 'Qwen2.5-7B-Instruct']).kind, 'llm');
  const miss = cli(['deploy', 'no-such-model']);
  assert.equal(miss.code, 1);
  assert.match(miss.err, /no-such-model/);
  assert.match(miss.err, /field: model/);
  assert.equal(cli(['deploy']).code, 2); // usage
});

test('deploy --dry-run prints the plan and command; a real deploy runs; logs and logs -f', async () => {
  const dry = cli(['deploy', 'Qwen2.5-7B-Instruct', '--name', 'qwen', '--gpus', '1', '--max-model-len', '8192', '--dry-run']);
  assert.equal(dry.code, 0, dry.err);
  assert.match(dry.out, /^plan: /);
  assert.match(dry.out, /--max-model-len 8192/);
  assert.equal(json(['ps']).items.length, 0); // a dry run writes nothing
  const dj = json(['deploy', 'Qwen2.5-7B-Instruct', '--name', 'qwen', '--dry-run']);
  assert.ok(Array.isArray(dj.command.argv));
  const d = cli(['deploy', 'Qwen2.5-7B-Instruct', '--name', 'qwen']);
  assert.equal(d.code, 0, d.err);
  let ps;
  for (let i = 0; i < 200; i++) {
    ps = json(['ps']);
    if (ps.items[0]?.state === 'running') break;
    await sleep(50);
  }
  assert.equal(ps.items[0].state, 'running', JSON.stringify(ps));
  const table = cli(['ps']);
  assert.match(table.out, /^NAME\s+STATE\s+MODEL\s+REPLICAS\s+GPUS\s+REASON\n/);
  assert.match(table.out, /qwen\s+running\s+Qwen2\.5-7B-Instruct\s+1\/1\s+0/);
  const logs = cli(['logs', 'qwen', '-n', '50']);
  assert.equal(logs.code, 0, logs.err);
  assert.match(logs.out, /Application startup complete/);

  // -f: the last lines, then new ones as the engine writes them; the token is in no argv
  const token = JSON.parse(readFileSync(join(home, 'aimaas', 'cli.json'), 'utf8')).token;
  const f = spawn(BIN, ['logs', 'qwen', '-f', '-n', '5'], { env: { ...process.env, XDG_CONFIG_HOME: home, AIMAAS_SERVER: srv.url } });
  let out = '';
  f.stdout.on('data', (b) => { out += b; });
  await sleep(500);
  const argv = readFileSync(`/proc/${f.pid}/cmdline`, 'utf8');
  assert.ok(!argv.includes(token) && !argv.includes('amp_'), argv);
  // a request to the deployment makes the engine write an access-log line
  const key = cli(['keys', 'create', 'followkey']).out.trim();
  await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }) }).then((r) => r.text());
  for (let i = 0; i < 40 && !/POST \/v1\/chat\/completions/.test(out); i++) await sleep(50);
  f.kill('SIGTERM');
  await new Promise((r) => f.on('exit', r));
  assert.match(out, /Application startup complete/);
  assert.match(out, /POST \/v1\/chat\/completions/);

  assert.equal(cli(['scale', 'qwen', '2']).code, 0);
  assert.equal(json(['ps']).items[0].replicas, 2);
  assert.equal(cli(['stop', 'qwen']).code, 0);
  assert.equal(cli(['start', 'no-such-deployment']).code, 1);
});

test('keys create, list (table and JSON), revoke by name', () => {
  const k = cli(['keys', 'create', 'ci-key', '--rpm', '60']);
  assert.equal(k.code, 0, k.err);
  assert.match(k.out.trim(), /^sk-/);
  assert.match(cli(['keys', 'list']).out, /ci-key\s+sk-/);
  const before = json(['keys', 'list']).items.find((x) => x.name === 'ci-key');
  assert.equal(before.rpm, 60);
  assert.equal(cli(['keys', 'revoke', 'ci-key']).code, 0);
  assert.equal(json(['keys', 'list']).items.find((x) => x.name === 'ci-key').revoked, true);
  assert.equal(cli(['keys', 'revoke', 'ci-key']).code, 1); // no live key of that name
});

test('a dataset upload (Chinese name in the table) and a fine-tune start, status and logs', async () => {
  const file = join(dir, 'qa.json');
  writeFileSync(file, JSON.stringify(Array.from({ length: 64 }, (_, i) => ({ instruction: `Q ${i}?`, input: '', output: `A ${i}.` }))));
  const up = cli(['datasets', 'upload', file, '--name', '问答']);
  assert.equal(up.code, 0, up.err);
  assert.match(up.out, /valid, 64 records/);
  const list = cli(['datasets', 'list']).out.split('\n');
  // columns line up in terminal cells: a Chinese character is two
  const cells = (s) => [...s].reduce((w, ch) => w + (/[\u4e00-\u9fff]/.test(ch) ? 2 : 1), 0);
  assert.match(list[1], /问答/);
  assert.equal(cells(list[0].slice(0, list[0].indexOf('STATE'))), cells(list[1].slice(0, list[1].indexOf('valid'))), list.join('\n'));
  const st = cli(['finetune', 'start', '--model', 'Qwen2.5-7B-Instruct', '--dataset', '问答', '--name', 'ft1', '--max-steps', '20']);
  assert.equal(st.code, 0, st.err);
  let j;
  for (let i = 0; i < 200; i++) {
    j = json(['finetune', 'status', 'ft1']);
    if (['succeeded', 'failed'].includes(j.state)) break;
    await sleep(50);
  }
  assert.equal(j.state, 'succeeded', JSON.stringify(j));
  assert.match(cli(['finetune', 'status']).out, /ft1\s+succeeded\s+Qwen2\.5-7B-Instruct\s+lora/);
  assert.match(cli(['finetune', 'status', 'ft1']).out, /step 20\/20/);
  assert.equal(cli(['finetune', 'logs', 'ft1']).code, 0);
  assert.equal(json(['usage', '--by', 'key']).items.length >= 0, true);
});

test('exit 3 when the server cannot be reached or wants a login; a token file works', async () => {
  const port = await freePort();
  const r = cli(['ps'], { env: { AIMAAS_SERVER: `http://127.0.0.1:${port}` } });
  assert.equal(r.code, 3);
  assert.match(r.err, /cannot reach/);
  const none = cli(['ps'], { env: { XDG_CONFIG_HOME: join(home, 'empty') } });
  assert.equal(none.code, 3);
  const tf = join(home, 'token');
  writeFileSync(tf, JSON.parse(readFileSync(join(home, 'aimaas', 'cli.json'), 'utf8')).token + '\n', { mode: 0o600 });
  const ok = cli(['ps', '--token-file', tf, '--server', srv.url], { env: { XDG_CONFIG_HOME: join(home, 'empty') } });
  assert.equal(ok.code, 0, ok.err);
});
