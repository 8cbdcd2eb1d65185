// The server's life: start, health, login, inventory, restart, one instance per data dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { BIN, startServer, ADMIN_PASSWORD, tempDir } from './lib.mjs';

test('help and version', () => {
  const help = spawnSync(BIN, ['--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /serve/);
  const sh = spawnSync(BIN, ['serve', '--help'], { encoding: 'utf8' });
  assert.equal(sh.status, 0);
  for (const flag of ['--listen', '--data-dir', '--log-level', '--model-root', '--sim-gpus', 'AIMAAS_LISTEN', 'AIMAAS_ADMIN_PASSWORD'])
    assert.ok(sh.stdout.includes(flag), `serve --help lacks ${flag}`);
  assert.match(spawnSync(BIN, ['version'], { encoding: 'utf8' }).stdout, /^aimaas \d+\.\d+\.\d+/);
  const bad = spawnSync(BIN, ['serve', '--no-such-flag'], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  const badDir = tempDir(); // its own: a shared one may hold a newer binary's database
  const badSim = spawnSync(BIN, ['serve', '--sim-gpus', '3xlots', '--data-dir', badDir], { encoding: 'utf8' });
  rmSync(badDir, { recursive: true, force: true });
  assert.notEqual(badSim.status, 0);
  assert.match(badSim.stderr, /sim-gpus/);
});

test('healthz, login, nodes with simulated GPUs, metrics', async () => {
  // --access-log: successful calls logged at INFO too (the default: DEBUG)
  const srv = await startServer({ args: ['--sim-gpus', '4x11GiB:NVIDIA GeForce RTX 2080 Ti', '--sim-gpus', '2x80GiB:NVIDIA A100-SXM4-80GB', '--access-log'] });
  try {
    const h = await srv.api('GET', '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.json.status, 'ok');
    const token = await srv.login();
    const me = await srv.api('GET', '/api/v1/auth/me', { token });
    assert.equal(me.json.username, 'admin');
    assert.equal(me.json.role, 'admin');
    assert.equal(me.json.password_hash, undefined);

    const nodes = await srv.api('GET', '/api/v1/nodes', { token });
    assert.equal(nodes.status, 200);
    assert.equal(nodes.json.items.length, 1);
    const node = nodes.json.items[0];
    assert.equal(node.id, 'local');
    assert.equal(node.cluster, 'local');
    assert.equal(node.state, 'ready');
    assert.equal(node.gpu_count, 6);
    assert.equal(node.simulated_gpu_count, 6);
    const g = node.gpus;
    assert.deepEqual(g.map((x) => x.index), [0, 1, 2, 3, 4, 5]);
    assert.equal(g[0].name, 'NVIDIA GeForce RTX 2080 Ti');
    assert.equal(g[0].simulated, true);
    assert.equal(g[0].compute_capability, '7.5');
    assert.equal(g[0].bf16, false);
    assert.equal(g[0].memory.total, 11 * 1024 ** 3);
    assert.equal(g[0].memory.free, 11 * 1024 ** 3);
    assert.equal(g[0].memory.reserved, 0);
    assert.equal(g[4].compute_capability, '8.0');
    assert.equal(g[4].bf16, true);

    const one = await srv.api('GET', '/api/v1/nodes/local', { token });
    assert.equal(one.json.gpus.length, 6);
    const gpus = await srv.api('GET', '/api/v1/gpus', { token });
    assert.equal(gpus.json.items.length, 6);
    const gpu = await srv.api('GET', `/api/v1/gpus/${g[5].id}`, { token });
    assert.equal(gpu.json.index, 5);
    const clusters = await srv.api('GET', '/api/v1/clusters', { token });
    assert.equal(clusters.json.items[0].node_count, 1);

    const m = await srv.api('GET', '/metrics', { token }); // an admin's token (or the metrics token)
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type'), /text\/plain/);
    assert.match(m.text, /aimaas_build_info\{version="[^"]+",commit="[^"]+"\} 1/);
    assert.match(m.text, /aimaas_http_requests_total\{method="GET",route="\/api\/v1\/nodes",status="200"\} 1/);
    assert.match(m.text, /aimaas_http_requests_total\{method="POST",route="\/api\/v1\/auth\/login",status="200"\} 1/);
    assert.match(m.text, /aimaas_http_request_duration_seconds_bucket\{method="GET",route="\/healthz",le="\+Inf"\} 1/);
    assert.match(m.text, /aimaas_gpu_memory_bytes\{node="local",gpu="0",uuid="GPU-sim-0",state="total"\} 11811160064/);
    assert.match(srv.log(), /access: 127\.0\.0\.1 "GET \/api\/v1\/nodes" 200/);
    assert.ok(srv.startupMs < 3000, `startup took ${srv.startupMs} ms`);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('users, tokens and tasks survive a restart; a second instance is refused', async () => {
  const srv = await startServer();
  let pat, userId;
  try {
    const token = await srv.login();
    const u = await srv.api('POST', '/api/v1/users', { token, body: { username: 'alice', password: 'alice-password' } });
    assert.equal(u.status, 201);
    userId = u.json.id;
    const t = await srv.api('POST', '/api/v1/tokens', { token, body: { name: 'ci' } });
    assert.equal(t.status, 201);
    pat = t.json.token;
    assert.match(pat, /^amp_/);

    const second = await startServer({ dataDir: srv.dir, expectFail: true });
    const r = await second.exited;
    assert.notEqual(r.code, 0);
    assert.match(second.log(), /already running on data dir/);
  } finally {
    await srv.stop();
  }
  const again = await startServer({ dataDir: srv.dir });
  try {
    const me = await again.api('GET', '/api/v1/auth/me', { token: pat });
    assert.equal(me.status, 200, 'the personal token works after a restart');
    const u = await again.api('GET', `/api/v1/users/${userId}`, { token: pat });
    assert.equal(u.json.username, 'alice');
    const tasks = await again.api('GET', '/api/v1/tasks?kind=user.create', { token: pat });
    assert.equal(tasks.json.total, 1);
    assert.equal(tasks.json.items[0].state, 'succeeded');
    assert.equal(tasks.json.items[0].target, `user:${userId}`);
    const alice = await again.login('alice', 'alice-password');
    assert.ok(alice);
  } finally {
    await again.stop();
    again.cleanup();
  }
});

test('kill -9 loses no committed record', async () => {
  const srv = await startServer();
  const token = await srv.login();
  for (let i = 0; i < 20; i++) {
    const r = await srv.api('POST', '/api/v1/users', { token, body: { username: `u${i}`, password: 'password-123' } });
    assert.equal(r.status, 201);
  }
  await srv.kill9();
  const again = await startServer({ dataDir: srv.dir });
  try {
    const t = await again.login();
    const users = await again.api('GET', '/api/v1/users?limit=100', { token: t });
    assert.equal(users.json.total, 21);
    const tasks = await again.api('GET', '/api/v1/tasks?kind=user.create&state=succeeded', { token: t });
    assert.equal(tasks.json.total, 20, 'every change has its task');
  } finally {
    await again.stop();
    again.cleanup();
  }
});

test('first start without AIMAAS_ADMIN_PASSWORD prints a random one once', async () => {
  const srv = await startServer({ adminPassword: null });
  try {
    const m = srv.log().match(/created user 'admin' with password: (\S+)/);
    assert.ok(m, srv.log());
    await srv.login('admin', m[1]);
    const bad = await srv.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    assert.equal(bad.status, 401);
  } finally {
    await srv.stop();
  }
  const again = await startServer({ dataDir: srv.dir, adminPassword: null });
  try {
    assert.doesNotMatch(again.log(), /created user 'admin'/);
  } finally {
    await again.stop();
    again.cleanup();
  }
});
