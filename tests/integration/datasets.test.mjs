// Fine-tuning datasets: upload (JSON, JSONL, CSV), per-record validation
// with record numbers and reasons, preview, download, delete, the limits,
// who may delete, and that the record survives a restart.
import { test, before, after } from 'node:test';
import net from 'node:net';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { BIN, startServer, assertError, pollHealthz } from './lib.mjs';

// A loose bound for one /healthz answer while a worker churns (the stalls it
// catches lasted seconds): a loaded 2-core machine, more under ASan's allocator.
const BOUND = /asan/.test(BIN) ? 1000 : 500;

let srv, admin, user;

const upload = (query, raw, { token = admin, type = 'application/octet-stream' } = {}) =>
  srv.api('POST', `/api/v1/datasets?${new URLSearchParams(query)}`, { token, raw, headers: { 'content-type': type } });

const ALPACA = JSON.stringify([
  { instruction: 'Translate to French', input: 'cat', output: 'chat' },
  { instruction: 'What is 2+2?', input: '', output: '4' },
  { instruction: 'Name a colour', output: 'blue', history: [['hi', 'hello']] },
]);

before(async () => {
  srv = await startServer({ env: { AIMAAS_DATASET_MAX_BYTES: '65536' } });
  admin = await srv.login();
  await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'dana', password: 'dana-password' } });
  user = await srv.login('dana', 'dana-password');
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('a valid alpaca JSON file is stored with its statistics', async () => {
  const r = await upload({ name: 'fr-basics', file_name: 'train.json' }, ALPACA);
  assert.equal(r.status, 201, r.text);
  const d = r.json;
  assert.equal(d.name, 'fr-basics');
  assert.equal(d.state, 'valid');
  assert.equal(d.format, 'alpaca');
  assert.equal(d.file_type, 'json');
  assert.equal(d.records, 3);
  assert.equal(d.size_bytes, Buffer.byteLength(ALPACA));
  assert.equal(d.report.valid, 3);
  assert.equal(d.report.invalid, 0);
  assert.deepEqual(d.report.errors, []);
  assert.equal(d.report.stats.turns, 4);
  assert.equal(d.report.stats.tokens.buckets.reduce((a, b) => a + b.count, 0), 3);
  assert.ok(!('path' in d), 'the server path is not shown');

  // the admin's own, private: the admin reads it (docs/api.md, who sees what)
  const pv = await srv.api('GET', `/api/v1/datasets/${d.id}/preview?n=2`, { token: admin });
  assert.equal(pv.status, 200, pv.text);
  assert.equal(pv.json.records.length, 2);
  assert.equal(pv.json.records[0].output, 'chat');

  const dl = await srv.api('GET', '/api/v1/datasets/fr-basics/download', { token: admin });
  assert.equal(dl.status, 200);
  assert.equal(dl.text, ALPACA);
  assert.match(dl.headers.get('content-disposition'), /filename="train.json"/);

  const list = await srv.api('GET', '/api/v1/datasets', { token: admin });
  assert.ok(list.json.items.some((x) => x.name === 'fr-basics' && !('errors' in x.report)));
  const theirs = await srv.api('GET', '/api/v1/datasets', { token: user });
  assert.ok(!theirs.json.items.some((x) => x.name === 'fr-basics'), 'private to its owner until shared');

  // a task records who did it
  const tasks = await srv.api('GET', '/api/v1/tasks', { token: admin });
  assert.ok(tasks.json.items.some((t) => t.kind === 'dataset.create' && t.target === `dataset:${d.id}`), tasks.text);
});

test('bad records are reported by number and reason; the dataset is kept as invalid', async () => {
  const lines = [
    { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
    { messages: [{ role: 'assistant', content: 'first' }, { role: 'user', content: 'second' }] },
    { messages: [{ role: 'user', content: 'unanswered' }] },
  ].map((x) => JSON.stringify(x));
  lines.push('{"messages": [broken');
  const r = await upload({ name: 'chat-bad', file_name: 'chat.jsonl' }, lines.join('\n') + '\n');
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.state, 'invalid');
  assert.equal(r.json.format, 'openai');
  assert.equal(r.json.records, 4);
  assert.equal(r.json.report.invalid, 3);
  const errs = r.json.report.errors;
  assert.deepEqual(errs.map((e) => e.record), [2, 3, 4]);
  assert.match(errs[0].reason, /wrong role order at messages\[0\]: expected user/);
  assert.match(errs[1].reason, /must end with an answer/);
  assert.match(errs[2].reason, /line 4 is not valid JSON/);
});

test('CSV with a column mapping', async () => {
  const csv = 'question,answer,sys\n"Hello, world","Hi ""there""",be kind\n"multi\nline",ok,\n';
  const r = await upload({ name: 'csv-set', file_name: 'qa.csv', instruction: 'question', output: 'answer', system: 'sys' }, csv,
    { type: 'text/csv' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.file_type, 'csv');
  assert.equal(r.json.state, 'valid');
  assert.equal(r.json.records, 2);
  assert.deepEqual(r.json.columns, { instruction: 'question', output: 'answer', system: 'sys' });
  const pv = await srv.api('GET', `/api/v1/datasets/${r.json.id}/preview`, { token: admin });
  assert.equal(pv.json.records[0].instruction, 'Hello, world');
  assert.equal(pv.json.records[0].output, 'Hi "there"');
  assert.equal(pv.json.records[1].instruction, 'multi\nline');

  const unmapped = await upload({ name: 'csv-unmapped', file_name: 'qa.csv' }, csv);
  assert.equal(unmapped.status, 201);
  assert.equal(unmapped.json.state, 'invalid');
  assert.match(unmapped.json.report.errors[0].reason, /no column 'instruction'/);
});

test('bad uploads: each refused with the field named, nothing half-written', async () => {
  const before = (await srv.api('GET', '/api/v1/datasets', { token: admin })).json.items.length;
  assertError(await upload({ file_name: 'x.json' }, ALPACA), 400, 'invalid_field', 'name');
  assertError(await upload({ name: '../etc', file_name: 'x.json' }, ALPACA), 400, 'invalid_field', 'name');
  assertError(await upload({ name: 'ok', format: 'yaml' }, ALPACA), 400, 'invalid_field', 'format');
  assertError(await upload({ name: 'empty' }, ''), 400, 'invalid_field', 'body');
  assertError(await upload({ name: 'fr-basics' }, ALPACA), 409, 'conflict', 'name');
  const big = await upload({ name: 'too-big', file_name: 'big.jsonl' }, 'x'.repeat(70000));
  assertError(big, 413, 'payload_too_large');
  assertError(await srv.api('GET', '/api/v1/datasets/fr-basics/preview?n=0', { token: admin }), 400, 'invalid_field', 'n');
  assertError(await srv.api('GET', '/api/v1/datasets/nope', { token: admin }), 404, 'not_found');
  assertError(await srv.api('GET', '/api/v1/datasets/nope/download', { token: admin }), 404, 'not_found');
  assertError(await srv.api('GET', '/api/v1/datasets'), 401, 'unauthorized');
  const after = (await srv.api('GET', '/api/v1/datasets', { token: admin })).json.items.length;
  assert.equal(after, before);
});

test('a hostile file name stays inside the datasets folder', async () => {
  const r = await upload({ name: 'hostile', file_name: '../../../etc/passwd.json' }, ALPACA);
  assert.equal(r.status, 201, r.text);
  assert.doesNotMatch(r.json.file_name, /\//);
  assert.ok(!r.json.file_name.startsWith('.'));
  const files = readdirSync(`${srv.dir}/datasets/${r.json.id}`);
  assert.deepEqual(files, [r.json.file_name]);
});

test('only the owner or an admin deletes; the file goes with the record', async () => {
  const mine = await upload({ name: 'danas', file_name: 'd.json' }, ALPACA, { token: user });
  assert.equal(mine.status, 201, mine.text);
  assert.equal(mine.json.created_by, 'dana');
  // someone else's private dataset is as good as absent (a shared one: 403, see authz.test.mjs)
  assertError(await srv.api('DELETE', '/api/v1/datasets/fr-basics', { token: user }), 404, 'not_found');
  const del = await srv.api('DELETE', `/api/v1/datasets/${mine.json.id}`, { token: user });
  assert.equal(del.status, 200, del.text);
  assert.ok(!existsSync(`${srv.dir}/datasets/${mine.json.id}`));
  assertError(await srv.api('GET', `/api/v1/datasets/${mine.json.id}`, { token: user }), 404, 'not_found');
  const del2 = await srv.api('DELETE', '/api/v1/datasets/chat-bad', { token: admin });
  assert.equal(del2.status, 200, del2.text);
});

test('datasets survive a kill -9 and restart', async () => {
  const dir = srv.dir;
  await srv.kill9();
  srv = await startServer({ dataDir: dir, env: { AIMAAS_DATASET_MAX_BYTES: '65536' } });
  admin = await srv.login();
  const r = await srv.api('GET', '/api/v1/datasets/fr-basics', { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.records, 3);
  const dl = await srv.api('GET', '/api/v1/datasets/fr-basics/download', { token: admin });
  assert.equal(dl.text, ALPACA);
});

// The control plane answers while uploads are checked: the CSV
// (40,000 columns × 3,000 rows, 281 KB) blocked /healthz for 10.5 s, and a
// large file was held in memory and checked on the main loop. The body now
// goes to disk as it arrives and the check runs on a worker thread.
test('uploads do not stall the control plane: /healthz answers throughout', async () => {
  const big = await startServer(); // the default limit: 256 MiB
  try {
    const tok = await big.login();
    const up = (query, raw, type = 'application/octet-stream') => big.api('POST',
      `/api/v1/datasets?${new URLSearchParams(query)}`, { token: tok, raw, headers: { 'content-type': type } });
    const header = ['instruction', 'output'];
    for (let i = 0; i < 39998; i++) header.push(`c${i}`);
    const csv = Buffer.from(`${header.join(',')}\n${'q,a\n'.repeat(3000)}`);
    // about 110 MB of JSONL; the last record is bad, so the report must reach the end
    const line = Buffer.from(`${JSON.stringify({ instruction: 'x'.repeat(40), input: '', output: 'y'.repeat(40) })}\n`);
    const n = Math.ceil(110e6 / line.length);
    const jsonl = Buffer.concat([Buffer.alloc(line.length * n, line), Buffer.from('{"instruction": "no output"}\n')]);

    const poll = pollHealthz(big.url);
    await new Promise((res) => setTimeout(res, 100));
    const t0 = performance.now();
    const [c, j] = await Promise.all([up({ name: 'wide', file_name: 'wide.csv' }, csv), up({ name: 'big', file_name: 'big.jsonl' }, jsonl)]);
    const took = performance.now() - t0;
    const { lat, bad } = await poll.stop();
    assert.deepEqual(bad, []);

    lat.sort((a, b) => a - b);
    const max = lat[lat.length - 1], p50 = lat[Math.floor(lat.length / 2)];
    const rss = readFileSync(`/proc/${big.proc.pid}/status`, 'utf8').match(/RssAnon:\s+(\d+)/)?.[1];
    console.log(`# uploads took ${took.toFixed(0)} ms; /healthz ${lat.length} answers, p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms; RssAnon ${rss} kB`);
    assert.ok(lat.length >= 5, `only ${lat.length} /healthz answers`);
    assert.ok(max < BOUND, `/healthz took ${max.toFixed(0)} ms during the uploads`);
    assert.equal(c.status, 201, c.text);
    assert.equal(c.json.state, 'invalid');
    assert.equal(c.json.records, 0);
    assert.match(c.json.report.errors[0].reason, /the CSV header has 40000 columns; at most 1024/);
    assert.equal(j.status, 201, j.text);
    assert.equal(j.json.state, 'invalid');
    assert.equal(j.json.records, n + 1);
    assert.equal(j.json.report.valid, n);
    assert.equal(j.json.report.errors.length, 1);
    assert.equal(j.json.report.errors[0].record, n + 1);
    assert.match(j.json.report.errors[0].reason, /missing 'output'/);
    assert.equal(j.json.size_bytes, jsonl.length);
    assert.equal(statSync(`${big.dir}/datasets/${j.json.id}/big.jsonl`).size, jsonl.length);
    assert.deepEqual(readdirSync(`${big.dir}/uploads`), [], 'no upload left behind');

    // reading it back: the preview on the worker, the download sent from the file
    const poll2 = pollHealthz(big.url);
    const pv = await big.api('GET', `/api/v1/datasets/${j.json.id}/preview?n=2`, { token: tok });
    const dl = await fetch(`${big.url}/api/v1/datasets/${j.json.id}/download`, { headers: { authorization: `Bearer ${tok}` } });
    const body = Buffer.from(await dl.arrayBuffer());
    const back = await poll2.stop();
    assert.equal(pv.status, 200, pv.text);
    assert.equal(pv.json.records.length, 2);
    assert.equal(pv.json.records[1].output, 'y'.repeat(40));
    assert.equal(dl.status, 200);
    assert.equal(body.length, jsonl.length);
    assert.ok(body.equals(jsonl));
    const backMax = Math.max(...back.lat);
    console.log(`# preview and download: /healthz ${back.lat.length} answers, max ${backMax.toFixed(1)} ms`);
    assert.ok(backMax < BOUND, `/healthz took ${backMax.toFixed(0)} ms during the download`);

  } finally {
    await big.stop();
    big.cleanup();
  }
});

test('a client that leaves while its upload is checked: nothing kept, nothing left behind', async () => {
  const line = `${JSON.stringify({ instruction: 'i'.repeat(30), output: 'o'.repeat(30) })}\n`;
  const body = Buffer.from(line.repeat(Math.ceil(30e6 / line.length)));
  const big = await startServer();
  try {
    const tok = await big.login();
    const sock = net.connect(big.port, '127.0.0.1');
    await new Promise((res) => sock.once('connect', res));
    sock.write(`POST /api/v1/datasets?name=gone&file_name=g.jsonl HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\n` +
      `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`);
    await new Promise((res) => sock.write(body, res));
    sock.destroy(); // gone before the check can answer
    const t0 = Date.now();
    while (Date.now() - t0 < 20000 && readdirSync(`${big.dir}/uploads`).length) await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(readdirSync(`${big.dir}/uploads`), [], 'the spooled upload is removed');
    const list = await big.api('GET', '/api/v1/datasets', { token: tok });
    assert.equal(list.json.items.length, 0);
    assert.equal((await big.api('GET', '/healthz')).status, 200);
    // the name is free: the same upload, waited for, is kept
    const r = await big.api('POST', '/api/v1/datasets?name=gone&file_name=g.jsonl', { token: tok, raw: body,
      headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.state, 'valid');
  } finally {
    await big.stop();
    big.cleanup();
  }
});
