// The administrator's commands on a data dir (docs/operations.md): `aimaas
// backup` while traffic flows and `aimaas restore` into a fresh data dir give
// the same answers; restore refuses a data dir a server runs on; `aimaas
// check` is quiet on a fresh dir and finds a planted orphan and a 0755 dir;
// an engine's log rotated past --log-max-mb while the log view still shows
// the newest lines, and --logs-total-max-mb prunes a deleted deployment's log.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BIN, ROOT, deployQwen, startServer, tempDir } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SIM_ENV = { AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'), AIMAAS_SCRAPE_MS: '200' };
const cleanups = [];
const servers = [];
// whatever a failed or timed-out test left: its servers stopped (engines too), then its folders
after(async () => {
  for (const srv of servers) {
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) continue;
    srv.proc.kill('SIGTERM');
    if (await Promise.race([srv.exited.then(() => true), sleep(5000).then(() => false)]) === false) srv.proc.kill('SIGKILL');
  }
  for (const c of cleanups.reverse()) { try { c(); } catch { /* best effort */ } }
});
// startServer, its process remembered for after()
async function serve(opts) {
  const srv = await startServer(opts);
  servers.push(srv);
  return srv;
}

function dir(prefix) {
  const d = tempDir(prefix);
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

// Runs `aimaas <args>`; resolves { code, out, err, ms }.
function aimaas(args) {
  const t0 = Date.now();
  return new Promise((res) => {
    execFile(BIN, args, { env: { ...process.env, AIMAAS_CONFIG: '' } }, (e, out, err) =>
      res({ code: e ? e.code : 0, out, err, ms: Date.now() - t0 }));
  });
}

function chat(srv, key, i) {
  const body = { model: 'qwen', messages: [{ role: 'user', content: `hello ${i}` }], max_tokens: 1 + (i % 4) };
  return fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    .then(async (r) => { await r.text(); return r.status; }, () => 0);
}

// What a restore must give back the same: users, keys, deployments, usage per key.
async function answers(srv, T) {
  const users = (await srv.api('GET', '/api/v1/users?limit=500', { token: T })).json.items.map((u) => u.username).sort();
  const keys = (await srv.api('GET', '/api/v1/keys?limit=500', { token: T })).json.items
    .map((k) => ({ name: k.name, used: k.used_tokens })).sort((a, b) => a.name.localeCompare(b.name));
  const deps = (await srv.api('GET', '/api/v1/deployments?limit=500', { token: T })).json.items.map((d) => d.name).sort();
  const usage = (await srv.api('GET', '/api/v1/usage?group_by=key', { token: T })).json.items
    .map((u) => ({ key: u.key_name, requests: u.requests, tokens: u.prompt_tokens + u.completion_tokens }))
    .sort((a, b) => String(a.key).localeCompare(String(b.key)));
  return { users, keys, deps, usage };
}

test('backup while traffic flows; restore into a fresh data dir gives the same answers; restore refuses a live dir', { timeout: 120000 }, async () => {
  const data = dir('aimaas-ops-');
  const models = dir('aimaas-models-');
  const out = dir('aimaas-backups-');
  makeModel('Qwen2.5-7B-Instruct', models);
  const args = ['--sim-gpus', '1x24GiB', '--model-root', models, '--stop-engines-on-exit'];
  const srv = await serve({ dataDir: data, args, env: SIM_ENV });
  const T = await srv.login();
  await deployQwen(srv, T, models);
  for (const u of ['alice', 'bob'])
    assert.equal((await srv.api('POST', '/api/v1/users', { token: T, body: { username: u, password: `${u}-password` } })).status, 201);
  const key = (await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'traffic' } })).json;
  // traffic: chat completions (usage writes) and API writes, until told to stop
  let stop = false, sent = 0, made = 0;
  const loops = [
    ...Array.from({ length: 6 }, async () => { while (!stop) { await chat(srv, key.key, sent++); } }),
    (async () => { while (!stop && made < 300) { await srv.api('POST', '/api/v1/keys', { token: T, body: { name: `k${made++}` } }); } })(),
  ];
  await sleep(500);
  const hot = await aimaas(['backup', join(out, 'hot.db'), '--data-dir', data]);
  assert.equal(hot.code, 0, hot.err);
  assert.match(hot.out, /wrote .*hot\.db: \d+ bytes, schema version \d+/);
  assert.match(hot.out, /usage_records +\d+ rows/);
  assert.match(hot.out, /not in it: model files/);
  await sleep(300);
  stop = true;
  await Promise.all(loops);
  assert.ok(sent > 20 && made > 3, `traffic flowed during the backup (${sent} chats, ${made} keys)`);
  // FILE exists: refused without --force
  const again = await aimaas(['backup', join(out, 'hot.db'), '--data-dir', data]);
  assert.equal(again.code, 1);
  assert.match(again.err, /exists; give --force/);
  // a quiet moment: usage folded (every 250 ms), then a backup whose answers must match exactly
  await sleep(800);
  const live = await answers(srv, T);
  const quiet = await aimaas(['backup', join(out, 'quiet.db'), '--data-dir', data]);
  assert.equal(quiet.code, 0, quiet.err);
  console.log(`# backup under traffic: ${hot.out.split('\n')[0]}`);
  console.log(`# quiet backup: ${quiet.out.split('\n')[0]}`);
  // restore is refused while the server runs on the data dir
  const refused = await aimaas(['restore', join(out, 'quiet.db'), '--data-dir', data]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /aimaas \(pid \d+\) is running on the data dir .*; stop it first/);
  await srv.stop();

  // the quiet backup in a fresh data dir: the same answers
  const fresh = dir('aimaas-restored-');
  let r = await aimaas(['restore', join(out, 'quiet.db'), '--data-dir', fresh]);
  assert.equal(r.code, 0, r.err);
  assert.equal(statSync(join(fresh, 'aimaas.db')).mode & 0o777, 0o600);
  let back = await serve({ dataDir: fresh, args, env: SIM_ENV });
  const T2 = await back.login();
  assert.deepEqual(await answers(back, T2), live, 'users, keys, deployments and usage as before the backup');
  await back.stop();

  // the one taken under traffic: a consistent snapshot (each key's count equals its usage records)
  r = await aimaas(['restore', join(out, 'hot.db'), '--data-dir', fresh]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /kept the database it replaces as .*aimaas\.db\.before-restore-\d{8}T\d{6}Z/);
  back = await serve({ dataDir: fresh, args, env: SIM_ENV });
  const T3 = await back.login();
  const snap = await answers(back, T3);
  const t = snap.usage.find((u) => u.key === 'traffic');
  assert.ok(t && t.requests > 0 && t.requests <= live.usage.find((u) => u.key === 'traffic').requests, JSON.stringify(snap.usage));
  assert.equal(snap.keys.find((k) => k.name === 'traffic').used, t.tokens, 'the key\'s count and its records agree');
  assert.deepEqual(snap.users, live.users);
  await back.stop();

  // not a database, and a database of no aimaas
  writeFileSync(join(out, 'junk.db'), 'not sqlite at all'.repeat(100));
  r = await aimaas(['restore', join(out, 'junk.db'), '--data-dir', fresh]);
  assert.equal(r.code, 1);
  assert.match(r.err, /is not a database this can restore|is not an aimaas database/);
});

test('check: healthy on a fresh data dir; finds a planted orphan and a 0755 data dir', { timeout: 120000 }, async () => {
  const data = dir('aimaas-check-');
  const srv = await serve({ dataDir: data });
  // works beside a running server
  let r = await aimaas(['check', '--data-dir', data]);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /integrity_check and foreign_key_check: ok/);
  assert.match(r.out, /healthy/);
  await srv.stop();
  r = await aimaas(['check', '--data-dir', data]);
  assert.equal(r.code, 0, r.out + r.err);
  mkdirSync(join(data, 'datasets', '4242'), { recursive: true });
  writeFileSync(join(data, 'datasets', '4242', 'train.jsonl'), '{"instruction":"x","output":"y"}\n');
  chmodSync(data, 0o755);
  r = await aimaas(['check', '--data-dir', data]);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /2 findings/);
  assert.match(r.out, /datasets\/4242: no dataset has the id 4242/);
  assert.match(r.out, /has mode 0755; it should allow at most 0750/);
  chmodSync(data, 0o750);
  rmSync(join(data, 'datasets', '4242'), { recursive: true });
  r = await aimaas(['check', '--data-dir', data]);
  assert.equal(r.code, 0, r.out);
});

test('logs: rotated past --log-max-mb while the log view shows the newest lines; the total pruned', { timeout: 120000 }, async () => {
  const data = dir('aimaas-logs-');
  const models = dir('aimaas-models-');
  makeModel('Qwen2.5-7B-Instruct', models);
  // a deleted deployment's old log: 2 MiB over a 1 MiB total
  const gone = join(data, 'logs', 'deployments', '999');
  mkdirSync(gone, { recursive: true });
  writeFileSync(join(gone, 'replica-0.log'), 'old line\n'.repeat(240000));
  const args = ['--sim-gpus', '1x24GiB', '--model-root', models, '--stop-engines-on-exit', '--log-max-mb', '1',
    '--logs-total-max-mb', '1'];
  const srv = await serve({ dataDir: data, args, env: SIM_ENV });
  assert.ok(!existsSync(join(gone, 'replica-0.log')), 'the deleted deployment\'s log went at start');
  const T = await srv.login();
  const d = await deployQwen(srv, T, models);
  const log = join(data, 'logs', 'deployments', String(d.id), 'replica-0.log');
  assert.ok(existsSync(log), log);
  // a follower from before the rotation
  const ctl = new AbortController();
  const follow = await fetch(`${srv.url}/api/v1/deployments/${d.id}/logs?follow=true&tail=1`,
    { headers: { authorization: `Bearer ${T}` }, signal: AbortSignal.any([ctl.signal, AbortSignal.timeout(60000)]) });
  const reader = follow.body.getReader();
  let seen = '';
  const pump = (async () => { try { for (;;) { const c = await reader.read(); if (c.done) break; seen += Buffer.from(c.value).toString(); } } catch { /* aborted */ } })();
  // the engine's output grows past 1 MiB (appended as the engine's O_APPEND descriptor would)
  appendFileSync(log, 'engine line filler filler filler filler filler\n'.repeat(30000) + 'NEWEST-BEFORE-ROTATION\n');
  // copy-truncate: `.1` is written first, then the current file is cut
  const rotated = () => existsSync(`${log}.1`) && statSync(log).size < 1 << 20;
  for (let i = 0; i < 600 && !rotated(); i++) await sleep(50);
  assert.ok(existsSync(`${log}.1`), 'rotated to .1');
  assert.ok(statSync(log).size < 1 << 20, 'the current file starts again');
  let r = await srv.api('GET', `/api/v1/deployments/${d.id}/logs?tail=5`, { token: T });
  assert.equal(r.status, 200);
  assert.match(r.text, /NEWEST-BEFORE-ROTATION/, 'the view reaches into the rotated part');
  appendFileSync(log, 'NEWEST-AFTER-ROTATION\n');
  r = await srv.api('GET', `/api/v1/deployments/${d.id}/logs?tail=5`, { token: T });
  assert.match(r.text, /NEWEST-AFTER-ROTATION/);
  for (let i = 0; i < 100 && !seen.includes('NEWEST-AFTER-ROTATION'); i++) await sleep(50);
  ctl.abort();
  await pump;
  assert.match(seen, /NEWEST-AFTER-ROTATION/, 'a follower keeps following across the rotation');
  // the running engine's current log is never pruned, whatever the total
  assert.ok(existsSync(log));
  await srv.stop();
});
