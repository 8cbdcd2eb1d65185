// Names that are only labels take letters of any script: a Chinese username
// signs in, is the actor of her tasks and the owner of her dataset with a
// Chinese name; a display name shows beside the login. Invisible, spacing and
// punctuation characters are refused by field, in the asker's language.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError } from './lib.mjs';

let srv, admin;
before(async () => { srv = await startServer(); admin = await srv.login(); });
after(async () => { await srv.stop(); srv.cleanup(); });

test('a Chinese username signs in, with a display name; her dataset has a Chinese name', async () => {
  const u = await srv.api('POST', '/api/v1/users', { token: admin, body: { username: '张三', password: 'zhang-password-1', display_name: '张三（客服部）' } });
  assert.equal(u.status, 201, JSON.stringify(u.json));
  assert.equal(u.json.username, '张三');
  const tok = await srv.login('张三', 'zhang-password-1');
  const me = await srv.api('GET', '/api/v1/auth/me', { token: tok });
  assert.equal(me.json.username, '张三');
  assert.equal(me.json.display_name, '张三（客服部）');
  const raw = Buffer.from(JSON.stringify([{ instruction: '你好', input: '', output: '您好！' }]));
  const ds = await srv.api('POST', `/api/v1/datasets?${new URLSearchParams({ name: '客服问答', format: 'alpaca', file_name: '客服问答.json' })}`,
    { token: tok, raw, headers: { 'content-type': 'application/json' } });
  assert.equal(ds.status, 201, JSON.stringify(ds.json));
  assert.equal(ds.json.name, '客服问答');
  assert.equal((await srv.api('GET', `/api/v1/datasets/${encodeURIComponent('客服问答')}`, { token: tok })).json.id, ds.json.id);
  const tasks = await srv.api('GET', '/api/v1/tasks?limit=5', { token: admin });
  assert.ok(tasks.json.items.some((t) => t.actor === '张三' && t.kind === 'dataset.create'), 'her task names her');
  // 64 characters is the limit, in characters, not bytes
  const long = '张'.repeat(64);
  assert.equal((await srv.api('POST', '/api/v1/users', { token: admin, body: { username: long, password: 'long-password-1' } })).status, 201);
  assert.equal((await srv.api('GET', '/api/v1/auth/me', { token: await srv.login(long, 'long-password-1') })).json.username, long);
  assertError(await srv.api('POST', '/api/v1/users', { token: admin, body: { username: `${long}张`, password: 'long-password-1' } }),
    400, 'invalid_field', 'username');
});

test('spaces, invisible marks and punctuation are refused by field, in Chinese when asked', async () => {
  for (const name of ['张 三', '张\u3000三', 'ab\u200bc', 'ab\u202ec', '张三。', 'a/b', '-ab']) {
    const r = await srv.api('POST', '/api/v1/users', { token: admin, body: { username: name, password: 'some-password-1' },
      headers: { 'accept-language': 'zh-CN' } });
    assertError(r, 400, 'invalid_field', 'username');
    assert.match(r.json.error.message, /必须是 1 到 64 个字母/, name);
  }
  const bad = await srv.api('POST', `/api/v1/datasets?${new URLSearchParams({ name: '客服 问答', file_name: 'x.json' })}`,
    { token: admin, raw: Buffer.from('[]'), headers: { 'content-type': 'application/json' } });
  assertError(bad, 400, 'invalid_field', 'name');
});
