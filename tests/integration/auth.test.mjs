// Sessions, personal tokens, the console cookie with CSRF, login throttling,
// user management and its guard rails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError } from './lib.mjs';

let srv, admin;
before(async () => { srv = await startServer(); admin = await srv.login(); });
after(async () => { await srv.stop(); srv.cleanup(); });

function cookies(res) {
  const out = {};
  for (const c of res.headers.getSetCookie()) {
    const [kv, ...attrs] = c.split(';');
    const [k, v] = kv.split('=');
    out[k.trim()] = { value: v, attrs: attrs.map((a) => a.trim().toLowerCase()) };
  }
  return out;
}

test('login sets an HttpOnly session cookie; cookie writes need the CSRF token', async () => {
  const r = await srv.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-1' } });
  assert.equal(r.status, 200);
  assert.equal(r.json.token_type, 'Bearer');
  const c = cookies(r);
  assert.equal(c.aimaas_session.value, r.json.token);
  assert.ok(c.aimaas_session.attrs.includes('httponly'));
  assert.ok(c.aimaas_session.attrs.includes('samesite=strict'));
  assert.ok(!c.aimaas_csrf.attrs.includes('httponly'));
  assert.equal(c.aimaas_csrf.value, r.json.csrf_token);
  const cookie = `aimaas_session=${c.aimaas_session.value}; aimaas_csrf=${c.aimaas_csrf.value}`;
  const me = await srv.api('GET', '/api/v1/auth/me', { headers: { cookie } });
  assert.equal(me.status, 200);
  assert.equal(me.json.auth, 'session');
  const noCsrf = await srv.api('POST', '/api/v1/tokens', { headers: { cookie }, body: { name: 'x' } });
  assertError(noCsrf, 403, 'forbidden', 'X-CSRF-Token');
  const wrong = await srv.api('POST', '/api/v1/tokens', { headers: { cookie, 'x-csrf-token': 'nope' }, body: { name: 'x' } });
  assertError(wrong, 403);
  const ok = await srv.api('POST', '/api/v1/tokens', { headers: { cookie, 'x-csrf-token': c.aimaas_csrf.value }, body: { name: 'x' } });
  assert.equal(ok.status, 201);
  // a bearer token needs no CSRF token: no browser sends it on its own
  const bearer = await srv.api('POST', '/api/v1/tokens', { token: r.json.token, body: { name: 'y' } });
  assert.equal(bearer.status, 201);
  const out = await srv.api('POST', '/api/v1/auth/logout', { headers: { cookie, 'x-csrf-token': c.aimaas_csrf.value } });
  assert.equal(out.status, 200);
  assert.match(out.headers.getSetCookie().join('\n'), /aimaas_session=;.*Max-Age=0/);
  assertError(await srv.api('GET', '/api/v1/auth/me', { headers: { cookie } }), 401);
});

test('personal tokens: shown once, listed without secret, revoked', async () => {
  const t = await srv.api('POST', '/api/v1/tokens', { token: admin, body: { name: 'script', expires_in_days: 30 } });
  assert.equal(t.status, 201);
  assert.match(t.json.token, /^amp_[A-Za-z0-9_-]{43}$/);
  assert.ok(t.json.expires_at);
  const list = await srv.api('GET', '/api/v1/tokens', { token: admin });
  assert.ok(!list.text.includes(t.json.token), 'the secret is never listed');
  assert.ok(!list.text.includes('token_hash'));
  const mine = list.json.items.find((x) => x.id === t.json.id);
  assert.equal(mine.name, 'script');
  assert.equal(mine.token_hint, t.json.token.slice(0, 8) + '…');
  assert.equal((await srv.api('GET', '/api/v1/auth/me', { token: t.json.token })).json.auth, 'token');
  assertError(await srv.api('POST', '/api/v1/auth/logout', { token: t.json.token }), 400);
  const rev = await srv.api('DELETE', `/api/v1/tokens/${t.json.id}`, { token: admin });
  assert.equal(rev.status, 200);
  assertError(await srv.api('GET', '/api/v1/auth/me', { token: t.json.token }), 401);
  assert.ok(!srv.log().includes(t.json.token), 'secrets never reach the log');
});

test("users manage their own tokens only; admins see everyone's", async () => {
  await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'carol', password: 'carol-password' } });
  const carol = await srv.login('carol', 'carol-password');
  const ct = await srv.api('POST', '/api/v1/tokens', { token: carol, body: { name: 'carol-ci' } });
  const at = await srv.api('POST', '/api/v1/tokens', { token: admin, body: { name: 'admin-ci' } });
  assertError(await srv.api('DELETE', `/api/v1/tokens/${at.json.id}`, { token: carol }), 404);
  const carolList = await srv.api('GET', '/api/v1/tokens?all=true', { token: carol });
  assert.ok(carolList.json.items.every((x) => x.owner === 'carol'));
  const all = await srv.api('GET', '/api/v1/tokens?all=true', { token: admin });
  assert.ok(all.json.items.some((x) => x.owner === 'carol'));
  assert.equal((await srv.api('DELETE', `/api/v1/tokens/${ct.json.id}`, { token: admin })).status, 200);
});

test('password change ends other sessions; wrong current password is refused', async () => {
  await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'dave', password: 'dave-password' } });
  const s1 = await srv.login('dave', 'dave-password');
  const s2 = await srv.login('dave', 'dave-password');
  assertError(await srv.api('PUT', '/api/v1/auth/password', { token: s1, body: { current_password: 'nope-nope', new_password: 'dave-password-2' } }),
    400, 'invalid_field', 'current_password');
  const ok = await srv.api('PUT', '/api/v1/auth/password', { token: s1, body: { current_password: 'dave-password', new_password: 'dave-password-2' } });
  assert.equal(ok.status, 200);
  assert.equal((await srv.api('GET', '/api/v1/auth/me', { token: s1 })).status, 200);
  assertError(await srv.api('GET', '/api/v1/auth/me', { token: s2 }), 401);
  await srv.login('dave', 'dave-password-2');
});

test('failed logins are throttled with Retry-After', async () => {
  await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'eve', password: 'eve-password' } });
  for (let i = 0; i < 5; i++)
    assertError(await srv.api('POST', '/api/v1/auth/login', { body: { username: 'eve', password: `wrong-${i}` } }), 401, 'unauthorized');
  const limited = await srv.api('POST', '/api/v1/auth/login', { body: { username: 'eve', password: 'eve-password' } });
  assertError(limited, 429, 'rate_limited');
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  const unknown = await srv.api('POST', '/api/v1/auth/login', { body: { username: 'nobody', password: 'whatever1' } });
  assert.ok([401, 429].includes(unknown.status));
});

test('user management: roles, disable, last admin, self-delete', async () => {
  const u = await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'frank', password: 'frank-password', display_name: 'Frank' } });
  assert.equal(u.status, 201);
  assert.equal(u.json.role, 'user');
  assert.equal(u.json.disabled, false);
  const frank = await srv.login('frank', 'frank-password');
  assertError(await srv.api('GET', '/api/v1/users', { token: frank }), 403);
  const up = await srv.api('PATCH', `/api/v1/users/${u.json.id}`, { token: admin, body: { role: 'admin', display_name: 'F.' } });
  assert.equal(up.json.role, 'admin');
  assert.equal((await srv.api('GET', '/api/v1/users', { token: frank })).status, 200, 'the role applies at once');
  await srv.api('PATCH', `/api/v1/users/${u.json.id}`, { token: admin, body: { role: 'user' } });
  const dis = await srv.api('PATCH', `/api/v1/users/${u.json.id}`, { token: admin, body: { disabled: true } });
  assert.equal(dis.json.disabled, true);
  assertError(await srv.api('GET', '/api/v1/auth/me', { token: frank }), 401);
  assertError(await srv.api('POST', '/api/v1/auth/login', { body: { username: 'frank', password: 'frank-password' } }), 403);
  const meId = (await srv.api('GET', '/api/v1/auth/me', { token: admin })).json.id;
  assertError(await srv.api('PATCH', `/api/v1/users/${meId}`, { token: admin, body: { role: 'user' } }), 409, 'conflict', 'role');
  assertError(await srv.api('PATCH', `/api/v1/users/${meId}`, { token: admin, body: { disabled: true } }), 409);
  assertError(await srv.api('DELETE', `/api/v1/users/${meId}`, { token: admin }), 409);
  const del = await srv.api('DELETE', `/api/v1/users/${u.json.id}`, { token: admin });
  assert.equal(del.status, 200);
  const again = await srv.api('POST', '/api/v1/users', { token: admin, body: { username: 'frank2', password: 'frank-password' } });
  assert.ok(again.json.id > u.json.id, 'a deleted id is never handed out again');
  await srv.api('DELETE', `/api/v1/users/${again.json.id}`, { token: admin });
  assertError(await srv.api('GET', `/api/v1/users/${u.json.id}`, { token: admin }), 404);
  const tasks = await srv.api('GET', `/api/v1/tasks?target=user:${u.json.id}`, { token: admin });
  const kinds = tasks.json.items.map((t) => `${t.kind}:${t.state}`);
  assert.equal(kinds[0], 'user.delete:succeeded');
  assert.ok(kinds.includes('user.update:succeeded'));
  assert.ok(kinds.includes('auth.login:failed'), 'the refused login of a disabled user is on record');
  assert.ok(kinds.includes('user.create:succeeded'));
});

test('password checks run off the loop: logins in flight do not hold other requests', async () => {
  // each login costs one argon2id check (tens of ms of CPU); on the loop, a
  // /healthz sent meanwhile would wait for at least one of them. Compared in
  // the same run: the /healthz takes less than half the quickest login.
  const t0 = performance.now();
  const logins = [];
  for (let i = 0; i < 8; i++)
    logins.push(srv.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-1' } })
      .then((r) => { assert.equal(r.status, 200); return performance.now() - t0; }));
  await new Promise((r) => setTimeout(r, 5));
  const h0 = performance.now();
  const hz = await srv.api('GET', '/healthz');
  const hzMs = performance.now() - h0;
  assert.equal(hz.status, 200);
  const quickest = Math.min(...(await Promise.all(logins)));
  assert.ok(hzMs < quickest / 2, `/healthz took ${hzMs.toFixed(1)} ms, the quickest login ${quickest.toFixed(1)} ms`);
});
