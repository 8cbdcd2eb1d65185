// Test helpers: start the real aimaas binary on loopback with a fresh data
// dir, talk to it over HTTP, stop it and check it exited cleanly (under the
// sanitizer build, a report or a leak makes the exit code non-zero).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import assert from 'node:assert/strict';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const BIN = resolve(ROOT, process.env.AIMAAS_BIN || 'build/aimaas');
export const ADMIN_PASSWORD = 'admin-password-1';

export function tempDir(prefix = 'aimaas-it-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startServer({ args = [], env = {}, dataDir, adminPassword = ADMIN_PASSWORD, expectFail = false } = {}) {
  const dir = dataDir || tempDir();
  const fullEnv = { ...process.env, ...env };
  if (adminPassword === null) delete fullEnv.AIMAAS_ADMIN_PASSWORD;
  else fullEnv.AIMAAS_ADMIN_PASSWORD = adminPassword;
  // a move the instance state machine refuses is a bug: aimaas aborts, the test sees it
  if (fullEnv.AIMAAS_TEST_ABORT_ON_REFUSED_MOVE === undefined) fullEnv.AIMAAS_TEST_ABORT_ON_REFUSED_MOVE = '1';
  // a machine's /etc/aimaas/aimaas.conf is not the tests' (AIMAAS_CONFIG='': no file)
  if (fullEnv.AIMAAS_CONFIG === undefined) fullEnv.AIMAAS_CONFIG = '';
  const started = process.hrtime.bigint();
  // no console unless a test asks for one: what is built must not change the answers
  const ui = args.includes('--ui-dir') ? [] : ['--ui-dir', ''];
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, ...ui, ...args],
    { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  const port = await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`aimaas did not start:\n${log}`)), 15000);
    const check = () => {
      const m = log.match(/listening on http:\/\/[^\s]+:(\d+)/);
      if (m) { clearTimeout(t); res(Number(m[1])); }
    };
    proc.stdout.on('data', check);
    proc.stderr.on('data', check);
    exited.then((r) => { clearTimeout(t); if (expectFail) res(null); else rej(new Error(`aimaas exited ${JSON.stringify(r)}:\n${log}`)); });
  });
  const startupMs = Number(process.hrtime.bigint() - started) / 1e6;
  const srv = {
    proc, port, dir, startupMs, exited,
    url: port ? `http://127.0.0.1:${port}` : null,
    log: () => log,
    async stop({ clean = true } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const r = await exited;
      if (clean) {
        assert.doesNotMatch(log, /AddressSanitizer|LeakSanitizer|runtime error:/, `sanitizer report:\n${log}`);
        assert.equal(r.code, 0, `aimaas exited with ${JSON.stringify(r)}:\n${log.slice(-4000)}`);
      }
      return r;
    },
    async kill9() {
      proc.kill('SIGKILL');
      return exited;
    },
    cleanup() { rmSync(dir, { recursive: true, force: true }); },
    async api(method, path, { token, body, headers = {}, raw } = {}) {
      const h = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      let payload;
      if (raw !== undefined) payload = raw;
      else if (body !== undefined) { payload = JSON.stringify(body); h['content-type'] ??= 'application/json'; }
      const r = await fetch(srv.url + path, { method, headers: h, body: payload });
      const text = await r.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
      return { status: r.status, headers: r.headers, text, json };
    },
    async login(username = 'admin', password = ADMIN_PASSWORD) {
      const r = await srv.api('POST', '/api/v1/auth/login', { body: { username, password } });
      assert.equal(r.status, 200, r.text);
      return r.json.token;
    },
  };
  return srv;
}

// Sends raw bytes and returns everything the server answers until it closes
// the connection or waitMs passes without more data.
export function rawRequest(port, chunks, { waitMs = 300, gapMs = 0 } = {}) {
  return new Promise((res, rej) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    let timer;
    const done = () => { clearTimeout(timer); s.destroy(); res(out); };
    const arm = () => { clearTimeout(timer); timer = setTimeout(done, waitMs); };
    s.on('data', (d) => { out += d; arm(); });
    s.on('end', done);
    s.on('error', (e) => (out ? done() : rej(e)));
    s.on('connect', async () => {
      for (const c of [].concat(chunks)) {
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
      arm();
    });
  });
}

// The error body every API error must have.
export function assertError(r, status, code, field) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.ok(r.json && r.json.error, `no error object: ${r.text}`);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.json.error.message.length > 0);
  if (code) assert.equal(r.json.error.code, code, r.text);
  if (field !== undefined) assert.equal(r.json.error.field, field, r.text);
  assert.match(r.headers.get('content-type') || '', /application\/json/);
}

export const SIM_BIN = resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim');

export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

// Starts `aimaas-sim serve MODEL ...` on a free loopback port and waits for
// /health to answer 200 (unless waitReady is false).
export async function startSim(model, args = [], { env = {}, waitReady = true } = {}) {
  const port = await freePort();
  const proc = spawn(SIM_BIN, ['serve', model, '--host', '127.0.0.1', '--port', String(port), ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  const sim = {
    proc, port, exited, url: `http://127.0.0.1:${port}`, log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const r = await exited;
      assert.doesNotMatch(log, /AddressSanitizer|LeakSanitizer|runtime error:/, `sanitizer report:\n${log}`);
      assert.equal(r.code, 0, `aimaas-sim exited ${JSON.stringify(r)}:\n${log.slice(-3000)}`);
    },
    async health() {
      try { return (await fetch(`${sim.url}/health`)).status; } catch { return 0; }
    },
  };
  if (waitReady) {
    for (let i = 0; i < 200; i++) {
      if (await sim.health() === 200) return sim;
      if (proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`aimaas-sim did not become ready:\n${log}`);
  }
  return sim;
}

// Polls GET /healthz every ~10 ms from its own thread (so a test busy
// sending a large body does not delay it on our side) until stop(), which
// resolves to { lat: [ms per answer], bad: [non-200 statuses] }.
export function pollHealthz(url) {
  const w = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    let busy = true;
    parentPort.on('message', () => { busy = false; });
    (async () => {
      const lat = [], bad = [];
      while (busy) {
        const t0 = performance.now();
        const r = await fetch(workerData + '/healthz');
        await r.text();
        lat.push(performance.now() - t0);
        if (r.status !== 200) bad.push(r.status);
        await new Promise((res) => setTimeout(res, 10));
      }
      parentPort.postMessage({ lat, bad });
    })();`, { eval: true, workerData: url });
  const done = new Promise((res) => w.once('message', res));
  return {
    async stop() {
      w.postMessage('stop');
      const r = await done;
      await w.terminate();
      return r;
    },
  };
}

// Polls fn until it returns something truthy (returned), for up to ms;
// then throws "never <what>" with the tail of the server's log.
export async function waitUntil(srv, what, fn, ms = 20000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 40));
  }
  throw new Error(`never ${what}\n${srv.log().slice(-3000)}`);
}

// Registers modelsDir/Qwen2.5-7B-Instruct and deploys it as 'qwen' on the
// simulator (no pause between tokens); resolves with the deployment once a
// replica runs.
export async function deployQwen(srv, T, modelsDir) {
  let r = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(modelsDir, 'Qwen2.5-7B-Instruct') } });
  assert.equal(r.status, 201, r.text);
  r = await srv.api('POST', '/api/v1/deployments', { token: T,
    body: { name: 'qwen', model: 'Qwen2.5-7B-Instruct', engine: 'aimaas-sim', engine_args: ['--sim-itl-ms', '0'] } });
  assert.equal(r.status, 201, r.text);
  let d;
  for (let i = 0; i < 600; i++) {
    d = (await srv.api('GET', '/api/v1/deployments/qwen', { token: T })).json;
    if (d.state === 'running' && d.instances.some((x) => x.state === 'running')) return d;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`qwen never ran: ${JSON.stringify(d)}`);
}
