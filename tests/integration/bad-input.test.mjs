// Bad input at every endpoint: each gets the right status and the error
// body, and the server keeps running (under the sanitizer build, stop()
// fails on any report).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError } from './lib.mjs';

let srv, admin, user, userId;

// Every route, with a valid body for those that take one and the bad
// variants that must be refused with the field named.
const ROUTES = [
  { m: 'GET', p: '/api/v1/auth/me', access: 'user' },
  { m: 'POST', p: '/api/v1/auth/logout', access: 'user', body: {} },
  { m: 'PUT', p: '/api/v1/auth/password', access: 'user', body: { current_password: 'x', new_password: 'y' },
    bad: [[{ current_password: 1, new_password: 'abcdefgh1' }, 'current_password'],
          [{ current_password: 'x' }, 'new_password'],
          [{ current_password: 'wrong-one', new_password: 'short' }, 'new_password']] },
  { m: 'GET', p: '/api/v1/tokens', access: 'user' },
  { m: 'POST', p: '/api/v1/tokens', access: 'user', body: { name: 't' },
    bad: [[{ name: 5 }, 'name'], [{}, 'name'], [{ name: '' }, 'name'], [{ name: 'x', expires_in_days: '7' }, 'expires_in_days'],
          [{ name: 'x', expires_in_days: 0 }, 'expires_in_days'], [{ name: 'x', secret: true }, 'secret']] },
  { m: 'DELETE', p: '/api/v1/tokens/999999', access: 'user', missing: true },
  { m: 'GET', p: '/api/v1/users', access: 'admin' },
  { m: 'POST', p: '/api/v1/users', access: 'admin', body: { username: 'x', password: 'password1' },
    bad: [[{ username: 7, password: 'password1' }, 'username'], [{ password: 'password1' }, 'username'],
          [{ username: 'bob' }, 'password'], [{ username: 'bob', password: 'short' }, 'password'],
          [{ username: 'b b', password: 'password1' }, 'username'], [{ username: 'bob', password: 'password1', role: 'root' }, 'role'],
          [{ username: 'bob', password: 'password1', role: 1 }, 'role'], [{ username: 'bob', password: 'password1', admin: true }, 'admin'],
          [{ username: 'x'.repeat(65), password: 'password1' }, 'username']] },
  { m: 'GET', p: '/api/v1/users/USER', access: 'admin' },
  { m: 'PATCH', p: '/api/v1/users/USER', access: 'admin', body: {},
    bad: [[{ disabled: 'yes' }, 'disabled'], [{ role: 'god' }, 'role'], [{ display_name: [] }, 'display_name'],
          [{ password: 'short' }, 'password'], [{ username: 'renamed' }, 'username']] },
  { m: 'DELETE', p: '/api/v1/users/999999', access: 'admin', missing: true },
  { m: 'GET', p: '/api/v1/clusters', access: 'user' },
  { m: 'GET', p: '/api/v1/nodes', access: 'user' },
  { m: 'GET', p: '/api/v1/nodes/local', access: 'user' },
  { m: 'GET', p: '/api/v1/gpus', access: 'user' },
  { m: 'GET', p: '/api/v1/gpus/GPU-sim-0', access: 'user' },
  { m: 'GET', p: '/api/v1/tasks', access: 'user' },
  { m: 'GET', p: '/api/v1/tasks/1', access: 'user' },
];

const path = (r) => r.p.replace('USER', String(userId));

before(async () => {
  srv = await startServer({ args: ['--sim-gpus', '2x24GiB:NVIDIA GeForce RTX 4090'] });
  admin = await srv.login();
  const u = await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'user1', password: 'user1-password' } });
  userId = u.json.id;
  user = await srv.login('user1', 'user1-password');
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('no token: 401 on every non-public endpoint', async () => {
  for (const r of ROUTES) {
    const res = await srv.api(r.m, path(r), r.body ? { body: r.body } : {});
    assertError(res, 401, 'unauthorized');
    assert.match(res.headers.get('www-authenticate'), /Bearer/);
  }
  assertError(await srv.api('GET', '/api/v1/nodes', { headers: { authorization: 'Basic abc' } }), 401);
  assertError(await srv.api('GET', '/api/v1/nodes', { token: 'ams_not-a-real-token-at-all-123' }), 401);
});

test("a user's token on an admin endpoint: 403", async () => {
  for (const r of ROUTES.filter((x) => x.access === 'admin')) {
    const res = await srv.api(r.m, path(r), r.body ? { token: user, body: r.body } : { token: user });
    assertError(res, 403, 'forbidden');
  }
});

test('unknown routes: 404; wrong methods: 405 with Allow', async () => {
  assertError(await srv.api('GET', '/api/v1/nope', { token: admin }), 404, 'not_found');
  assertError(await srv.api('GET', '/nope'), 404, 'not_found');
  assertError(await srv.api('GET', '/api/v1/users/1/extra', { token: admin }), 404);
  for (const [m, p, allow] of [['DELETE', '/api/v1/nodes', 'GET'], ['PUT', '/api/v1/users', 'GET, POST'],
    ['POST', '/healthz', 'GET'], ['PATCH', '/api/v1/tokens', 'GET, POST'], ['GET', '/api/v1/auth/login', 'POST']]) {
    const res = await srv.api(m, p, { token: admin });
    assertError(res, 405, 'method_not_allowed');
    assert.equal(res.headers.get('allow'), allow);
  }
  assertError(await srv.api('GET', '/api/v1/users/%zz', { token: admin }), 400);
});

test('malformed JSON, non-objects, wrong content type, 10 MB bodies', async () => {
  const big = 'x'.repeat(10 * 1024 * 1024);
  for (const r of ROUTES.filter((x) => x.body)) {
    const token = r.access === 'admin' ? admin : user;
    for (const raw of ['{', '{"a":', 'nul', '[1,2]', '"str"', '{"a":1,"a":2}', '\u0000']) {
      const res = await srv.api(r.m, path(r), { token, raw, headers: { 'content-type': 'application/json' } });
      assertError(res, 400, 'malformed_json');
    }
    assertError(await srv.api(r.m, path(r), { token, raw: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415, 'unsupported_media_type');
    assertError(await srv.api(r.m, path(r), { token, raw: '{}', headers: { 'content-type': 'text/plain' } }), 415);
    assertError(await srv.api(r.m, path(r), { token, raw: big, headers: { 'content-type': 'application/json' } }), 413,
      'payload_too_large');
  }
  // also on an unauthenticated public route
  assertError(await srv.api('POST', '/api/v1/auth/login', { raw: big, headers: { 'content-type': 'application/json' } }), 413);
  assertError(await srv.api('POST', '/api/v1/auth/login', { raw: '{"username":' , headers: { 'content-type': 'application/json' } }), 400, 'malformed_json');
});

test('wrong types, missing and unknown fields name the field', async () => {
  for (const r of ROUTES.filter((x) => x.bad)) {
    const token = r.access === 'admin' ? admin : user;
    for (const [body, field] of r.bad) {
      const res = await srv.api(r.m, path(r), { token, body });
      assertError(res, 400, 'invalid_field', field);
    }
  }
  for (const [body, field] of [[{ username: 5, password: 'x' }, 'username'], [{ username: 'admin' }, 'password'],
    [{ password: 'x' }, 'username'], [{ username: 'admin', password: 'x', otp: 1 }, 'otp']]) {
    assertError(await srv.api('POST', '/api/v1/auth/login', { body }), 400, 'invalid_field', field);
  }
});

test('missing records: 404; query parameters are checked', async () => {
  for (const r of ROUTES.filter((x) => x.missing)) {
    const token = r.access === 'admin' ? admin : user;
    assertError(await srv.api(r.m, path(r), { token }), 404, 'not_found');
  }
  assertError(await srv.api('GET', '/api/v1/users/abc', { token: admin }), 404);
  assertError(await srv.api('GET', '/api/v1/tasks/0', { token: admin }), 404);
  assertError(await srv.api('GET', '/api/v1/nodes/elsewhere', { token: admin }), 404);
  assertError(await srv.api('GET', '/api/v1/gpus/GPU-nope', { token: admin }), 404);
  assertError(await srv.api('GET', '/api/v1/tasks?limit=0', { token: admin }), 400, 'invalid_field', 'limit');
  assertError(await srv.api('GET', '/api/v1/tasks?limit=abc', { token: admin }), 400, 'invalid_field', 'limit');
  assertError(await srv.api('GET', '/api/v1/tasks?offset=-1', { token: admin }), 400, 'invalid_field', 'offset');
  assertError(await srv.api('GET', '/api/v1/tasks?state=done', { token: admin }), 400, 'invalid_field', 'state');
  assertError(await srv.api('GET', '/api/v1/users?limit=1000', { token: admin }), 400, 'invalid_field', 'limit');
});

test('failed calls leave failed tasks, never half-written records', async () => {
  const before = await srv.api('GET', '/api/v1/users?limit=500', { token: admin });
  const dup = await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'USER1', password: 'password-1' } });
  assertError(dup, 409, 'conflict', 'username');
  const taskId = dup.headers.get('x-task-id');
  assert.ok(taskId);
  const task = await srv.api('GET', `/api/v1/tasks/${taskId}`, { token: admin });
  assert.equal(task.json.state, 'failed');
  assert.equal(task.json.kind, 'user.create');
  assert.match(task.json.message, /already exists/);
  const afterList = await srv.api('GET', '/api/v1/users?limit=500', { token: admin });
  assert.equal(afterList.json.total, before.json.total);
  // a user sees only their own tasks
  const mine = await srv.api('GET', '/api/v1/tasks?limit=500', { token: user });
  assert.ok(mine.json.items.every((t) => t.actor === 'user1'));
  assertError(await srv.api('GET', `/api/v1/tasks/${taskId}`, { token: user }), 404);
});

test('the server is still healthy afterwards', async () => {
  const h = await srv.api('GET', '/healthz');
  assert.equal(h.status, 200);
  const me = await srv.api('GET', '/api/v1/auth/me', { token: admin });
  assert.equal(me.status, 200);
});
