// The console's files at /: index.html for app routes, long-cached hashed
// assets, ETag revalidation, security headers, nothing outside the folder,
// and the API and gateway untouched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, symlinkSync, utimesSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { startServer, tempDir, rawRequest, assertError } from './lib.mjs';

let srv, ui, BIG;
const INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-3f2a1b.js"></script></head><body></body></html>';

before(async () => {
  ui = tempDir('aimaas-ui-');
  mkdirSync(join(ui, 'assets'));
  writeFileSync(join(ui, 'index.html'), INDEX);
  writeFileSync(join(ui, 'assets', 'app-3f2a1b.js'), 'console.log("aimaas")');
  writeFileSync(join(ui, 'assets', 'app-3f2a1b.css'), 'body{}');
  writeFileSync(join(ui, 'favicon.svg'), '<svg/>');
  BIG = `console.log(${JSON.stringify('aimaas '.repeat(4000))});`;
  writeFileSync(join(ui, 'assets', 'big-9a8b7c.js'), BIG);
  writeFileSync(join(ui, 'assets', 'big-9a8b7c.js.gz'), gzipSync(BIG, { level: 9 }));
  writeFileSync(join(ui, 'assets', 'stale-1.js'), 'new()');
  writeFileSync(join(ui, 'assets', 'stale-1.js.gz'), gzipSync('old()'));
  utimesSync(join(ui, 'assets', 'stale-1.js.gz'), new Date(2000, 1, 1), new Date(2000, 1, 1));
  symlinkSync('/etc/hostname', join(ui, 'assets', 'leak-1.js.gz'));
  writeFileSync(join(ui, 'assets', 'leak-1.js'), 'leak()');
  writeFileSync(join(ui, '.secret'), 'hidden');
  symlinkSync('/etc/passwd', join(ui, 'passwd.txt'));
  srv = await startServer({ args: ['--ui-dir', ui] });
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('index.html at / and for every app route, revalidated with its ETag', async () => {
  for (const p of ['/', '/deployments', '/finetune/jobs/3', '/login']) {
    const r = await fetch(srv.url + p);
    assert.equal(r.status, 200, p);
    assert.equal(await r.text(), INDEX);
    assert.match(r.headers.get('content-type'), /^text\/html/);
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
  }
  const first = await fetch(srv.url + '/');
  const again = await fetch(srv.url + '/', { headers: { 'if-none-match': first.headers.get('etag') } });
  assert.equal(again.status, 304);
});

test('hashed assets are cached for a year with the right types', async () => {
  const js = await fetch(srv.url + '/assets/app-3f2a1b.js');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal((await fetch(srv.url + '/assets/app-3f2a1b.css')).headers.get('content-type'), 'text/css; charset=utf-8');
  assert.equal((await fetch(srv.url + '/favicon.svg')).headers.get('content-type'), 'image/svg+xml');
  // a missing asset is a 404, never index.html (a stale hash must not load HTML as JS)
  assertError(await srv.api('GET', '/assets/app-000000.js'), 404, 'not_found');
  assertError(await srv.api('GET', '/missing.png'), 404, 'not_found');
});

test("the build's .gz beside an asset is sent to clients that take gzip, and only to them", async () => {
  const head = (extra) => `GET /assets/big-9a8b7c.js HTTP/1.1\r\nHost: x\r\n${extra}Connection: close\r\n\r\n`;
  const gz = await rawRequest(srv.port, head('Accept-Encoding: gzip, deflate, br\r\n'));
  assert.match(gz, /\r\ncontent-encoding: gzip\r\n/i);
  assert.match(gz, /\r\nvary: Accept-Encoding\r\n/i);
  const len = Number(gz.match(/\r\ncontent-length: (\d+)/i)[1]);
  assert.ok(len < BIG.length / 10, `compressed: ${len} of ${BIG.length} bytes`);
  const plain = await rawRequest(srv.port, head(''));
  assert.doesNotMatch(plain, /content-encoding/i);
  assert.match(plain, /\r\nvary: Accept-Encoding\r\n/i);
  assert.ok(plain.endsWith(BIG));
  const refused = await rawRequest(srv.port, head('Accept-Encoding: gzip;q=0, identity\r\n'));
  assert.doesNotMatch(refused, /content-encoding/i);
  // fetch decompresses: the same bytes either way; each variant has its own ETag
  const r = await fetch(srv.url + '/assets/big-9a8b7c.js');
  assert.equal(await r.text(), BIG);
  const etagGz = r.headers.get('etag');
  assert.match(etagGz, /-gz"$/);
  assert.equal((await fetch(srv.url + '/assets/big-9a8b7c.js', { headers: { 'if-none-match': etagGz } })).status, 304);
  // a .gz older than its file, or a link, is not used
  assert.equal(await (await fetch(srv.url + '/assets/stale-1.js')).text(), 'new()');
  assert.equal(await (await fetch(srv.url + '/assets/leak-1.js')).text(), 'leak()');
});

test('nothing outside the folder, no hidden files; the API and gateway are not the console', async () => {
  assertError(await srv.api('GET', '/passwd.txt'), 404, 'not_found');
  assertError(await srv.api('GET', '/.secret'), 404, 'not_found');
  for (const p of ['/../../etc/passwd', '/assets/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/assets//app-3f2a1b.js']) {
    const out = await rawRequest(srv.port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.doesNotMatch(out, /root:/, p);
    assert.doesNotMatch(out, /^HTTP\/1.1 200/, p);
  }
  assertError(await srv.api('GET', '/api/v1/nope'), 404, 'not_found');
  assertError(await srv.api('POST', '/deployments', { body: {} }), 404, 'not_found');
  const v1 = await srv.api('GET', '/v1/models');
  assert.equal(v1.status, 401);
});

test('without a console, / says how to get one', async () => {
  const s2 = await startServer({ args: ['--ui-dir', ''] });
  try {
    const r = await fetch(s2.url + '/');
    assert.equal(r.status, 200);
    assert.match(await r.text(), /web console is not installed/);
    assertError(await s2.api('GET', '/deployments'), 404, 'not_found');
  } finally {
    await s2.stop();
    s2.cleanup();
  }
});
