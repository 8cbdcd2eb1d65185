// The model market (issue 14): the catalog built into aimaas, each build's
// facts fetched from the hub (its file list and config.json, or a GGUF
// header) and judged by the planner on this pool's GPUs; the hubs' search
// with the same verdicts. The pool is the mission's reference server (six
// RTX 2080 Ti of 11 GiB); the fake hub serves real configs with shards
// listed at their real sizes (tests/fixtures/make-models.mjs hubFiles).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertError, startServer, tempDir } from './lib.mjs';
import { startHub } from '../fakes/hub.mjs';
import { hubFiles, makeGguf } from '../fixtures/make-models.mjs';

let hub, srv, T, user;
const sizes = {};

function repo(name, extra = {}) {
  const r = hubFiles(name);
  sizes[name] = r.bytes;
  return { files: r.files, ...extra };
}

before(async () => {
  const gd = tempDir();
  makeGguf(join(gd, 'q.gguf'), { arch: 'qwen3', name: 'Qwen3 8B', ctx: 40960, layers: 36, embd: 4096, heads: 32, kvHeads: 8 });
  const ggufHead = readFileSync(join(gd, 'q.gguf'));
  hub = await startHub({ repos: {
    'Qwen/Qwen2.5-7B-Instruct': repo('Qwen2.5-7B-Instruct', { downloads: 900, license: 'apache-2.0', params: 7615616512 }),
    'Qwen/Qwen2.5-14B-Instruct-AWQ': repo('Qwen2.5-14B-Instruct-AWQ', { downloads: 500 }),
    'Qwen/Qwen3-32B': repo('Qwen3-32B', { downloads: 800 }),
    'Qwen/Qwen3-32B-AWQ': repo('Qwen3-32B-AWQ', { downloads: 700 }),
    'deepseek-ai/DeepSeek-R1-Distill-Qwen-32B': repo('DeepSeek-R1-Distill-Qwen-32B'),
    'casperhansen/deepseek-r1-distill-qwen-32b-awq': repo('DeepSeek-R1-Distill-Qwen-32B-AWQ'),
    'Qwen/Qwen2.5-VL-7B-Instruct': repo('Qwen2.5-VL-7B-Instruct', { task: 'image-text-to-text' }),
    'BAAI/bge-large-zh-v1.5': repo('bge-large-zh-v1.5', { task: 'feature-extraction' }),
    'BAAI/bge-reranker-v2-m3': repo('bge-reranker-v2-m3', { task: 'text-classification' }),
    'Qwen/Qwen3-8B-GGUF': { files: { 'Qwen3-8B-Q4_K_M.gguf': { size: 5027783488, head: ggufHead },
      'Qwen3-8B-Q8_0.gguf': { size: 8709519168, head: ggufHead }, 'README.md': '# gguf' }, tags: ['gguf'] },
  } });
  srv = await startServer({ args: ['--sim-gpus', '6x11GiB:NVIDIA GeForce RTX 2080 Ti'],
    env: { AIMAAS_HF_ENDPOINT: hub.url, AIMAAS_MODELSCOPE_ENDPOINT: hub.msUrl } });
  T = await srv.login();
  const u = await srv.api('POST', '/api/v1/users', { token: T, body: { username: 'li', password: 'a-long-password-1', role: 'user' } });
  assert.equal(u.status, 201, u.text);
  user = await srv.login('li', 'a-long-password-1');
});

after(async () => {
  await srv?.stop();
  srv?.cleanup();
  await hub?.stop();
});

// the catalog once every build's facts are in (pending 0)
async function settled(query) {
  let r;
  for (let i = 0; i < 200; i++) {
    r = await srv.api('GET', `/api/v1/catalog?${query}`, { token: user });
    assert.equal(r.status, 200, r.text);
    if (r.json.pending === 0) return r.json;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.fail(`the catalog kept fetching: ${JSON.stringify(r.json).slice(0, 500)}`);
}

const entry = (c, id) => c.items.find((e) => e.id === id);

test('catalog: the built-in families, with verdicts from the facts fetched from the hub', async () => {
  const first = await srv.api('GET', '/api/v1/catalog?source=huggingface', { token: user });
  assert.equal(first.status, 200, first.text);
  assert.ok(first.json.items.length >= 40, 'the built-in catalog');
  assert.ok(first.json.pending > 0, 'the first look queues the fetches');
  assert.equal(first.json.pool.gpus, 6);
  for (const fam of ['Qwen3', 'Qwen2.5', 'DeepSeek-R1', 'GLM-4', 'Llama 3', 'Qwen2.5-VL', 'InternVL', 'Mistral', 'BGE'])
    assert.ok(first.json.items.some((e) => e.family === fam), fam);

  const c = await settled('source=huggingface');
  // Qwen2.5-7B in BF16: the listed shards' bytes (15.2 GB), the commit resolved, 2 cards of 11 GiB
  const q7 = entry(c, 'qwen2.5-7b-instruct');
  const bf16 = q7.variants[0];
  assert.equal(bf16.repo, 'Qwen/Qwen2.5-7B-Instruct');
  assert.equal(bf16.meta.state, 'ready');
  assert.equal(bf16.meta.bytes, sizes['Qwen2.5-7B-Instruct'] + readFileSync(new URL('../fixtures/models/Qwen2.5-7B-Instruct/config.json', import.meta.url)).length
    + readFileSync(new URL('../fixtures/models/Qwen2.5-7B-Instruct/tokenizer_config.json', import.meta.url)).length
    + Buffer.byteLength(hubFiles('Qwen2.5-7B-Instruct').files['model.safetensors.index.json']));
  assert.match(bf16.meta.commit, /^[0-9a-f]{40}$/);
  assert.equal(bf16.meta.context, 32768);
  assert.equal(bf16.meta.parameters, 7615616512, 'the parameters from the hub\'s safetensors info');
  assert.equal(bf16.meta.license, 'apache-2.0');
  assert.equal(bf16.verdict.state, 'fits_now');
  assert.equal(bf16.verdict.gpus, 2);
  assert.match(bf16.verdict.text, /^fits now on 2 × RTX 2080 Ti/);
  // its AWQ build is not on the fake hub: failed, and says why
  const awq7 = q7.variants[1];
  assert.equal(awq7.meta.state, 'failed');
  assert.match(awq7.meta.error, /Qwen2\.5-7B-Instruct-AWQ was not found/);
  assert.equal(awq7.verdict, undefined);

  // Qwen3-32B: BF16 would need 8 cards (a node here has 6); the AWQ build fits on 4 — the best build
  const q32 = entry(c, 'qwen3-32b');
  assert.equal(q32.variants[0].verdict.state, 'needs');
  assert.equal(q32.variants[0].verdict.gpus, 8);
  assert.match(q32.variants[0].verdict.text, /needs 8 GPUs of 11 GiB .*largest node here has 6/);
  assert.equal(q32.variants[1].verdict.state, 'fits_now');
  assert.equal(q32.variants[1].verdict.gpus, 4);
  assert.equal(q32.variants[1].meta.quantization.method, 'awq');
  assert.equal(q32.verdict.format, 'awq');
  assert.equal(q32.verdict.gpus, 4);
  // the mission's reference set-up: DeepSeek-R1-32B on 4, Qwen2.5-14B on 2, the VL 7B on 2, bge on 1
  assert.equal(entry(c, 'deepseek-r1-distill-qwen-32b').verdict.gpus, 4);
  assert.equal(entry(c, 'deepseek-r1-distill-qwen-32b').verdict.format, 'awq');
  assert.ok(entry(c, 'qwen2.5-14b-instruct').verdict.gpus <= 2);
  // the VL 7B: 4 cards at its 32K context, or 2 with an 8K one (as the reference set-up runs it)
  const vl = entry(c, 'qwen2.5-vl-7b-instruct').verdict;
  assert.equal(vl.gpus, 4);
  assert.deepEqual(vl.shorter, { gpus: 2, max_model_len: 8192 });
  assert.match(vl.text, /fits now on 4 × RTX 2080 Ti; or 2 with an 8K context/);
  assert.equal(entry(c, 'bge-large-zh-v1.5').verdict.gpus, 1);
  assert.equal(entry(c, 'bge-large-zh-v1.5').variants[0].meta.kind, 'embedding');
  assert.equal(entry(c, 'bge-reranker-v2-m3').variants[0].meta.kind, 'rerank');
  // GGUF: the chosen quantisation's header read through a Range request; its real size
  const g = entry(c, 'qwen3-8b').variants.find((v) => v.format === 'gguf');
  assert.equal(g.meta.state, 'ready', JSON.stringify(g.meta));
  assert.equal(g.meta.architecture, 'qwen3');
  assert.equal(g.verdict.state, 'fits_now');
  const ranged = hub.requests.filter((r) => r.url.includes('Q4_K_M') && r.range);
  assert.ok(ranged.length >= 1 && ranged.every((r) => /^bytes=0-\d+$/.test(r.range)), 'only the header was read');
  assert.ok(!hub.requests.some((r) => r.url.includes('Q8_0')), 'one quantisation');
  // nothing refetched on the next look
  const before = hub.requests.length;
  const again = await srv.api('GET', '/api/v1/catalog?source=huggingface', { token: user });
  assert.equal(again.json.pending, 0);
  assert.equal(hub.requests.length, before);
});

test('catalog: filters — words, kind, size, fits this pool — and bad ones named', async () => {
  await settled('source=huggingface');
  const emb = await srv.api('GET', '/api/v1/catalog?source=huggingface&kind=embedding', { token: user });
  assert.ok(emb.json.items.length >= 2 && emb.json.items.every((e) => e.kind === 'embedding'));
  const q = await srv.api('GET', '/api/v1/catalog?source=huggingface&q=deepseek%2032b', { token: user });
  assert.deepEqual(q.json.items.map((e) => e.id), ['deepseek-r1-distill-qwen-32b']);
  const small = await srv.api('GET', '/api/v1/catalog?source=huggingface&max_b=1', { token: user });
  assert.ok(small.json.items.length && small.json.items.every((e) => e.params_b <= 1));
  const fits = await srv.api('GET', '/api/v1/catalog?source=huggingface&fits=true', { token: user });
  assert.ok(fits.json.items.length >= 5);
  assert.ok(fits.json.items.every((e) => ['fits_now', 'fits'].includes(e.verdict?.state)));
  assert.ok(!fits.json.items.some((e) => e.id === 'qwen3-235b-a22b'));
  // ModelScope's ids (a build only on Hugging Face is left out there)
  const ms = await srv.api('GET', '/api/v1/catalog?source=modelscope&q=glm-4-9b-0414', { token: user });
  assert.equal(ms.json.items[0].variants[0].repo, 'ZhipuAI/GLM-4-9B-0414');
  assertError(await srv.api('GET', '/api/v1/catalog?kind=chat', { token: user }), 400, 'invalid_field', 'kind');
  assertError(await srv.api('GET', '/api/v1/catalog?source=github', { token: user }), 400, 'invalid_field', 'source');
  assertError(await srv.api('GET', '/api/v1/catalog?max_b=lots', { token: user }), 400, 'invalid_field', 'max_b');
  assertError(await srv.api('GET', '/api/v1/catalog?fits=maybe', { token: user }), 400, 'invalid_field', 'fits');
  assert.equal((await srv.api('GET', '/api/v1/catalog')).status, 401);
});

test('search: both hubs searched beyond the catalog, with verdicts once the facts are in', async () => {
  const hf = await srv.api('GET', '/api/v1/catalog/search?source=huggingface&q=qwen3-32b', { token: user });
  assert.equal(hf.status, 200, hf.text);
  assert.deepEqual(hf.json.items.map((i) => i.repo), ['Qwen/Qwen3-32B', 'Qwen/Qwen3-32B-AWQ'], 'most downloaded first');
  assert.ok(hub.requests.some((r) => r.host === 'hf' && r.url.startsWith('/api/models?search=qwen3-32b') && r.url.includes('expand=gated')));
  assert.equal(hf.json.items[0].updated, '2025-01-01T00:00:00.000Z');
  assert.equal(hf.json.items[0].gated, false);
  let ms;
  for (let i = 0; i < 100; i++) {
    ms = await srv.api('GET', '/api/v1/catalog/search?source=modelscope&q=bge', { token: user });
    assert.equal(ms.status, 200, ms.text);
    if (ms.json.pending === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(hub.requests.some((r) => r.host === 'ms' && r.url.startsWith('/openapi/v1/models?search=bge')));
  const bge = ms.json.items.find((i) => i.repo === 'BAAI/bge-large-zh-v1.5');
  assert.equal(bge.kind, 'embedding');
  assert.equal(bge.updated, '2025-01-01T00:00:00Z', 'ModelScope\'s epoch seconds');
  assert.equal(bge.verdict.state, 'fits_now');
  assert.equal(bge.verdict.gpus, 1);
  assertError(await srv.api('GET', '/api/v1/catalog/search?source=modelscope', { token: user }), 400, 'invalid_field', 'q');
  assertError(await srv.api('GET', '/api/v1/catalog/search?q=x&limit=500', { token: user }), 400, 'invalid_field', 'limit');
});

test('search: a hub that cannot be reached is a 502 that says so; the catalog still answers', async () => {
  const dir = tempDir();
  const s2 = await startServer({ dataDir: dir, env: { AIMAAS_HF_ENDPOINT: 'http://127.0.0.1:9', AIMAAS_MODELSCOPE_ENDPOINT: 'http://127.0.0.1:9' } });
  try {
    const t = await s2.login();
    const r = await s2.api('GET', '/api/v1/catalog/search?source=huggingface&q=qwen', { token: t });
    assertError(r, 502, 'bad_gateway');
    assert.match(r.json.error.message, /huggingface's search failed: could not reach http:\/\/127\.0\.0\.1:9/);
    const c = await s2.api('GET', '/api/v1/catalog', { token: t });
    assert.equal(c.status, 200);
    assert.equal(c.json.source, 'modelscope', 'ModelScope by default');
    assert.equal(c.json.pool.gpus, 0);
  } finally {
    await s2.stop();
    s2.cleanup();
  }
});

test('catalog: refresh is for admins and fetches every build again; a site catalog replaces the built-in one', async () => {
  assertError(await srv.api('POST', '/api/v1/catalog/refresh?source=huggingface', { token: user }), 403, 'forbidden');
  hub.control.slow(4000); // config.json files take a moment: the refresh is seen in flight
  const r = await srv.api('POST', '/api/v1/catalog/refresh?source=huggingface', { token: T });
  assert.equal(r.status, 202, r.text);
  assert.ok(r.json.queued >= 60);
  const during = await srv.api('GET', '/api/v1/catalog?source=huggingface', { token: user });
  assert.ok(during.json.pending > 0, 'the refresh counts as pending');
  assert.equal(entry(during.json, 'qwen2.5-7b-instruct').variants[0].meta.state, 'ready', 'the old facts shown meanwhile');
  hub.control.slow(0);
  await settled('source=huggingface');

  const dir = tempDir();
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ models: [{ id: 'x', name: 'X', family: 'F', kind: 'chat', params_b: 1, context: 1, licence: 'mit',
    variants: [{ format: 'bf16', huggingface: 'a/b' }] }] }));
  const s3 = await startServer({ env: { AIMAAS_CATALOG: bad }, expectFail: true });
  assert.match(s3.log(), /catalog entry 0 \(x\): 'kind' is missing or invalid/);
  const good = join(dir, 'good.json');
  mkdirSync(join(dir, 'd'));
  writeFileSync(good, JSON.stringify({ models: [{ id: 'tiny', name: 'Tiny', family: 'Qwen2.5', kind: 'llm', params_b: 0.1, context: 4096,
    licence: 'apache-2.0', variants: [{ format: 'bf16', huggingface: 'Qwen/Tiny', modelscope: 'Qwen/Tiny' }] }] }));
  const s4 = await startServer({ dataDir: join(dir, 'd'), env: { AIMAAS_CATALOG: good, AIMAAS_HF_ENDPOINT: hub.url } });
  try {
    const t = await s4.login();
    const c = await s4.api('GET', '/api/v1/catalog?source=huggingface', { token: t });
    assert.deepEqual(c.json.items.map((e) => e.id), ['tiny']);
  } finally {
    await s4.stop();
  }
});
