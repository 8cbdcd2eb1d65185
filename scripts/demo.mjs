#!/usr/bin/env node
// `make demo`: aimaas on a machine without a GPU, ready for a first answer.
// Starts `aimaas serve --demo` with simulated GPUs (two 24 GiB cards), puts
// demo models in the data dir's model root (real configs and real safetensors
// headers over sparse files, from tests/fixtures/models), registers them, sets
// the simulator (build/aimaas-sim) as the program of the vLLM engine and of
// LLaMA-Factory, and uploads a small Chinese fine-tuning dataset. Everything a
// newcomer then does goes through the console or the API as with real GPUs.
// The console marks the server as a demo on every page.
//
//   node scripts/demo.mjs [--listen HOST:PORT] [--data-dir DIR] [-- aimaas serve flags...]
//
// Idempotent: a second start reuses the data dir (models, dataset and the
// admin password kept in DIR/demo-admin-password, mode 0600).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeModel } from '../tests/fixtures/make-models.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// the chat model, an embedding model and a reranker: what a RAG application
// (Dify, FastGPT, RAGFlow) needs, and a vision-language model
export const DEMO_MODELS = ['Qwen2.5-7B-Instruct', 'Qwen2.5-VL-7B-Instruct', 'bge-large-zh-v1.5', 'bge-reranker-v2-m3'];
export const DEMO_GPUS = '2x24GiB:NVIDIA GeForce RTX 4090';
export const DEMO_DATASET = 'demo-sft-zh';

function args(argv) {
  const o = { listen: '127.0.0.1:8080', dataDir: 'data-demo', extra: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--listen') o.listen = argv[++i];
    else if (argv[i] === '--data-dir') o.dataDir = argv[++i];
    else if (argv[i] === '--') { o.extra = argv.slice(i + 1); break; }
    else { console.error(`demo: unknown argument ${argv[i]}\nusage: node scripts/demo.mjs [--listen HOST:PORT] [--data-dir DIR] [-- flags]`); process.exit(2); }
  }
  if (!o.listen || !o.dataDir) { console.error('demo: --listen and --data-dir take a value'); process.exit(2); }
  return o;
}

// The model folders (once: the fixtures' files plus sparse shards).
function placeModels(root) {
  mkdirSync(root, { recursive: true });
  for (const name of DEMO_MODELS)
    if (!existsSync(join(root, name, 'config.json'))) makeModel(name, root);
}

function password(dataDir) {
  const f = join(dataDir, 'demo-admin-password');
  if (existsSync(f)) return readFileSync(f, 'utf8').trim();
  const p = randomBytes(12).toString('base64url');
  writeFileSync(f, `${p}\n`, { mode: 0o600 });
  return p;
}

// Calls the API as the admin; answers the parsed body, throws on an error.
async function call(base, token, method, path, body, headers = {}) {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body && !Buffer.isBuffer(body) ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await r.text();
  const json = text ? JSON.parse(text) : {};
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${json.error?.message || text}`);
  return json;
}

// What a fresh demo needs in the database; each step skipped when done.
export async function prepare(base, adminPassword, modelRoot, simBin) {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: adminPassword }),
  });
  if (!login.ok) throw new Error(`cannot sign in as admin (${login.status}): was the data dir made by another run with another password?`);
  const { token } = await login.json();
  const engines = await call(base, token, 'GET', '/api/v1/engines');
  const vllm = (engines.items || engines).find((e) => e.name === 'vllm');
  // the demo's GPUs are simulated: a real vLLM could not use them
  if (vllm?.binary !== simBin) await call(base, token, 'PATCH', '/api/v1/engines/vllm', { binary: simBin });
  const lf = (engines.items || engines).find((e) => e.name === 'llamafactory');
  if (lf?.binary !== simBin) await call(base, token, 'PATCH', '/api/v1/engines/llamafactory', { binary: simBin });
  const have = new Set((await call(base, token, 'GET', '/api/v1/models?limit=500')).items.map((m) => m.name));
  for (const name of DEMO_MODELS)
    if (!have.has(name))
      await call(base, token, 'POST', '/api/v1/models', { path: join(modelRoot, name), description: 'demo model (simulated weights)', tags: ['demo'] });
  const sets = new Set((await call(base, token, 'GET', '/api/v1/datasets?limit=500')).items.map((d) => d.name));
  if (!sets.has(DEMO_DATASET)) {
    const q = new URLSearchParams({ name: DEMO_DATASET, format: 'alpaca', file_name: `${DEMO_DATASET}.json` });
    await call(base, token, 'POST', `/api/v1/datasets?${q}`, readFileSync(join(ROOT, 'scripts', 'demo', `${DEMO_DATASET}.json`)),
      { 'content-type': 'application/json' });
    const d = await call(base, token, 'GET', `/api/v1/datasets/${DEMO_DATASET}`);
    if (d.visibility !== 'shared') await call(base, token, 'PATCH', `/api/v1/datasets/${d.id}`, { visibility: 'shared' });
  }
  return token;
}

async function waitHealthy(base, child) {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`aimaas exited (${child.exitCode}) before it was ready`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('aimaas did not answer /healthz within 30 s');
}

async function main() {
  const o = args(process.argv.slice(2));
  const dataDir = resolve(o.dataDir);
  const modelRoot = join(dataDir, 'models');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  placeModels(modelRoot);
  const pw = password(dataDir);
  // (the tests run it on their own builds, e.g. ASan's)
  const bin = resolve(ROOT, process.env.AIMAAS_BIN || 'build/aimaas');
  const simBin = resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim');
  for (const b of [bin, simBin])
    if (!existsSync(b)) { console.error(`demo: ${b} is missing: run make first`); process.exit(1); }
  const env = {
    ...process.env,
    AIMAAS_ADMIN_PASSWORD: pw,
    // the simulated engines stream whole answers at a readable pace
    AIMAAS_SIM_ITL_MS: process.env.AIMAAS_SIM_ITL_MS || '30',
    AIMAAS_SIM_OUTPUT_LEN: process.env.AIMAAS_SIM_OUTPUT_LEN || '160',
  };
  // the source tree's console, whichever build of the binary runs (an ASan
  // build in build/asan/ would look for build/asan/ui)
  const ui = join(ROOT, 'build', 'ui');
  if (!env.AIMAAS_UI_DIR && existsSync(join(ui, 'index.html'))) env.AIMAAS_UI_DIR = ui;
  const child = spawn(bin, ['serve', '--demo', '--listen', o.listen, '--data-dir', dataDir, '--model-root', modelRoot,
    '--sim-gpus', DEMO_GPUS, ...o.extra], { env, stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, sig) => process.exit(code ?? (sig ? 1 : 0)));
  const host = o.listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
  const base = `http://${host}`;
  try {
    await waitHealthy(base, child);
    await prepare(base, pw, modelRoot, simBin);
  } catch (e) {
    console.error(`demo: ${e.message}`);
    child.kill('SIGTERM');
    return;
  }
  console.log([
    '',
    '  aimaas demo (simulated GPUs and engines; answers come from the simulator)',
    `  console:  ${base}/   user: admin   password: ${pw}`,
    `  models:   ${DEMO_MODELS.join(', ')}; dataset: ${DEMO_DATASET}`,
    '  演示模式：GPU 与推理引擎均为模拟，回答由模拟器生成。Ctrl-C 停止。',
    '',
  ].join('\n'));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
