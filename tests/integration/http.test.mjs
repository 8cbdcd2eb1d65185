// HTTP framing over raw sockets: pipelining, keep-alive, chunked bodies,
// Expect: 100-continue, oversized heads, HTTP/1.0, request smuggling shapes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, rawRequest } from './lib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv.stop(); srv.cleanup(); });

const statuses = (text) => [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));

test('pipelined requests are answered in order on one connection', async () => {
  const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  const out = await rawRequest(srv.port, req + 'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n' + req);
  assert.deepEqual(statuses(out), [200, 404, 200]);
  assert.doesNotMatch(out, /Connection: close/);
});

test('a chunked JSON body is read', async () => {
  const body = JSON.stringify({ username: 'admin', password: 'admin-password-1' });
  const half = Math.floor(body.length / 2);
  const chunked = `${half.toString(16)}\r\n${body.slice(0, half)}\r\n${(body.length - half).toString(16)};ext=1\r\n${body.slice(half)}\r\n0\r\n\r\n`;
  const out = await rawRequest(srv.port, ['POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', chunked], { gapMs: 30 });
  assert.deepEqual(statuses(out), [200]);
  assert.match(out, /"token":"ams_/);
});

test('Expect: 100-continue gets its interim answer', async () => {
  const body = '{"username":"admin","password":"admin-password-1"}';
  const out = await rawRequest(srv.port, [`POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`, body], { gapMs: 100 });
  assert.deepEqual(statuses(out), [100, 200]);
});

test('a body over the limit is refused before it is read, and the client still gets the answer', async () => {
  const out = await rawRequest(srv.port, ['POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n', 'x'.repeat(65536)]);
  assert.deepEqual(statuses(out), [413]);
  assert.match(out, /"code":"payload_too_large"/);
  assert.match(out, /Connection: close/);
  const chunked = await rawRequest(srv.port, ['POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', `200000\r\n${'x'.repeat(0x200000)}\r\n0\r\n\r\n`]);
  assert.deepEqual(statuses(chunked), [413]);
});

test('malformed heads get JSON errors and a close', async () => {
  const cases = [
    ['GARBAGE\r\n\r\n', 400],
    ['GET / HTTP/2.0\r\n\r\n', 505],
    ['GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n', 400],
    ['POST /api/v1/auth/login HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['POST /api/v1/auth/login HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
    ['POST /api/v1/auth/login HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 400],
    [`GET /healthz HTTP/1.1\r\nX: ${'a'.repeat(20000)}\r\n\r\n`, 431],
    [`GET /${'a'.repeat(3000)} HTTP/1.1\r\n\r\n`, 431],
    ['POST /api/v1/auth/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n', 400],
  ];
  for (const [req, status] of cases) {
    const out = await rawRequest(srv.port, req);
    assert.deepEqual(statuses(out), [status], `${req.slice(0, 60)} -> ${out.slice(0, 200)}`);
    assert.match(out, /Connection: close/);
    assert.match(out, /\{"error":\{"code":"[a-z_]+"/);
  }
});

test('HTTP/1.0 closes unless asked to keep alive', async () => {
  const out = await rawRequest(srv.port, 'GET /healthz HTTP/1.0\r\n\r\n');
  assert.match(out, /^HTTP\/1\.0 200/);
  assert.match(out, /Connection: close/);
  const ka = await rawRequest(srv.port, 'GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n');
  assert.deepEqual(statuses(ka), [200, 200]);
});

test('HEAD answers headers only', async () => {
  const out = await rawRequest(srv.port, 'HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.match(out, /^HTTP\/1\.1 200/);
  assert.match(out, /Content-Length: \d+/);
  assert.ok(out.endsWith('\r\n\r\n'), 'no body after the head');
});

test('many connections at once', async () => {
  const all = await Promise.all(Array.from({ length: 200 }, () => srv.api('GET', '/healthz')));
  assert.ok(all.every((r) => r.status === 200));
});

test('slow clients are cut off: a head that never ends gets 408, an idle connection is closed', async () => {
  const slow = await startServer({ args: ['--header-timeout', '1', '--idle-timeout', '1'] });
  try {
    const t0 = Date.now();
    const out = await rawRequest(slow.port, ['GET /healthz HTTP/1.1\r\n', 'X-Slow: 1\r\n'], { waitMs: 3000, gapMs: 200 });
    assert.deepEqual(statuses(out), [408]);
    assert.match(out, /"code":"request_timeout"/);
    assert.ok(Date.now() - t0 < 2900, 'closed by the server, not by the test');
    const t1 = Date.now();
    const idle = await rawRequest(slow.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { waitMs: 3000 });
    assert.deepEqual(statuses(idle), [200]);
    assert.ok(Date.now() - t1 < 2900, 'an idle keep-alive connection is closed after --idle-timeout');
  } finally {
    await slow.stop();
    slow.cleanup();
  }
});
