// Downloads from the model hubs (issue 14, first part), against the fake hub
// in tests/fakes/hub.mjs (Hugging Face's and ModelScope's HTTP shapes, a CDN
// the LFS files redirect to): the files a deployment needs, verified and
// registered; progress; pause and resume; kill -9 and resume from the bytes
// on disk; dropped connections retried; cancel removing only its own files;
// disk space, checksum, gated repos; one GGUF quantisation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { BIN, assertError, startServer, tempDir, waitUntil } from './lib.mjs';
import { startHub, tinyRepo } from '../fakes/hub.mjs';
import { makeGguf } from '../fixtures/make-models.mjs';

let hub, dir, srv, T;
const env = () => ({ AIMAAS_HF_ENDPOINT: hub.url, AIMAAS_MODELSCOPE_ENDPOINT: hub.msUrl, AIMAAS_HUB_CONCURRENCY: '2' });
const root = () => join(realpathSync(dir), 'models');

before(async () => {
  const gg = join(tempDir(), 'x');
  mkdirSync(gg);
  makeGguf(join(gg, 'q4.gguf'), { layers: 1, embd: 32 });
  makeGguf(join(gg, 'q8.gguf'), { layers: 1, embd: 32, fileType: 7 });
  hub = await startHub({ pageSize: 3, repos: {
    'Qwen/Tiny-Instruct': { files: tinyRepo() },
    'Qwen/Big-Instruct': { files: tinyRepo(24, 256) }, // ~ a few MB: long enough to pause, kill and cut
    'Qwen/Other': { files: tinyRepo() },
    'Qwen/Par-A': { files: tinyRepo(24, 256) },
    'Qwen/Par-B': { files: tinyRepo(24, 256) },
    'meta-llama/Gated': { files: tinyRepo(), gated: true },
    'Qwen/Bad': { files: tinyRepo() },
    'Qwen/Tiny-GGUF': { files: { 'config.json': '{"model_type": "qwen2"}', 'tiny-q4_k_m.gguf': readFileSync(join(gg, 'q4.gguf')),
      'tiny-q8_0.gguf': readFileSync(join(gg, 'q8.gguf')), 'README.md': 'gguf' } },
  } });
  dir = tempDir();
  srv = await startServer({ dataDir: dir, env: env() });
  T = await srv.login();
});

after(async () => {
  await srv?.stop();
  srv?.cleanup();
  await hub?.stop();
});

async function userToken() {
  await srv.api('POST', '/api/v1/users', { token: T, body: { username: 'wang', password: 'a-long-password-2', role: 'user' } });
  return srv.login('wang', 'a-long-password-2');
}
const add = (body) => srv.api('POST', '/api/v1/models', { token: T, body: { download: true, ...body } });
const dl = async (id) => (await srv.api('GET', `/api/v1/models/${id}/download`, { token: T })).json;
const waitState = (id, want, ms = 30000) => waitUntil(srv, `download ${want}`, async () => {
  const d = await dl(id);
  if (d.state === 'failed' && want !== 'failed') throw new Error(`download failed: ${d.error}`);
  return d.state === want && d;
}, ms);

test('a multi-file safetensors model: only what serving needs, verified, registered, with progress', async () => {
  const r = await add({ hub_id: 'Qwen/Tiny-Instruct', source: 'huggingface' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.download.state, 'queued');
  const d = await waitState(r.json.id, 'succeeded');
  assert.equal(d.bytes_done, d.bytes_total);
  assert.match(d.commit, /^[0-9a-f]{40}$/);
  const dest = join(root(), 'huggingface', 'Qwen', 'Tiny-Instruct');
  assert.equal(d.dest, dest);
  const got = readdirSync(dest, { recursive: true }).sort();
  assert.deepEqual(got, ['config.json', 'generation_config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
    'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json', 'README.md'].sort());
  const m = (await srv.api('GET', `/api/v1/models/${r.json.id}`, { token: T })).json;
  assert.equal(m.state, 'ready');
  assert.equal(m.path, dest);
  assert.equal(m.kind, 'llm');
  assert.ok(m.weight_bytes > 0);
  // the token (none here) never goes to the CDN; the LFS files came from it
  assert.ok(hub.requests.some((q) => q.host === 'cdn'));
  assert.ok(hub.requests.filter((q) => q.host === 'cdn').every((q) => !q.auth));
  // the same repository again, for another model: not downloaded twice
  const twice = await add({ hub_id: 'Qwen/Tiny-Instruct', name: 'tiny-again' });
  assert.equal(twice.status, 409, twice.text);
  assert.match(twice.json.error.message, /downloaded already, as model 'Tiny-Instruct'/);
  const task = (await srv.api('GET', `/api/v1/tasks/${d.task_id}`, { token: T })).json;
  assert.equal(task.state, 'succeeded');
  assert.equal(task.progress, 100);
});

test('pause, then resume: it goes on from the bytes it has (Range)', async () => {
  hub.control.slow(400000);
  const r = await add({ hub_id: 'Qwen/Big-Instruct' });
  assert.equal(r.status, 201, r.text);
  const id = r.json.id;
  await waitUntil(srv, 'some bytes', async () => (await dl(id)).bytes_done > 300000);
  assert.equal((await srv.api('POST', `/api/v1/models/${id}/download/pause`, { token: T })).status, 202);
  const p = await waitState(id, 'paused');
  assert.ok(p.bytes_done > 0 && p.bytes_done < p.bytes_total);
  const dest = join(root(), 'huggingface', 'Qwen', 'Big-Instruct');
  assert.ok(readdirSync(dest).some((f) => f.endsWith('.part')), 'the partial files are kept');
  const before = hub.requests.length;
  hub.control.slow(0);
  assert.equal((await srv.api('POST', `/api/v1/models/${id}/download/resume`, { token: T })).status, 202);
  await waitState(id, 'succeeded');
  assert.ok(hub.requests.slice(before).some((q) => q.host === 'cdn' && /^bytes=[1-9]\d*-$/.test(q.range || '')),
    JSON.stringify(hub.requests.slice(before)));
  assert.ok(!readdirSync(dest).some((f) => f.endsWith('.part')));
});

test('kill -9 in the middle: the restarted aimaas resumes from what is on disk, not from zero', async () => {
  hub.control.slow(400000);
  const r = await add({ hub_id: 'Qwen/Other', name: 'other-big', revision: 'main' });
  assert.equal(r.status, 201, r.text);
  const id = r.json.id;
  // Other is small: slow enough to be caught in the middle
  await waitUntil(srv, 'some bytes', async () => (await dl(id)).bytes_done > 20000);
  srv.proc.kill('SIGKILL');
  await srv.exited;
  const before = hub.requests.length;
  hub.control.slow(0);
  srv = await startServer({ dataDir: dir, env: env() });
  T = await srv.login();
  await waitState(id, 'succeeded');
  assert.ok(hub.requests.slice(before).some((q) => /^bytes=[1-9]\d*-$/.test(q.range || '')), 'resumed with a Range');
  assert.match(srv.log(), /resuming the download of Qwen\/Other/);
});

test('dropped connections are retried and the file resumed', async () => {
  const r = await add({ hub_id: 'Qwen/Bad', name: 'cut-twice' });
  hub.control.cutAfter(30000, 2);
  // (the cut applies to the next file transfers)
  const d = await waitState(r.json.id, 'succeeded', 60000);
  assert.equal(d.bytes_done, d.bytes_total);
});

test('cancel removes only its own files: a neighbour model stays byte-identical', async () => {
  const org = join(root(), 'huggingface', 'Qwen');
  const neighbour = join(org, 'Tiny-Instruct');
  const snap = () => Object.fromEntries(readdirSync(neighbour, { recursive: true }).map((f) => [f, createHash('sha256').update(readFileSync(join(neighbour, f))).digest('hex')]));
  const s0 = snap();
  writeFileSync(join(org, 'notes.txt'), 'mine'); // the user's file beside
  hub.put('Qwen/Slow', { files: tinyRepo(24, 256) });
  hub.control.slow(200000);
  const r = await add({ hub_id: 'Qwen/Slow' });
  const id = r.json.id;
  await waitUntil(srv, 'some bytes', async () => (await dl(id)).bytes_done > 100000);
  assert.equal((await srv.api('POST', `/api/v1/models/${id}/download/cancel`, { token: T })).status, 202);
  await waitState(id, 'cancelled');
  hub.control.slow(0);
  assert.ok(!existsSync(join(org, 'Slow')), 'its folder (made by it) is gone');
  assert.deepEqual(snap(), s0);
  assert.equal(readFileSync(join(org, 'notes.txt'), 'utf8'), 'mine');
  assert.equal((await srv.api('GET', `/api/v1/models/${id}`, { token: T })).json.state, 'not_downloaded');
});

test('a checksum mismatch is refused and the bad file removed; a gated repo is explained', async () => {
  hub.put('Qwen/Corrupt', { files: tinyRepo() });
  hub.control.corrupt('Qwen/Corrupt', 'model-00002-of-00002.safetensors');
  const c = await add({ hub_id: 'Qwen/Corrupt' });
  const f = await waitState(c.json.id, 'failed');
  assert.match(f.error, /model-00002-of-00002\.safetensors: checksum mismatch/);
  assert.ok(!existsSync(join(f.dest, 'model-00002-of-00002.safetensors.part')));
  const g = await add({ hub_id: 'meta-llama/Gated' });
  const gf = await waitState(g.json.id, 'failed');
  assert.match(gf.error, /is gated: accept its licence at http:\/\/127\.0\.0\.1:\d+\/meta-llama\/Gated/);
  const n = await add({ hub_id: 'nobody/nothing' });
  assert.match((await waitState(n.json.id, 'failed')).error, /nobody\/nothing was not found on huggingface/);
});

test('a GGUF repository: one quantisation, the best usual one unless asked', async () => {
  const a = await add({ hub_id: 'Qwen/Tiny-GGUF', name: 'gguf-default' });
  const d = await waitState(a.json.id, 'succeeded');
  assert.deepEqual(d.files.map((x) => x.path).sort(), ['config.json', 'tiny-q4_k_m.gguf']);
  const bad = await srv.api('POST', '/api/v1/models', { token: T, body: { hub_id: 'Qwen/Tiny-GGUF', name: 'gguf-x', download: true, gguf: 'Q3 K' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.field, 'gguf');
});

test('ModelScope: the same download through its API shapes', async () => {
  hub.put('qwen/Tiny-MS', { files: tinyRepo() });
  const r = await add({ hub_id: 'qwen/Tiny-MS', source: 'modelscope' });
  assert.equal(r.status, 201, r.text);
  const d = await waitState(r.json.id, 'succeeded');
  assert.equal(d.commit, 'master');
  assert.ok(existsSync(join(root(), 'modelscope', 'qwen', 'Tiny-MS', 'model-00001-of-00002.safetensors')));
  assert.ok(hub.requests.some((q) => q.host === 'ms' && q.url.includes('/repo/files?Revision=master&Recursive=True')));
});

test('not enough disk space: refused before the first byte', async () => {
  const d2 = tempDir();
  const s = await startServer({ dataDir: d2, env: { ...env(), AIMAAS_HUB_TEST_FREE_BYTES: '1000' } });
  try {
    const t = await s.login();
    const r = await s.api('POST', '/api/v1/models', { token: t, body: { hub_id: 'Qwen/Tiny-Instruct', download: true } });
    assert.equal(r.status, 201, r.text);
    const f = await waitUntil(s, 'refused', async () => {
      const x = (await s.api('GET', `/api/v1/models/${r.json.id}/download`, { token: t })).json;
      return x.state === 'failed' && x;
    });
    assert.match(f.error, /not enough disk space/);
    assert.equal(f.bytes_done, 0);
  } finally {
    await s.stop();
    s.cleanup();
  }
});

test('the fake is faithful: the official client @huggingface/hub lists and downloads from it unchanged', async () => {
  const { listFiles, downloadFile, modelInfo } = await import('@huggingface/hub');
  const repo = { type: 'model', name: 'Qwen/Tiny-Instruct' };
  const info = await modelInfo({ name: repo.name, hubUrl: hub.url, additionalFields: ['sha'] });
  assert.equal(info.name, 'Qwen/Tiny-Instruct');
  const files = [];
  for await (const f of listFiles({ repo, recursive: true, hubUrl: hub.url })) files.push(f);
  const byPath = Object.fromEntries(files.map((f) => [f.path, f]));
  assert.equal(byPath.original.type, 'directory'); // pages of 3: the Link header was followed
  assert.ok(byPath['model-00001-of-00002.safetensors'].lfs.oid.match(/^[0-9a-f]{64}$/));
  // the file aimaas downloaded is the one the official client downloads, byte for byte
  const blob = await downloadFile({ repo, path: 'model-00001-of-00002.safetensors', hubUrl: hub.url });
  const theirs = createHash('sha256').update(Buffer.from(await blob.arrayBuffer())).digest('hex');
  const ours = createHash('sha256').update(readFileSync(join(root(), 'huggingface', 'Qwen', 'Tiny-Instruct', 'model-00001-of-00002.safetensors'))).digest('hex');
  assert.equal(theirs, ours);
  assert.equal(theirs, byPath['model-00001-of-00002.safetensors'].lfs.oid);
  await assert.rejects(downloadFile({ repo: { type: 'model', name: 'meta-llama/Gated' }, path: 'config.json', hubUrl: hub.url }),
    (e) => /restricted|401|authenticated/i.test(`${e.message} ${e.statusCode}`));
  // the search aimaas's market passes q to (GET /api/models?search=): the client reads it as it reads the Hub's
  const { listModels } = await import('@huggingface/hub');
  const found = [];
  for await (const m of listModels({ search: { query: 'tiny' }, hubUrl: hub.url, limit: 10 })) found.push(m);
  assert.deepEqual(found.map((m) => m.name).sort(), ['Qwen/Tiny-GGUF', 'Qwen/Tiny-Instruct', 'qwen/Tiny-MS']);
  assert.equal(found[0].task, 'text-generation');
});

// `aimaas download`: the same downloader on its own (a Kubernetes node's
// cache Job runs it), progress as JSON lines, SIGTERM pauses, a rerun resumes
function cli(args, extraEnv = {}) {
  const p = spawn(BIN, ['download', ...args], { env: { ...process.env, ...env(), ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', errOut = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { errOut += d; });
  const exited = new Promise((res) => p.on('exit', (code) => res(code)));
  return { p, exited, lines: () => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)), err: () => errOut };
}

test('aimaas download: JSON progress, paused by SIGTERM, resumed by a rerun, the facts at the end', async () => {
  const dest = join(tempDir(), 'Big');
  hub.control.slow(400000);
  const a = cli(['--source', 'huggingface', '--repo', 'Qwen/Big-Instruct', '--dest', dest, '--concurrency', '2']);
  for (let i = 0; i < 100 && !a.lines().some((l) => l.event === 'progress' && l.done > 200000); i++) await new Promise((r) => setTimeout(r, 100));
  a.p.kill('SIGTERM');
  assert.equal(await a.exited, 3, a.err());
  const paused = a.lines().at(-1);
  assert.equal(paused.event, 'paused');
  assert.ok(paused.done > 0 && paused.done < paused.total, JSON.stringify(paused));
  assert.equal(a.lines()[0].event, 'start');
  hub.control.slow(0);
  const mark = hub.requests.length;
  const b = cli(['--source', 'huggingface', '--repo', 'Qwen/Big-Instruct', '--dest', dest]);
  assert.equal(await b.exited, 0, b.err() + JSON.stringify(b.lines()));
  const done = b.lines().at(-1);
  assert.equal(done.event, 'done');
  assert.match(done.commit, /^[0-9a-f]{40}$/);
  assert.equal(done.facts.kind, 'llm');
  assert.equal(done.facts.layers, 24);
  assert.ok(hub.requests.slice(mark).some((r) => r.host === 'cdn' && /^bytes=[1-9]\d*-$/.test(r.range || '')), 'resumed with Range');
  assert.ok(!existsSync(join(dest, 'pytorch_model.bin')), 'the same choice of files as the server');
  // a refusal is explained; bad usage is 2
  const c = cli(['--source', 'huggingface', '--repo', 'meta-llama/Gated', '--dest', join(tempDir(), 'g')]);
  assert.equal(await c.exited, 1);
  assert.equal(c.lines().at(-1).event, 'failed');
  assert.match(c.lines().at(-1).error, /gated: accept its licence/);
  const d = cli(['--source', 'huggingface', '--repo', 'meta-llama/Gated', '--dest', join(tempDir(), 'g2')], { AIMAAS_HF_TOKEN: hub.token });
  assert.equal(await d.exited, 0, d.err() + JSON.stringify(d.lines().at(-1)));
  const e = cli(['--source', 'github', '--repo', 'a/b', '--dest', '/tmp/x']);
  assert.equal(await e.exited, 2);
  assert.match(e.err(), /usage: aimaas download/);
});

test('two downloaders of one folder (two pods filling a node\'s cache): the second waits, both end with the right files', async () => {
  const dest = join(tempDir(), 'Shared');
  hub.control.slow(3000000);
  const a = cli(['--source', 'huggingface', '--repo', 'Qwen/Big-Instruct', '--dest', dest]);
  for (let i = 0; i < 100 && !a.lines().some((l) => l.event === 'progress'); i++) await new Promise((r) => setTimeout(r, 100));
  const b = cli(['--source', 'huggingface', '--repo', 'Qwen/Big-Instruct', '--dest', dest]);
  const [ra, rb] = [await a.exited, await b.exited];
  hub.control.slow(0);
  assert.equal(ra, 0, a.err());
  assert.equal(rb, 0, b.err());
  assert.ok([...a.lines(), ...b.lines()].some((l) => l.event === 'waiting'), 'one waited for the other');
  for (const f of ['model-00001-of-00002.safetensors', 'config.json'])
    assert.ok(existsSync(join(dest, f)), f);
  assert.equal(b.lines().at(-1).event, 'done');
  assert.deepEqual(a.lines().at(-1).files, b.lines().at(-1).files, 'the same files, verified by both');
});

test('settings: downloads at once, files at once, bandwidth; a waiting download waits its turn and pauses at once', async () => {
  const g = await srv.api('GET', '/api/v1/settings/downloads', { token: T });
  assert.deepEqual(g.json, { parallel: 2, concurrency: 2, max_bytes_per_s: 0 }); // concurrency from AIMAAS_HUB_CONCURRENCY
  for (const [body, field] of [[{ parallel: 0 }, 'parallel'], [{ parallel: 9 }, 'parallel'], [{ concurrency: 17 }, 'concurrency'],
    [{ max_bytes_per_s: -1 }, 'max_bytes_per_s'], [{ parallel: '2' }, 'parallel'], [{ speed: 1 }, 'speed']]) {
    const r = await srv.api('PATCH', '/api/v1/settings/downloads', { token: T, body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.field, field);
  }
  const p = await srv.api('PATCH', '/api/v1/settings/downloads', { token: T, body: { parallel: 1 } });
  assert.deepEqual(p.json, { parallel: 1, concurrency: 2, max_bytes_per_s: 0 });
  hub.control.slow(300000);
  const a = await add({ hub_id: 'Qwen/Par-A', source: 'huggingface' });
  const b = await add({ hub_id: 'Qwen/Par-B', source: 'huggingface' });
  await waitUntil(srv, 'A running', async () => (await dl(a.json.id)).bytes_done > 0);
  const bw = await dl(b.json.id);
  assert.equal(bw.state, 'queued', 'one at a time: B waits');
  assert.equal(bw.bytes_done, 0);
  assert.equal((await srv.api("POST", `/api/v1/models/${b.json.id}/download/pause`, { token: T })).status, 202);
  assert.equal((await dl(b.json.id)).state, 'paused', 'a waiting download pauses at once');
  await srv.api('PATCH', '/api/v1/settings/downloads', { token: T, body: { parallel: 2 } });
  assert.equal((await srv.api("POST", `/api/v1/models/${b.json.id}/download/resume`, { token: T })).status, 202);
  await waitUntil(srv, 'both running at once', async () => {
    const [x, y] = [await dl(a.json.id), await dl(b.json.id)];
    return x.state === 'running' && y.state === 'running' && x.bytes_done > 0 && y.bytes_done > 0;
  });
  hub.control.slow(0);
  await waitState(a.json.id, 'succeeded');
  await waitState(b.json.id, 'succeeded');
  assertError(await srv.api('PATCH', '/api/v1/settings/downloads', { token: await userToken(), body: { parallel: 3 } }), 403, 'forbidden');
});
