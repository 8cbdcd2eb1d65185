// Usage is never lost: every 2xx a client saw is in /api/v1/usage after a
// kill -9 of aimaas (the gateway's journal), and a full disk is a 507
// "disk full" that names the folder, keeps the gateway's records until space
// returns and does not stop aimaas from starting (read-only, /healthz
// degraded). The full disk is a small tmpfs mounted over the data dir; where
// mounting is impossible (not root, no tmpfs) those tests are skipped and
// say why.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, deployQwen, startServer, tempDir, assertError } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SIM_ENV = { AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim') };
const cleanups = [];
const full = {}; // the three full-disk tests share one aimaas on one tmpfs, in order
after(async () => {
  if (full.srv) await full.srv.stop({ clean: false });
  for (const c of cleanups.reverse()) { try { c(); } catch { /* best effort */ } }
});

async function newKey(srv, T, name) {
  const r = await srv.api('POST', '/api/v1/keys', { token: T, body: { name } });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

function chat(srv, key, i) {
  const body = { model: 'qwen', messages: [{ role: 'user', content: `hello ${i}` }], max_tokens: 1 + (i % 4) };
  if (i % 3 === 0) body.stream = true;
  return fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    .then(async (r) => { await r.text(); return r.status; }, () => 0);
}

// n requests, `width` at a time; how many answered 2xx
async function burst(srv, key, n, width = 12) {
  let next = 0, ok = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const s = await chat(srv, key, next++);
      if (s >= 200 && s < 300) ok++;
    }
  }));
  return ok;
}

async function usageOf(srv, T, keyName) {
  const u = await srv.api('GET', '/api/v1/usage?group_by=key', { token: T });
  assert.equal(u.status, 200, u.text);
  return u.json.items.find((x) => x.key_name === keyName) || { requests: 0, prompt_tokens: 0, completion_tokens: 0 };
}

async function usedTokens(srv, T, keyName) {
  const r = await srv.api('GET', '/api/v1/keys', { token: T });
  return r.json.items.find((k) => k.name === keyName).used_tokens;
}

test('kill -9 right after a burst of 2xx: every one is in /usage after the restart', async () => {
  const dir = tempDir();
  const models = tempDir('aimaas-models-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => rmSync(models, { recursive: true, force: true }));
  makeModel('Qwen2.5-7B-Instruct', models);
  const args = ['--sim-gpus', '1x24GiB', '--model-root', models];
  let srv = await startServer({ dataDir: dir, args, env: SIM_ENV });
  const T = await srv.login();
  await deployQwen(srv, T, models);
  const k = await newKey(srv, T, 'burst');
  let seen = 0;
  for (let round = 0; round < 3; round++) {
    seen += await burst(srv, k.key, 150);
    // at once: the writer folds every 250 ms, so the last answers were only in memory before the journal
    await srv.kill9();
    srv = await startServer({ dataDir: dir, args: round === 2 ? [...args, '--stop-engines-on-exit'] : args, env: SIM_ENV });
    const u = await usageOf(srv, T, 'burst');
    assert.equal(u.requests, seen, `every 2xx the client saw is in /usage after kill -9 number ${round + 1}`);
    // the key's token count (its quota) moved by exactly those records
    assert.equal(await usedTokens(srv, T, 'burst'), u.prompt_tokens + u.completion_tokens);
  }
  assert.ok(seen >= 400, `the bursts were answered (${seen})`);
  await srv.stop();
});

// A tmpfs over dir, or null with the reason.
function mountTmpfs(dir, size) {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (e) {
    return `cannot mount a tmpfs (${String(e.stderr || e.message).trim().split('\n')[0]}): needs root`;
  }
}

// Fills the file system holding dir; returns the filler's path.
function fill(dir) {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 65536, 4096, 512, 1]) {
      const buf = Buffer.alloc(size, 1);
      try { for (;;) writeSync(fd, buf); } catch (e) { if (e.code !== 'ENOSPC') throw e; }
    }
  } finally { closeSync(fd); }
  return path;
}

test('a full disk: every write answers 507 disk_full with the folder and its free bytes; /healthz says degraded', async (t) => {
  full.dir = tempDir('aimaas-full-');
  full.models = tempDir('aimaas-models-');
  cleanups.push(() => rmSync(full.dir, { recursive: true, force: true }), () => rmSync(full.models, { recursive: true, force: true }));
  full.skip = mountTmpfs(full.dir, '24m');
  if (full.skip) { t.skip(full.skip); return; }
  cleanups.push(() => execFileSync('umount', ['-l', full.dir]));
  makeModel('Qwen2.5-7B-Instruct', full.models);
  full.args = ['--sim-gpus', '1x24GiB', '--model-root', full.models];
  const srv = full.srv = await startServer({ dataDir: full.dir, args: full.args, env: SIM_ENV });
  const T = full.T = await srv.login();
  await deployQwen(srv, T, full.models);
  full.key = await newKey(srv, T, 'during');
  assert.equal(await burst(srv, full.key.key, 10, 2), 10);
  for (let i = 0; i < 50 && (await usageOf(srv, T, 'during')).requests < 10; i++) await sleep(100);
  assert.equal((await usageOf(srv, T, 'during')).requests, 10);

  // the disk fills up: SQLite still has room in its WAL for a while, so write until a write fails
  full.filler = fill(full.dir);
  let r;
  for (let i = 0; i < 3000; i++) {
    r = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: `filler-${i}` } });
    if (r.status !== 201) break;
  }
  assertError(r, 507, 'disk_full');
  assert.match(r.json.error.message, new RegExp(`disk full: ${full.dir} has \\d+ bytes free`));
  // the same for a login (it writes a session) and any other write
  assertError(await srv.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-1' } }), 507, 'disk_full');
  assertError(await srv.api('PATCH', '/api/v1/deployments/qwen', { token: T, body: { aliases: ['q'] } }), 507, 'disk_full');
  // an upload (a file as well as a row)
  const rows = Array.from({ length: 2000 }, (_, i) => ({ instruction: `say ${i}`, input: '', output: 'x'.repeat(100) }));
  const up = await srv.api('POST', '/api/v1/datasets?name=big&file_name=train.json', { token: T, raw: JSON.stringify(rows),
    headers: { 'content-type': 'application/json' } });
  assertError(up, 507, 'disk_full');
  const h = await srv.api('GET', '/healthz');
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'degraded');
  assert.match(h.json.reason, /disk full/);
  // reads go on
  assert.equal((await srv.api('GET', '/api/v1/deployments', { token: T })).status, 200);
});

test('a full disk: the gateway requests served meanwhile reach /usage once space returns', async (t) => {
  if (full.skip) { t.skip(full.skip); return; }
  const { srv, T } = full;
  assert.equal(await burst(srv, full.key.key, 20, 2), 20, 'the gateway serves on a full disk');
  await sleep(600);
  // the journal's files hold room allocated before the disk filled, given back when they are
  // closed: the sink may write some records with it (or none); never one twice
  const meanwhile = (await usageOf(srv, T, 'during')).requests;
  assert.ok(meanwhile >= 10 && meanwhile <= 30, `${meanwhile} requests counted while the disk is full`);
  // space returns: the 20 reach /usage and writes work again, without a restart
  unlinkSync(full.filler);
  let u;
  for (let i = 0; i < 100; i++) {
    u = await usageOf(srv, T, 'during');
    if (u.requests === 30) break;
    await sleep(100);
  }
  assert.equal(u.requests, 30, 'the records served during the full disk are written once space returns');
  assert.equal(await usedTokens(srv, T, 'during'), u.prompt_tokens + u.completion_tokens);
  assert.equal((await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'after' } })).status, 201);
  for (let i = 0; i < 50 && (await srv.api('GET', '/healthz')).json.status !== 'ok'; i++) await sleep(100);
  assert.equal((await srv.api('GET', '/healthz')).json.status, 'ok');
});

test('start-up on a full disk: reads are served, /healthz says why, writes answer 507, and it recovers without a restart', async (t) => {
  if (full.skip) { t.skip(full.skip); return; }
  let { srv } = full;
  const { T } = full;
  try { unlinkSync(full.filler); } catch { /* the test before removed it */ }
  // nothing to start while read-only
  const del = await srv.api('DELETE', '/api/v1/deployments/qwen', { token: T });
  assert.equal(del.status, 202, del.text);
  for (let i = 0; i < 300 && (await srv.api('GET', '/api/v1/deployments/qwen', { token: T })).status !== 404; i++) await sleep(50);
  await srv.stop();
  const filler = fill(full.dir);
  srv = full.srv = await startServer({ dataDir: full.dir, args: full.args, env: SIM_ENV });
  assert.match(srv.log(), /disk full: .* starting read-only/);
  const h = await srv.api('GET', '/healthz');
  assert.equal(h.json.status, 'degraded', h.text);
  assert.match(h.json.reason, new RegExp(`disk full: ${full.dir} has \\d+ bytes free`));
  assert.equal((await srv.api('GET', '/api/v1/keys', { token: T })).status, 200, 'a session from before still reads');
  assert.equal((await usageOf(srv, T, 'during')).requests, 30);
  assertError(await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'ro' } }), 507, 'disk_full');
  // and recovers once space returns, without a restart
  unlinkSync(filler);
  for (let i = 0; i < 50 && (await srv.api('GET', '/healthz')).json.status !== 'ok'; i++) await sleep(100);
  assert.equal((await srv.api('GET', '/healthz')).json.status, 'ok');
  assert.equal((await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'ro' } })).status, 201);
  await srv.stop();
  full.srv = null;
});
