// The web console in a real browser (playwright-core driving Debian's
// chromium), page by page, in the order a new user goes: sign in, dashboard,
// language switch, models, deploy through the wizard, chat in the
// playground, datasets, a LoRA fine-tune, its adapter deployed and compared
// with the base, API keys, usage, resources, a download from a hub, the model
// market, tasks, users, sign out. A screenshot of each page goes to
// ui/screenshots/.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { ROOT, ADMIN_PASSWORD, startServer, tempDir, waitUntil } from './lib.mjs';
import { hubFiles, makeModel, safetensorsHeader, tensorsFor } from '../fixtures/make-models.mjs';
import { startKube } from '../fakes/kube-apiserver.mjs';
import { startHub, tinyRepo } from '../fakes/hub.mjs';
import { englishLeaks } from './ui-text.mjs';

// A small RGB gradient as a real PNG (signature, IHDR, one zlib IDAT, IEND).
function png(w, h) {
  const chunk = (type, data) => {
    const td = Buffer.concat([Buffer.from(type), data]);
    const len = Buffer.alloc(4), crc = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // 8 bits, RGB
  ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      raw.set([Math.round((255 * x) / w), Math.round((255 * y) / h), 160], y * (w * 3 + 1) + 1 + x * 3);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0))]);
}

const CHROMIUM = process.env.AIMAAS_CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(ROOT, 'ui', 'screenshots');
let srv, browser, page, datasetDir, modelDir, kube, hub;
const pageErrors = []; // uncaught errors in the console's code: checked after each test

before(async () => {
  assert.ok(existsSync(join(ROOT, 'build', 'ui', 'index.html')), 'the console is built (make ui)');
  mkdirSync(SHOTS, { recursive: true });
  const dir = tempDir();
  mkdirSync(join(dir, 'models'));
  for (const m of ['Qwen2.5-7B-Instruct', 'bge-large-zh-v1.5', 'bge-reranker-v2-m3', 'Qwen2.5-VL-7B-Instruct']) makeModel(m, join(dir, 'models'));
  writeFileSync(join(dir, 'photo.png'), png(96, 64));
  // the model market's hub: real configs, shards listed at their real sizes (a 200B one: Qwen3-32B's shape with 400 layers)
  const giant = { ...JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'models', 'Qwen3-32B', 'config.json'), 'utf8')), num_hidden_layers: 400 };
  const gh = safetensorsHeader(tensorsFor(giant));
  hub = await startHub({ repos: { 'qwen/Tiny-Chat': { files: tinyRepo(24, 256) }, 'qwen/Tiny-Coder': { files: tinyRepo(8, 256), downloads: 42 },
    'Qwen/Qwen3-32B': { files: hubFiles('Qwen3-32B').files }, 'Qwen/Qwen3-32B-AWQ': { files: hubFiles('Qwen3-32B-AWQ').files },
    'BAAI/bge-large-zh-v1.5': { files: hubFiles('bge-large-zh-v1.5').files, task: 'feature-extraction' },
    'acme/Giant-200B': { files: { 'config.json': JSON.stringify(giant), 'model.safetensors': { size: gh.head.length + gh.dataBytes, head: gh.head } } } } });
  // its catalog (catalog/models.json's format); Qwen3-32B's FP8 build is not on the hub
  const build = (format, id) => ({ format, modelscope: id, huggingface: id });
  writeFileSync(join(dir, 'catalog.json'), JSON.stringify({ version: 1, models: [
    { id: 'tiny-chat', family: 'Tiny', name: 'Tiny-Chat', kind: 'llm', params_b: 0.02, context: 4096, licence: 'apache-2.0', tags: ['chat'], variants: [build('bf16', 'qwen/Tiny-Chat')] },
    { id: 'tiny-coder', family: 'Tiny', name: 'Tiny-Coder', kind: 'llm', params_b: 0.01, context: 4096, licence: 'apache-2.0', tags: ['code'], variants: [build('bf16', 'qwen/Tiny-Coder')] },
    { id: 'qwen3-32b', family: 'Qwen3', name: 'Qwen3-32B', kind: 'llm', params_b: 32.8, context: 32768, licence: 'apache-2.0', tags: ['chat'],
      variants: [build('bf16', 'Qwen/Qwen3-32B'), build('awq', 'Qwen/Qwen3-32B-AWQ'), build('fp8', 'Qwen/Qwen3-32B-FP8')] },
    { id: 'giant-200b', family: 'Giant', name: 'Giant-200B-A20B', kind: 'llm', params_b: 200, active_params_b: 20, context: 40960, licence: 'other',
      tags: ['moe'], gated: ['modelscope'], variants: [build('bf16', 'acme/Giant-200B')] },
    { id: 'bge-large-zh-v1.5', family: 'BGE', name: 'bge-large-zh-v1.5', kind: 'embedding', params_b: 0.33, context: 512, licence: 'mit',
      tags: ['embedding', 'zh'], variants: [build('fp32', 'BAAI/bge-large-zh-v1.5')] },
  ] }));
  srv = await startServer({ dataDir: dir, args: ['--sim-gpus', '2x80GiB:NVIDIA H100 80GB HBM3@9.0', '--ui-dir', join(ROOT, 'build', 'ui'),
    '--stop-engines-on-exit'], env: { PATH: `${join(ROOT, 'tests', 'shims')}:${process.env.PATH}`,
    AIMAAS_SIM: join(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'), AIMAAS_SIM_STEP_MS: '60', AIMAAS_SCRAPE_MS: '400',
    AIMAAS_MODELSCOPE_ENDPOINT: hub.msUrl, AIMAAS_HF_ENDPOINT: hub.url, AIMAAS_CATALOG: join(dir, 'catalog.json') } });
  writeFileSync(join(dir, 'qa.json'), JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ instruction: `Q${i}?`, input: '', output: `A${i}.` }))));
  // a spreadsheet saved as CSV, with its own (Chinese) column names and a quoted comma
  writeFileSync(join(dir, 'faq.csv'), '\ufeff编号,问题,答案\r\n' + Array.from({ length: 12 }, (_, i) => `${i},"问题 ${i}，怎么办?","答案 ${i}"`).join('\r\n') + '\r\n');
  writeFileSync(join(dir, 'bad.jsonl'), '{"instruction":"ok","output":"fine"}\n{"instruction":"no answer"}\n');
  datasetDir = dir;
  modelDir = join(dir, 'models');
  kube = await startKube({ namespace: 'aimaas', nodes: [{ name: 'gpu-node-a', gpus: 4, gpuProduct: 'NVIDIA-GeForce-RTX-2080-Ti', gpuMemory: 11264,
    computeMajor: 7, computeMinor: 5, taints: [{ key: 'team', value: 'ml', effect: 'PreferNoSchedule' }] }],
  identities: { few: { rules: [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['nodes', 'pods'] }] } } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  const ctx = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1360, height: 860 } });
  page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

afterEach(() => assert.deepEqual(pageErrors.splice(0), [], 'the page threw'));

after(async () => {
  await browser?.close();
  await srv.stop();
  await kube?.stop();
  await hub?.stop();
  srv.cleanup();
});

// names this test gives (deployments, users, keys, datasets, a cluster, its node) where a select shows them
const NAMES = ['Tiny-Chat', 'Tiny-Coder', 'bge', 'reranker', 'broken', 'dify', 'alice', 'admin', 'qa', 'bad', 'faq', 'lab', 'local', 'nightly-script',
  'qwen-vl', 'qwen-second', 'gpu-node-a'];
const chinese = async () => (await page.evaluate(() => document.documentElement.lang)) === 'zh-CN';
async function assertChinese(where) {
  const leaks = await englishLeaks(page, NAMES);
  // AIMAAS_UI_LEAKS=file: only list them there (to see them all in one run)
  if (process.env.AIMAAS_UI_LEAKS) { if (leaks.length) appendFileSync(process.env.AIMAAS_UI_LEAKS, `${where}: ${leaks.join(' | ')}\n`); return; }
  assert.deepEqual(leaks, [], `English in the Chinese page ${where}`);
}
// after transitions (dialogs, tabs, radio buttons) have settled; a Chinese page is checked for English
const shot = async (name) => {
  await page.waitForTimeout(350);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  if (await chinese()) await assertChinese(name);
};

test('an app route without a session goes to the sign-in page; a wrong password shows the server\'s words', async () => {
  await page.goto(`${srv.url}/`);
  await page.waitForURL(/\/login\?next=/);
  await page.getByRole('heading', { name: 'aimaas' }).waitFor();
  assert.ok(await page.getByText('私有化 AI 模型服务平台').isVisible(), 'Chinese by default for a zh-CN browser');
  await page.locator('input[name=password]').fill('wrong-password');
  await page.getByRole('button', { name: '登录' }).click();
  await page.getByText('用户名或密码错误').waitFor(); // in the console's language (Accept-Language)
  await shot('login');
});

test('sign in: the dashboard shows the GPUs with their memory and the recent tasks', async () => {
  await page.locator('input[name=password]').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: '登录' }).click();
  await page.waitForURL(`${srv.url}/`);
  await page.getByText('#0 NVIDIA H100 80GB HBM3').waitFor();
  assert.ok(await page.getByText('#1 NVIDIA H100 80GB HBM3').isVisible());
  assert.ok(await page.getByText('还没有部署：先注册模型，再部署。').isVisible(), 'the empty state says what to do next');
  await page.locator('.tasks [data-kind="auth.login"]', { hasText: '登录' }).first().waitFor(); // the sign-in is the newest task, in words
  await shot('dashboard');
});

test('switch to English and back; the choice is remembered across a reload', async () => {
  await page.getByText('English').click();
  await page.getByText('Nothing deployed yet: register a model, then deploy it.').waitFor();
  await page.reload();
  await page.getByText('Recent tasks').waitFor();
  await shot('dashboard-en');
  await page.getByText('中文').click();
  await page.getByText('最近操作').waitFor();
});

test('register a model by browsing the model root', async () => {
  await page.getByRole('menuitem', { name: '模型', exact: true }).click();
  await page.getByText('还没有模型：从模型目录注册一个文件夹。').waitFor();
  await page.getByRole('button', { name: '注册模型' }).first().click();
  await page.locator('.register .entry[data-type=model]', { hasText: 'Qwen2.5-7B-Instruct' }).getByText('（模型）').click();
  assert.match(await page.locator('input[name=model-path]').inputValue(), /models\/Qwen2.5-7B-Instruct$/);
  await page.locator('.el-dialog').getByRole('button', { name: '注册模型' }).click();
  await page.locator('.el-table').getByText('Qwen2ForCausalLM').waitFor();
  assert.ok(await page.locator('.el-table').getByText('7.6B').isVisible());
  await shot('models');
});

test('model details: what it is and the GPU memory it needs', async () => {
  await page.locator('.el-table').getByText('Qwen2.5-7B-Instruct').click();
  const drawer = page.locator('.el-drawer');
  await drawer.getByText('部署所需显存（每卡，默认上下文）').waitFor();
  assert.ok(await drawer.getByText('Qwen2ForCausalLM').isVisible());
  assert.equal(await drawer.locator('.mem-table .el-table__row').count(), 4, '1, 2, 4 and 8 GPUs');
  await drawer.getByText(/注意力头/).first().waitFor(); // 28 attention heads do not split over 8 GPUs
  await drawer.getByRole('button', { name: '重新读取文件' }).click();
  await page.getByText('已重新读取 Qwen2.5-7B-Instruct').waitFor();
  await shot('model-details');
  await page.keyboard.press('Escape');
  await drawer.waitFor({ state: 'hidden' });
});

test('deploy it through the wizard on a card picked on the picture: verdict and command first, then running, snippets, metrics, log', async () => {
  await page.getByRole('menuitem', { name: '模型部署', exact: true }).click();
  await page.getByRole('button', { name: '部署模型' }).first().click();
  const dlg = page.locator('.el-dialog');
  await dlg.locator('.el-select').click();
  await page.getByRole('option', { name: /Qwen2.5-7B-Instruct/ }).click();
  assert.equal(await page.locator('input[name=deployment-name]').inputValue(), 'qwen2.5-7b-instruct');
  for (let i = 0; i < 2; i++) await dlg.getByRole('button', { name: '下一步' }).click();
  await dlg.getByText('指定显卡').click();
  await dlg.locator('.card[data-index="1"]').getByText(/剩余 80.0 GiB/).waitFor();
  await dlg.locator('.card[data-index="1"]').click();
  await dlg.getByText('高级：调度策略、引擎参数、环境变量、别名').click();
  await page.locator('textarea[name=engine-args]').fill('--sim-itl-ms 25');
  await shot('deploy-wizard-gpus');
  // scale to zero sits with the advanced settings (off unless minutes are set)
  const idleMin = page.locator('input[name=idle-min]');
  await idleMin.scrollIntoViewIfNeeded();
  assert.equal(await idleMin.inputValue(), '0');
  await dlg.getByText('空闲多少分钟后缩容到零').waitFor();
  await shot('deploy-wizard-idle');
  await page.locator('textarea[name=engine-args]').scrollIntoViewIfNeeded();
  await dlg.getByRole('button', { name: '下一步' }).click();
  await page.getByText(/每块 GPU 需要 .* GiB/).waitFor();
  assert.match(await page.locator('pre.cmd').first().innerText(),
    /^vllm serve .*Qwen2.5-7B-Instruct .*--served-model-name qwen2.5-7b-instruct.* --sim-itl-ms 25$/);
  assert.match(await page.locator('pre.cmd.env').innerText(), /CUDA_VISIBLE_DEVICES=1/, 'the picked card');
  await page.getByText('副本 0 在 local: GPU 1').waitFor();
  await shot('deploy-wizard');
  await dlg.getByRole('button', { name: '部署', exact: true }).click();
  const drawer = page.locator('.el-drawer');
  await drawer.locator('.el-tag[data-state=running]', { hasText: '运行中' }).first().waitFor({ timeout: 20000 });
  // the deployment's page has its own address: reloading it (or a bookmark) opens it again
  await page.waitForURL(/\/deployments\/\d+$/);
  await page.reload();
  await drawer.locator('.el-tag[data-state=running]').first().waitFor();
  assert.ok(await page.getByRole('menuitem', { name: '模型部署', exact: true }).evaluate((e) => e.classList.contains('is-active')));
  const curl = await drawer.locator('pre.snippet-curl').innerText();
  assert.match(curl, new RegExp(`curl ${srv.url}/v1/chat/completions`));
  assert.match(curl, /"model": "qwen2.5-7b-instruct"/);
  await drawer.getByRole('tab', { name: 'Dify' }).click();
  assert.match(await drawer.locator('pre.snippet-dify').innerText(), new RegExp(`API endpoint URL: ${srv.url}/v1`));
  await shot('deployment');
  await drawer.getByRole('tab', { name: '日志' }).click();
  await drawer.locator('pre.log', { hasText: 'Application startup complete' }).waitFor();
  await shot('deployment-log');
  // an alias added later: applies at once, no restart (the same pid serves it)
  const pid = (await page.evaluate(async () => (await (await fetch(location.pathname.replace('/deployments/', '/api/v1/deployments/'))).json()).instances[0].pid));
  await drawer.locator('button[name=edit-deployment]').click();
  await page.locator('input[name=edit-aliases]').fill('gpt-4o-mini');
  await page.locator('button[name=edit-save]').click();
  await page.getByText('已保存：引擎将按新配置重启（别名立即生效）').waitFor();
  const after = await page.evaluate(async () => (await (await fetch(location.pathname.replace('/deployments/', '/api/v1/deployments/'))).json()));
  assert.deepEqual(after.aliases, ['gpt-4o-mini']);
  assert.equal(after.instances[0].pid, pid, 'not restarted for an alias');
  await drawer.getByRole('tab', { name: '监控' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('.el-drawer .chart')].every((c) => Number(c.dataset.points) >= 2),
    null, { timeout: 15000 });
  await shot('deployment-metrics');
  await page.keyboard.press('Escape');
  await drawer.waitFor({ state: 'hidden' });
  await page.waitForURL(/\/deployments$/);
});

// Samples the assistant's text every 10 ms until its cursor goes: the lengths it went through.
const watchStream = (selector) => page.evaluate(async (sel) => {
  const seen = [];
  const t0 = Date.now();
  while (Date.now() - t0 < 15000) {
    const el = document.querySelector(sel);
    const text = el ? el.textContent.replace('▍', '') : '';
    seen.push(text.length);
    if (el && text.length && !el.querySelector('.cursor')) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  return seen;
}, selector);

test('playground: chat with the deployed model, the answer streaming in', async () => {
  await page.getByRole('menuitem', { name: '模型体验', exact: true }).click();
  await page.getByText('向模型提问，回答会边生成边显示。').waitFor();
  await page.locator('.el-form-item', { hasText: '模型' }).first().getByText('qwen2.5-7b-instruct').waitFor(); // the running model, chosen
  await page.locator('textarea[name=chat-system]').fill('You answer briefly.');
  const maxTokens = page.locator('.el-form-item', { hasText: 'max_tokens' }).locator('input');
  await maxTokens.fill('10');
  await maxTokens.press('Tab');
  await page.locator('textarea[name=chat-input]').fill('介绍一下你自己');
  await page.locator('button[name=chat-send]').click();
  const lengths = await watchStream('.msg.assistant .text');
  const steps = [...new Set(lengths.filter((n) => n > 0))];
  assert.ok(steps.length >= 5, `the answer grew piece by piece (lengths seen: ${steps.join(',')})`);
  await page.locator('.msg.assistant .stats', { hasText: /首 token \d+ ms/ }).waitFor();
  const stats = await page.locator('.msg.assistant .stats').innerText();
  assert.match(stats, /10 个 token .*达到最多生成 token 数，已截断/, stats); // the parameters reached the engine
  assert.ok(await page.locator('.msg.user', { hasText: '介绍一下你自己' }).isVisible());
  await shot('playground-chat');
});

// A stream as the gateway sends it (OpenAI's chunks), cut into small pieces.
function sse(pieces) {
  const chunk = (delta, extra = {}) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta, ...extra }] })}\n\n`;
  return pieces.map(([k, v]) => chunk({ [k]: v })).join('') + chunk({}, { finish_reason: 'stop' })
    + `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 5, completion_tokens: pieces.length, total_tokens: 5 + pieces.length } })}\n\ndata: [DONE]\n\n`;
}
const cut = (kind, text, n = 12) => Array.from({ length: Math.ceil(text.length / n) }, (_, i) => [kind, text.slice(i * n, (i + 1) * n)]);

test('playground: the answer as Markdown, safely; its reasoning folded; copy, regenerate, view code', async () => {
  await page.getByRole('button', { name: '清空' }).click();
  const answer = '<think>先想一想：用户要一张表和一段代码。</think>\n## 标题\n\n- 第一\n- 第二\n\n| 列 | 值 |\n|---|---|\n| 甲 | 1 |\n\n'
    + '```python\nprint("hi")\n```\n\n<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> [点我](javascript:window.__pwned=3)';
  const bodies = [];
  let stream = sse(cut('content', answer));
  await page.route('**/v1/chat/completions', (route) => {
    bodies.push(JSON.parse(route.request().postData()));
    return route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: stream });
  });
  try {
    await page.locator('textarea[name=chat-input]').fill('给我一张表');
    await page.locator('textarea[name=chat-input]').press('Enter'); // Enter sends
    const msg = page.locator('.msg.assistant').last();
    await msg.locator('.stats', { hasText: /个 token/ }).waitFor();
    assert.equal(await msg.locator('.text h2').innerText(), '标题');
    assert.equal(await msg.locator('.text li').count(), 2);
    assert.equal(await msg.locator('.text table td').first().innerText(), '甲');
    assert.match(await msg.locator('.code-block code.language-python').innerText(), /print\("hi"\)/);
    assert.ok(await msg.locator('.code-block .hljs-string').count() >= 1, 'the code is highlighted');
    assert.ok(await msg.locator('.code-block .code-copy').isVisible(), 'a copy button on the code');
    // the model's HTML is text, not elements; nothing of it ran
    assert.equal(await msg.locator('.text img, .text script').count(), 0);
    assert.match(await msg.locator('.text').innerText(), /<img src=x onerror=/);
    assert.equal(await msg.locator('.text a[href^="javascript"]').count(), 0, 'no javascript: link');
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    // the reasoning: folded once the answer is there
    const think = msg.locator('details.think');
    assert.equal(await think.locator('summary').innerText(), '思考过程');
    assert.equal(await think.evaluate((d) => d.open), false);
    await think.locator('summary').click();
    await think.getByText('先想一想').waitFor();
    assert.doesNotMatch(await msg.locator('.text').innerText(), /先想一想/, 'the reasoning is not in the answer');
    await shot('playground-markdown');
    // regenerate: the same history asked again; this engine sends its reasoning as reasoning_content
    stream = sse([...cut('reasoning_content', '换个思路再想。'), ...cut('content', '**第二个**回答')]);
    await msg.locator('button[name=msg-regenerate]').click();
    await page.locator('.msg.assistant').last().getByText('第二个').waitFor();
    assert.equal(await page.locator('.msg.assistant').count(), 1, 'the answer replaced, not added');
    assert.deepEqual(bodies[1].messages, bodies[0].messages, 'the same conversation');
    assert.equal(await page.locator('.msg.assistant').last().locator('.text strong').innerText(), '第二个');
    assert.match(await page.locator('.msg.assistant details.think').textContent(), /换个思路再想/);
    assert.ok(await page.locator('.msg.assistant button[name=msg-copy]').isVisible());
  } finally {
    await page.unroute('**/v1/chat/completions');
  }
  // the request as code: this model, these messages and parameters
  await page.locator('button[name=view-code]').click();
  const dlg = page.locator('.code-dialog');
  const curl = await dlg.locator('pre.code-curl').innerText();
  assert.match(curl, new RegExp(`curl ${srv.url}/v1/chat/completions`));
  assert.match(curl, /"model": "qwen2.5-7b-instruct"/);
  assert.match(curl, /"max_tokens": 10/);
  assert.match(curl, /"content": "给我一张表"/);
  await dlg.getByRole('tab', { name: 'Python (openai)' }).click();
  const py = await dlg.locator('pre.code-python').innerText();
  assert.match(py, /client\.chat\.completions\.create\(\n {4}model="qwen2\.5-7b-instruct"/);
  assert.match(py, /temperature=0\.7,\n {4}top_p=1,\n {4}max_tokens=10,/);
  await shot('playground-code');
  await page.keyboard.press('Escape');
  await dlg.waitFor({ state: 'hidden' });
});

test('playground: embeddings with their similarities, rerank with scores', async () => {
  const T = await srv.login();
  for (const [name, model] of [['bge', 'bge-large-zh-v1.5'], ['reranker', 'bge-reranker-v2-m3']]) {
    assert.equal((await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(modelDir, model) } })).status, 201);
    const d = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name, model, engine: 'vllm' } });
    assert.equal(d.status, 201, d.text);
  }
  for (const name of ['bge', 'reranker'])
    for (let i = 0; i < 400 && (await srv.api('GET', `/api/v1/deployments/${name}`, { token: T })).json.state !== 'running'; i++)
      await new Promise((r) => setTimeout(r, 50));
  await page.reload(); // the playground lists what runs when it opens
  await page.getByRole('tab', { name: '向量' }).click();
  await page.locator('textarea[name=emb-input]').fill('今天天气很好\n今天天气不错\nGPU 显存不足');
  await page.locator('button[name=emb-run]').click();
  await page.getByText(/1024 维/).waitFor(); // bge-large-zh's hidden size
  assert.equal(await page.locator('.sim .el-table__row').count(), 3);
  assert.equal(await page.locator('.sim td', { hasText: /^1\.000$/ }).count(), 3, 'each text is itself');
  await shot('playground-embeddings');
  await page.getByRole('tab', { name: '重排序' }).click();
  await page.locator('input[name=rerank-query]').fill('GPU memory');
  await page.locator('textarea[name=rerank-docs]').fill('the weather is nice\nthe GPU memory is full\napples are sweet');
  await page.locator('button[name=rerank-run]').click();
  await page.locator('.ranked .el-table__row').first().waitFor();
  assert.match(await page.locator('.ranked .el-table__row').first().innerText(), /the GPU memory is full/, 'the relevant one first');
  await shot('playground-rerank');
});

test('datasets: upload, the validation report names the bad record; a valid one shows a preview', async () => {
  await page.getByRole('menuitem', { name: '模型微调', exact: true }).click();
  await page.getByText('还没有数据集：填写名称后上传文件。').waitFor();
  await page.locator('input[name=dataset-name]').fill('bad');
  await page.locator('input[type=file]').setInputFiles(join(datasetDir, 'bad.jsonl'));
  await page.getByText('1 条有效，1 条无效').waitFor();
  assert.ok(await page.locator('.errors').getByText("缺少 'output'").isVisible());
  await shot('dataset-report');
  await page.locator('input[name=dataset-name]').fill('qa');
  await page.locator('input[type=file]').setInputFiles(join(datasetDir, 'qa.json'));
  await page.getByText('40 条有效，0 条无效').waitFor();
  await page.locator('.el-table').getByText('qa', { exact: true }).click();
  await page.locator('pre.record', { hasText: 'Q0?' }).waitFor();
  // private until its owner shares it: the switch in its row shares it with every user
  await page.locator('.el-switch', { has: page.locator('input[name=share-qa]') }).click();
  await page.getByText('已共享数据集 qa').waitFor();
  const qa = (await srv.api('GET', '/api/v1/datasets/qa', { token: await srv.login() })).json;
  assert.equal(qa.visibility, 'shared', 'the switch shared it');
  // a CSV with its own column names: map them (guessed from the names), then upload
  await page.locator('input[name=dataset-name]').fill('faq');
  await page.locator('input[type=file]').setInputFiles(join(datasetDir, 'faq.csv'));
  const map = page.locator('.el-dialog', { hasText: '对应列' });
  await map.getByText('faq.csv 使用了自己的列名').waitFor();
  const chosen = (field) => map.locator('.el-form-item', { hasText: field }).locator('.el-select').innerText();
  assert.equal((await chosen('instruction')).trim(), '问题', 'guessed from the column name');
  assert.equal((await chosen('output')).trim(), '答案');
  await map.locator('button[name=csv-upload]').click();
  await page.getByText('12 条有效，0 条无效').waitFor();
  // the invalid one goes: its row and its file
  await page.locator('.el-dialog', { hasText: '对应列' }).waitFor({ state: 'hidden' });
  await page.locator('.el-table__row', { hasText: 'bad' }).getByRole('button', { name: '删除' }).click();
  const box = page.locator('.el-message-box', { hasText: '删除数据集 bad' });
  await box.getByRole('button', { name: /^(OK|确定|删除)$/ }).click();
  await box.waitFor({ state: 'hidden' });
  try {
    await page.locator('.el-table__row', { hasText: 'bad' }).waitFor({ state: 'detached', timeout: 10000 });
  } catch (e) {
    throw new Error(`${e.message}\npage: ${await page.locator('body').innerText()}\nserver: ${srv.log().slice(-1500)}`);
  }
});

test('a LoRA fine-tune: the wizard checks the memory, the loss chart draws points, the adapter is deployed', async () => {
  await page.getByRole('tab', { name: '微调任务' }).click();
  await page.getByRole('button', { name: '新建微调任务' }).click();
  const dlg = page.locator('.el-dialog', { hasText: '基础模型' });
  // a preference stage (DPO) takes preference pairs only: qa and faq (questions and answers) are not offered
  const stage = dlg.locator('.el-form-item', { hasText: '训练阶段' }).locator('.el-select');
  await stage.click();
  await page.getByRole('option', { name: /^偏好优化/ }).click();
  await dlg.locator('.el-select').nth(1).click();
  await page.getByText('没有适合偏好优化的数据集（需要偏好对数据）').waitFor();
  await dlg.locator('.el-dialog__title').click(); // closes the list
  await stage.click();
  await page.getByRole('option', { name: /^监督微调/ }).click();
  await dlg.locator('.el-select').nth(1).click();
  await page.getByRole('option', { name: 'qa (40)' }).click();
  await dlg.getByText(/可以运行：1 张卡每张约需 [\d.]+ GiB/).waitFor(); // the dry run's answer
  await dlg.getByText('全参数', { exact: true }).click();
  await dlg.getByText(/对这个 7.6B 模型做 full 微调需要 \d+ 张 GPU，每张约 [\d.]+ GiB/).waitFor(); // the server's refusal
  assert.ok(await dlg.getByRole('button', { name: '开始训练' }).isDisabled());
  await dlg.getByText('LoRA', { exact: true }).click();
  const accum = dlg.locator('.el-form-item', { hasText: '梯度累积' }).locator('input');
  await accum.fill('1');
  await accum.press('Tab');
  await dlg.getByText(/可以运行/).waitFor();
  await shot('finetune-wizard');
  await dlg.getByRole('button', { name: '开始训练' }).click();
  const drawer = page.locator('.el-drawer');
  await page.waitForURL(/\/finetune\/jobs\/\d+$/);
  await page.waitForFunction(() => Number(document.querySelector('.el-drawer .chart')?.dataset.points) >= 3, null, { timeout: 20000 });
  assert.ok(await drawer.locator('canvas').first().isVisible(), 'ECharts drew on its canvas');
  await drawer.getByText(/第 \d+\/120 步/).waitFor(); // 40 records × 3 epochs, batch 1, no accumulation
  await shot('finetune-job');
  await drawer.locator('.el-tag[data-state=succeeded]').first().waitFor({ timeout: 30000 });
  await drawer.getByText('已注册为模型').waitFor();
  assert.match(await drawer.locator('.params').innerText(), /lora_rank\s+8/);
  await drawer.getByRole('tab', { name: '日志' }).click();
  await drawer.locator('pre.log', { hasText: /train_runtime|Training completed|saved/i }).waitFor();
  await drawer.getByRole('tab', { name: '进度' }).click();
  await drawer.locator('button[name=deploy-adapter]').click();
  // the base's engine was started without LoRA: the console says it restarts before doing it
  const box = page.locator('.el-message-box', { hasText: '没有开启 LoRA' });
  await box.waitFor();
  await shot('finetune-adapter-restart');
  await box.getByRole('button', { name: '确定' }).click();
  await page.getByText(/由部署 qwen2.5-7b-instruct 提供服务/).waitFor();
  await page.waitForURL(/\/deployments$/);
  // the base restarts with the adapter: wait until the gateway serves it
  const T = await srv.login();
  const adapter = (await srv.api('GET', '/api/v1/finetune/jobs', { token: T })).json.items[0].output_name;
  let ok = false;
  for (let i = 0; i < 200 && !ok; i++) { // asked from the page, with the console's session (as the playground does)
    ok = await page.evaluate(async (model) => {
      const csrf = decodeURIComponent(document.cookie.match(/aimaas_csrf=([^;]+)/)[1]);
      const r = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }) });
      return r.status === 200;
    }, adapter);
    if (!ok) await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(ok, `${adapter} answers through the gateway`);
});

test('compare the base and the tuned model side by side in the playground', async () => {
  await page.getByRole('menuitem', { name: '模型微调', exact: true }).click();
  await page.getByRole('tab', { name: '微调任务' }).click();
  await page.locator('.el-table .el-tag[data-state=succeeded]').first().click();
  await page.locator('.el-drawer button[name=compare-base]').click();
  await page.waitForURL(/\/playground\?tab=compare/);
  await page.locator('textarea[name=compare-prompt]').fill('Question 3?');
  const sent = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
  await page.locator('textarea[name=compare-prompt]').press('Enter'); // Enter sends here too
  const body = JSON.parse((await sent).postData());
  assert.deepEqual([body.temperature, body.top_p, body.max_tokens], [0.7, 1, 512], "the chat's parameters");
  const cols = page.locator('.answer');
  await cols.nth(1).waitFor();
  assert.equal(await cols.count(), 2);
  const models = await cols.evaluateAll((els) => els.map((e) => e.dataset.model));
  assert.equal(models[0], 'qwen2.5-7b-instruct');
  assert.match(models[1], /^Qwen2.5-7B-Instruct-lora-\d+$/);
  const lengths = await watchStream('.answer[data-model="qwen2.5-7b-instruct"] .text');
  assert.ok(new Set(lengths.filter((n) => n > 0)).size >= 3, 'the base streams into its column');
  for (const m of models) await page.locator(`.answer[data-model="${m}"] .stats`, { hasText: /个 token/ }).waitFor({ timeout: 15000 });
  assert.equal(await page.locator('.answer .el-alert').count(), 0, 'neither column failed');
  await shot('playground-compare');
});

test('merge the adapter into its base from the job page; the merged model appears under Models', async () => {
  await page.getByRole('menuitem', { name: '模型微调', exact: true }).click();
  await page.getByRole('tab', { name: '微调任务' }).click();
  await page.locator('.el-table .el-tag[data-state=succeeded]').first().click();
  const drawer = page.locator('.el-drawer');
  await drawer.getByRole('button', { name: '合并到基础模型' }).click();
  await drawer.locator('.merge-state .el-tag[data-state=succeeded]').waitFor({ timeout: 20000 });
  const merged = (await drawer.locator('.merge-state').innerText()).match(/(\S+-merged)/)[1];
  // deleting the job is refused while its result is a model: the server's words are shown
  await drawer.getByRole('button', { name: '删除' }).click();
  await page.locator('.el-message-box').getByRole('button', { name: /^(OK|确定|删除)$/ }).click();
  await page.getByText(/的输出已注册为模型（或正在合并）；请先删除该模型/).waitFor();
  await page.keyboard.press('Escape');
  await page.getByRole('menuitem', { name: '模型', exact: true }).click();
  await page.locator('.el-table').getByText(merged, { exact: true }).waitFor();
});

test("a deployment that fails says why on its page: the reason and the engine's last lines", async () => {
  const T = await srv.login();
  const d = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'broken', model: 'bge-large-zh-v1.5', engine: 'vllm',
    engine_args: ['--sim-startup-error', 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB'] } });
  assert.equal(d.status, 201, d.text);
  await page.goto(`${srv.url}/deployments/${d.json.id}`);
  const drawer = page.locator('.el-drawer');
  // the stored reason in the console's language, the engine's own line quoted as it was
  await drawer.getByText(/退出码 1：torch.OutOfMemoryError: CUDA out of memory/).first().waitFor({ timeout: 20000 });
  await drawer.locator('pre.log-tail', { hasText: 'Engine core initialization failed' }).waitFor();
  await shot('deployment-failed');
  await drawer.getByRole('button', { name: '删除' }).click();
  await page.locator('.el-message-box').getByRole('button', { name: /^(OK|确定|删除)$/ }).click();
  await page.waitForURL(/\/deployments$/);
});

test('playground: a vision-language model gets the attached image as an image_url part', async () => {
  const T = await srv.login();
  assert.equal((await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(modelDir, 'Qwen2.5-VL-7B-Instruct') } })).status, 201);
  const d = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'qwen-vl', model: 'Qwen2.5-VL-7B-Instruct', engine: 'vllm' } });
  assert.equal(d.status, 201, d.text);
  for (let i = 0; i < 400 && (await srv.api('GET', '/api/v1/deployments/qwen-vl', { token: T })).json.state !== 'running'; i++)
    await new Promise((r) => setTimeout(r, 50));
  await page.getByRole('menuitem', { name: '模型体验', exact: true }).click();
  await page.locator('.el-form-item', { hasText: '模型' }).first().locator('.el-select').click();
  await page.getByRole('option', { name: 'qwen-vl', exact: true }).click();
  await page.locator('.el-upload input[type=file]').setInputFiles(join(datasetDir, 'photo.png'));
  await page.locator('.pending img.thumb').waitFor();
  await page.locator('textarea[name=chat-input]').fill('这张图里有什么？');
  const sent = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
  await page.locator('button[name=chat-send]').click();
  const body = JSON.parse((await sent).postData());
  const parts = body.messages.at(-1).content;
  assert.equal(parts[0].type, 'text');
  assert.equal(parts[1].type, 'image_url');
  assert.match(parts[1].image_url.url, /^data:image\/png;base64,iVBOR/);
  await page.locator('.msg.user img.thumb').waitFor();
  await page.locator('.msg.assistant .stats', { hasText: /个 token/ }).last().waitFor();
  await shot('playground-vision');
});

test('an API key: the secret shown once, then only its hint', async () => {
  await page.getByRole('menuitem', { name: 'API 密钥', exact: true }).click();
  await page.getByText('还没有密钥：为 Dify、FastGPT 或脚本创建一个。').waitFor();
  await page.getByRole('button', { name: '创建密钥' }).first().click();
  await page.locator('input[name=key-name]').fill('dify');
  await page.locator('.el-dialog').getByRole('button', { name: '创建密钥' }).click();
  const secret = await page.locator('code.key-secret').innerText();
  assert.match(secret, /^sk-\S{20,}$/);
  await page.getByText('请立即复制：密钥只显示这一次。').waitFor();
  await shot('api-key');
  await page.getByRole('button', { name: '完成' }).click();
  await page.locator('.el-table').getByText('dify').waitFor();
  await page.locator('code.key-secret').waitFor({ state: 'detached' }); // the closed dialog forgets it
  assert.equal(await page.getByText(secret).count(), 0, 'the secret is not shown again');
  // and it works on the gateway
  const r = await fetch(`${srv.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(r.status, 200);
  // its limits changed later, the secret unchanged: RPM 2 holds at once on the gateway
  await page.locator('.el-table__row', { hasText: 'dify' }).getByRole('button', { name: '修改配置' }).click();
  const rpm = page.locator('.el-dialog', { hasText: '修改密钥 dify' }).locator('.el-form-item', { hasText: '每分钟请求数' }).locator('input');
  await rpm.fill('2');
  await rpm.press('Tab');
  await page.locator('.el-dialog', { hasText: '修改密钥 dify' }).getByRole('button', { name: '保存' }).click();
  await page.getByText('dify 已保存：网关立即生效').waitFor();
  await page.locator('.el-table__row', { hasText: 'dify' }).getByText('2 / ∞').waitFor();
  const ask = () => fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${secret}`,
    'content-type': 'application/json' }, body: JSON.stringify({ model: 'qwen2.5-7b-instruct', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }) });
  if (Date.now() % 60000 > 57000) await new Promise((r) => setTimeout(r, 3500)); // all three within one minute
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await ask()).status);
  assert.deepEqual(statuses, [200, 200, 429], 'the new RPM limit holds');
  // a personal token for scripts on the management API, shown once too
  await page.getByRole('tab', { name: '个人令牌（调用管理 API）' }).click();
  await page.getByText('还没有个人令牌。').waitFor();
  await page.getByRole('button', { name: '创建令牌' }).first().click();
  await page.locator('input[name=token-name]').fill('nightly-script');
  await page.locator('.el-dialog', { hasText: '创建令牌' }).getByRole('button', { name: '创建令牌' }).click();
  const tok = await page.locator('code.token-secret').innerText();
  const d = await fetch(`${srv.url}/api/v1/deployments`, { headers: { authorization: `Bearer ${tok}` } });
  assert.equal(d.status, 200, 'the token works on /api/v1');
  await page.getByRole('button', { name: '完成' }).click();
  await page.locator('.el-table').getByText('nightly-script').waitFor();
  await page.getByRole('tab', { name: 'API 密钥（调用 /v1 上的模型）' }).click();
});

test('usage: tokens by model per day, chart and totals', async () => {
  await page.getByRole('menuitem', { name: '用量统计', exact: true }).click();
  await page.locator('.totals').getByText('qwen2.5-7b-instruct', { exact: true }).waitFor();
  await page.waitForFunction(() => Number(document.querySelector('.chart')?.dataset.bars) >= 1);
  await page.getByText('按密钥').click();
  await page.locator('.totals').getByText('控制台（模型体验）').waitFor(); // the playground's calls, with no key
  await shot('usage');
});

test('resources: each GPU with its memory and utilisation history', async () => {
  // first, from the dashboard to a deployment's page in one click
  await page.getByRole('menuitem', { name: '概览', exact: true }).click();
  await page.locator('.deps').getByText('qwen2.5-7b-instruct', { exact: true }).click();
  await page.waitForURL(/\/deployments\/\d+$/);
  await page.locator('.el-drawer .el-tag[data-state=running]').first().waitFor();
  await page.keyboard.press('Escape');
  await page.locator('.el-drawer').waitFor({ state: 'hidden' });
  await page.getByRole('menuitem', { name: '资源', exact: true }).click();
  await page.locator('.gpu[data-gpu="1"]').waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('.gpu .chart')].length === 4 &&
    [...document.querySelectorAll('.gpu .chart')].every((c) => Number(c.dataset.points) >= 1));
  assert.ok(await page.getByText('local').first().isVisible());
  // simulated cards run no processes; what holds each card is named
  await page.locator('.held[data-held="1"]').getByText('qwen2.5-7b-instruct').first().waitFor();
  assert.match(await page.locator('.held[data-held="1"]').innerText(), /模型部署 qwen2\.5-7b-instruct（副本 0） · [\d.]+ GiB/);
  await shot('resources');
});

test('resources: a Kubernetes cluster joins by a pasted kubeconfig; missing rights are named; its nodes appear', async () => {
  await page.locator('button[name=add-cluster]').click();
  await page.locator('input[name=cluster-name]').fill('lab');
  await page.locator('textarea[name=kubeconfig]').fill(kube.kubeconfig('few'));
  // a per-node cache is one of the storage choices, with what it means
  await page.locator('.add-cluster').getByText('各节点自带缓存').click();
  await page.locator('.add-cluster').getByText(/每个节点在本地目录里保存自己的模型副本/).waitFor();
  assert.equal(await page.locator('input[name=storage-path]').getAttribute('placeholder'), '/var/lib/aimaas-cache');
  await page.locator('.add-cluster').getByText('各节点同一目录').click();
  await page.locator('input[name=storage-path]').fill(modelDir);
  await page.locator('button[name=join-cluster]').click();
  await page.locator('.add-cluster .el-alert').getByText(/权限不足，缺少：.*services \(get, list, create, delete\)/).waitFor();
  await shot('resources-cluster-refused');
  await page.locator('textarea[name=kubeconfig]').fill(kube.kubeconfig('admin'));
  await page.locator('button[name=join-cluster]').click();
  await page.getByText('集群 lab 已加入，节点稍后出现').waitFor();
  await page.locator('.clusters [data-state=reachable]', { hasText: '可连接' }).waitFor();
  await page.locator('.nodes').getByText('gpu-node-a').waitFor();
  await page.locator('.nodes').getByText('4 张（其他工作负载占用 0）').waitFor();
  await page.locator('.nodes').getByText('team=ml:PreferNoSchedule').waitFor();
  assert.ok(await page.locator('.clusters').getByText(`各节点同一目录 ${modelDir}`).isVisible());
  await shot('resources-cluster');
});

test('models: download one from ModelScope with live progress and pause; it becomes ready', async () => {
  hub.control.slow(300000); // slow enough to watch
  await page.getByRole('menuitem', { name: '模型', exact: true }).click();
  await page.locator('button[name=download-model]').click();
  await page.locator('input[name=hub-id]').fill('qwen/Tiny-Chat');
  await page.locator('button[name=start-download]').click();
  await page.getByText('已开始下载 Tiny-Chat').waitFor();
  const row = page.locator('.el-table__row', { hasText: 'Tiny-Chat' });
  await row.getByText(/MiB \/ [\d.]+ MiB/).waitFor();
  await shot('models-download');
  await row.locator('button[name=dl-pause]').click();
  await row.getByText('已暂停').waitFor();
  hub.control.slow(0);
  await row.locator('button[name=dl-resume]').click();
  await row.locator('[data-state=ready]', { hasText: '就绪' }).waitFor({ timeout: 30000 });
});

test('model market: verdicts on this pool, filters, the hub\'s search, a download from a card, then the wizard filled in', async () => {
  await page.getByRole('menuitem', { name: '模型市场', exact: true }).click();
  const card = (id) => page.locator(`.mcard[data-id="${id}"]`);
  // the builds' facts are fetched from the hub (pending, a spinner), then judged on this pool
  for (const id of ['tiny-chat', 'tiny-coder', 'qwen3-32b', 'giant-200b', 'bge-large-zh-v1.5'])
    await card(id).locator('.verdict:not(.v-pending)').waitFor({ timeout: 20000 });
  await page.locator('.pool-text', { hasText: /^本集群：2 × H100 80GB HBM3 \(80 GiB\)/ }).waitFor();
  assert.match(await card('tiny-coder').locator('.verdict').innerText(), /^可部署：1 × H100 80GB HBM3（BF16）$/);
  assert.match(await card('bge-large-zh-v1.5').locator('.verdict').innerText(), /^可部署：1 × H100 80GB HBM3（FP32）$/);
  assert.match(await card('qwen3-32b').locator('.verdict').innerText(), /^(可部署|释放占用后可部署)：\d × .+（(BF16|AWQ)）/); // the H100s or the cluster's 2080 Tis
  assert.match(await card('giant-200b').locator('.verdict.v-bad').innerText(), /^需要 \d+ 张 80 GiB 的卡（本集群单节点最多 \d 张）/);
  assert.ok(await card('giant-200b').getByText('需申请访问').isVisible(), 'gated on this hub');
  assert.ok(await card('giant-200b').getByText('200B（激活 20B）').isVisible());
  await card('qwen3-32b').locator('.build[data-format="awq"]').getByText('18.0 GiB').waitFor();
  // Tiny-Chat was downloaded by the test before: ready to deploy
  await card('tiny-chat').getByText('已下载').waitFor();
  assert.ok(await card('tiny-chat').locator('button[name=market-deploy]').isVisible());
  await shot('market');
  // a build the hub does not have says why
  await card('qwen3-32b').locator('.build[data-format="fp8"]').click();
  await card('qwen3-32b').locator('.verdict', { hasText: /^无法读取：.*Qwen3-32B-FP8.*not found/ }).waitFor();
  assert.ok(await card('qwen3-32b').locator('button[name=market-download]').isDisabled());
  await card('qwen3-32b').locator('.build[data-format="bf16"]').click();
  // a phone: one column, nothing wider than the screen
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(() => document.documentElement.scrollWidth <= 390);
  const xs = await page.locator('.mcard').evaluateAll((els) => els.map((e) => e.getBoundingClientRect()).map((r) => [r.left, r.right]));
  assert.ok(xs.every(([l, r]) => l >= 0 && r <= 390 && l === xs[0][0]), `one column within the screen: ${JSON.stringify(xs)}`);
  await shot('market-phone');
  await page.setViewportSize({ width: 1360, height: 860 });
  // only what runs here; one kind
  await page.locator('.el-switch', { has: page.locator('input[name=market-fits]') }).click();
  await card('giant-200b').waitFor({ state: 'detached' });
  assert.ok(await card('tiny-coder').isVisible());
  await page.locator('.el-switch', { has: page.locator('input[name=market-fits]') }).click();
  await card('giant-200b').waitFor();
  await page.locator('.f-kind').click();
  await page.getByRole('option', { name: '向量' }).click();
  await card('tiny-coder').waitFor({ state: 'detached' });
  assert.equal(await page.locator('.mcard').count(), 1);
  await page.locator('.f-kind').click();
  await page.getByRole('option', { name: '对话' }).click();
  await card('tiny-coder').waitFor();
  assert.equal(await card('bge-large-zh-v1.5').count(), 0);
  // the hub's own search, beyond the catalog
  await page.getByRole('tab', { name: '搜索模型仓库' }).click();
  await page.locator('input[name=market-hub-q]').fill('tiny');
  await page.locator('button[name=market-hub-search]').click();
  await card('qwen/Tiny-Coder').locator('.verdict', { hasText: '可部署：1 × H100 80GB HBM3' }).waitFor();
  await card('qwen/Tiny-Chat').getByText('已下载').waitFor();
  await shot('market-search');
  await page.getByRole('tab', { name: '精选模型' }).click();
  // the admin's download settings: two models at once by default; a bad value is refused by field
  await page.locator('button[name=market-settings]').click();
  const dlg = page.locator('.el-dialog', { hasText: '下载设置' });
  assert.equal(await dlg.locator('.el-input-number', { has: page.locator('input[name=dl-parallel]') }).locator('input').inputValue(), '2');
  await dlg.locator('input[name=dl-concurrency]').fill('8');
  await dlg.locator('button[name=save-dl-settings]').click();
  await page.getByText('下载设置已保存').waitFor();
  const ds = await (await fetch(`${srv.url}/api/v1/settings/downloads`, { headers: { authorization: `Bearer ${await srv.login()}` } })).json();
  assert.equal(ds.concurrency, 8);
  // download from its card: live progress, pause and resume, then ready to deploy
  hub.control.slow(300000);
  await card('tiny-coder').locator('button[name=market-download]').click();
  await page.getByText('已开始下载 Tiny-Coder').waitFor();
  await card('tiny-coder').getByText(/MiB \/ [\d.]+ MiB/).waitFor();
  await shot('market-download');
  await card('tiny-coder').locator('button[name=market-pause]').click();
  await card('tiny-coder').getByText('已暂停').waitFor();
  hub.control.slow(0);
  await card('tiny-coder').locator('button[name=market-resume]').click();
  await card('tiny-coder').getByText('已下载').waitFor({ timeout: 30000 });
  // deploy: the wizard with the model, the verdict's GPU count and context
  await card('tiny-coder').locator('button[name=market-deploy]').click();
  await page.waitForURL(/\/deployments\?model=Tiny-Coder&gpus=1&max_model_len=4096$/);
  const wizard = async (gpus, len) => {
    const dlg = page.locator('.el-dialog', { hasText: '部署模型' });
    await dlg.locator('.el-select', { hasText: 'Tiny-Coder' }).waitFor();
    assert.equal(await page.locator('input[name=deployment-name]').inputValue(), 'tiny-coder');
    for (let i = 0; i < 2; i++) await dlg.getByRole('button', { name: '下一步' }).click();
    assert.equal(await dlg.locator('.el-form-item', { hasText: '每个副本的 GPU 数' }).locator('input').inputValue(), gpus);
    assert.equal(await dlg.locator('.el-form-item', { hasText: '上下文长度' }).locator('input').inputValue(), len);
    await page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'hidden' });
  };
  await wizard('1', '4096');
  await page.goto(`${srv.url}/deployments?model=Tiny-Coder&gpus=2&max_model_len=2048`); // a bigger verdict's
  await wizard('2', '2048');
  // on the models page: where it came from
  await page.getByRole('menuitem', { name: '模型', exact: true }).click();
  await page.locator('.el-table').getByText('Tiny-Coder', { exact: true }).click();
  await page.locator('.el-drawer .hub-source', { hasText: 'ModelScope · qwen/Tiny-Coder' }).waitFor();
  assert.ok((await page.locator('.el-drawer .hub-commit').innerText()).trim().length > 1, 'the commit downloaded');
  await page.keyboard.press('Escape');
  await page.locator('.el-drawer').waitFor({ state: 'hidden' });
});

test('tasks: the audit trail, filtered by state', async () => {
  await page.getByRole('menuitem', { name: '操作记录', exact: true }).click();
  await page.locator('.el-table').getByText('deployment.create').first().waitFor();
  assert.ok(await page.locator('.el-table').getByText('finetune.create').first().isVisible());
  await page.locator('.bar .el-select').first().click();
  await page.getByRole('option', { name: '成功' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('.el-table__body .el-tag')].every((t) => t.dataset.state === 'succeeded' && t.textContent.trim() === '成功'));
  await shot('tasks');
});

test('engines: where each program is on this machine; setting a path that is not there says so', async () => {
  await page.getByRole('menuitem', { name: '推理引擎', exact: true }).click();
  const row = (title) => page.locator('.el-table__row', { hasText: title });
  await row('vLLM').getByText(/tests\/shims\/vllm$/).waitFor(); // the shim is first on PATH here
  await row('llama.cpp').getByText(/tests\/shims\/llama-server$/).waitFor(); // the simulator's llama-server shim
  await page.locator('input[name="binary-sglang"]').fill('/opt/sglang/bin/python3');
  await row('SGLang').getByRole('button', { name: '保存' }).click();
  await page.getByText('SGLang 已保存').waitFor();
  assert.equal(await page.locator('input[name="binary-sglang"]').inputValue(), '/opt/sglang/bin/python3');
  await row('SGLang').getByText('未找到').waitFor(); // not there
  await page.locator('textarea[name=custom-argv]').fill('my-server\n--port\n{port}');
  await page.locator('.custom').getByRole('button', { name: '保存' }).click();
  await page.getByText('自定义命令 已保存').waitFor();
  await row('自定义命令').getByText('未找到').waitFor(); // its program is the template's first argument
  await page.locator('textarea[name=custom-argv]').fill('python3\n-m\nhttp.server\n{port}');
  await page.locator('.custom').getByRole('button', { name: '保存' }).click();
  await row('自定义命令').getByText(/\/python3$/).waitFor();
  await shot('engines');
});

test("users: an admin adds one; the server's refusal is shown by its field", async () => {
  await page.getByRole('menuitem', { name: '用户', exact: true }).click();
  await page.locator('.el-table').getByText('admin').first().waitFor();
  await page.getByRole('button', { name: '添加用户' }).click();
  await page.locator('input[name=new-username]').fill('alice');
  await page.locator('input[name=new-password]').fill('short');
  await page.locator('.el-dialog').getByRole('button', { name: '添加用户' }).click();
  await page.locator('.el-form-item__error').first().waitFor();
  await page.locator('input[name=new-password]').fill('alice-password-1');
  await page.locator('.el-dialog').getByRole('button', { name: '添加用户' }).click();
  await page.locator('.el-table').getByText('alice').waitFor();
  await shot('users');
});

// Every page at a laptop's 1280×720 and a phone's 390×844: a screenshot each, no English in
// Chinese, nothing wider than a phone's screen (tables scroll inside themselves), the menu
// behind a button on the phone and foldable on the laptop.
const PAGES = [['dashboard', '/'], ['resources', '/resources'], ['models', '/models'], ['market', '/market'], ['deployments', '/deployments'],
  ['finetune', '/finetune'], ['finetune-jobs', '/finetune/jobs'], ['playground', '/playground'], ['keys', '/keys'], ['usage', '/usage'],
  ['tasks', '/tasks'], ['users', '/users'], ['engines', '/engines']];
async function visit(path) {
  await page.goto(`${srv.url}${path}`);
  await page.locator('.el-main h2, .el-main .el-tabs').first().waitFor();
  await page.waitForLoadState('networkidle', { timeout: 3000 }).catch(() => {}); // pages that poll are never idle
  await page.waitForTimeout(400);
}

test('every page at 1280×720: the menu folds to icons and back; Chinese only', async () => {
  await page.setViewportSize({ width: 1280, height: 720 });
  for (const [name, path] of PAGES) {
    await visit(path);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), 1280, `${name}: no sideways scrolling`);
    await shot(`desktop-${name}`);
  }
  await page.locator('button[name=collapse-menu]').click();
  await page.waitForFunction(() => document.querySelector('.el-aside').getBoundingClientRect().width === 64);
  await shot('desktop-menu-folded');
  await page.reload();
  await page.waitForFunction(() => document.querySelector('.el-aside')?.getBoundingClientRect().width === 64); // remembered
  await page.locator('button[name=collapse-menu]').click();
  await page.waitForFunction(() => document.querySelector('.el-aside').getBoundingClientRect().width === 200);
  // Element Plus speaks Chinese too: its pagination, its empty select, its message box's buttons
  await visit('/tasks');
  await page.locator('.pages', { hasText: /共 \d+ 条/ }).waitFor();
  await visit(`/deployments/${(await srv.api('GET', '/api/v1/deployments/qwen2.5-7b-instruct', { token: await srv.login() })).json.id}`);
  await page.locator('.el-drawer button[name=restart]').click();
  const box = page.locator('.el-message-box', { hasText: '正在处理的请求会中断' });
  await box.waitFor();
  assert.deepEqual((await box.locator('.el-message-box__btns button').allInnerTexts()).map((x) => x.trim()), ['取消', '重启']);
  await shot('desktop-confirm-restart');
  await box.getByRole('button', { name: '取消' }).click();
  await box.waitFor({ state: 'hidden' });
  await page.keyboard.press('Escape');
});

test('every page at 390×844 (a phone): the menu in a drawer, one column, buttons in reach; Chinese only', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [name, path] of PAGES) {
    await visit(path);
    assert.equal(await page.locator('.el-aside').count(), 0, `${name}: no sidebar`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `${name}: ${wide}px wide, more than the screen`);
    await shot(`phone-${name}`);
  }
  // the dashboard's numbers: two cards a row, their labels on one line
  await visit('/');
  const cards = await page.locator('.stat .el-card').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width));
  assert.ok(cards.every((w) => w > 150), `stat cards ${cards}`);
  // the chat: the input and the send button on the screen, the chat full width
  await visit('/playground');
  const send = await page.locator('button[name=chat-send]').boundingBox();
  assert.ok(send && send.x + send.width <= 390 && send.y + send.height <= 844, `send button at ${JSON.stringify(send)}`);
  assert.ok((await page.locator('.chat').boundingBox()).width > 330, 'the chat takes the width');
  // the menu: behind the button, in a drawer
  await page.locator('button[name=open-menu]').click();
  await page.locator('.menu-drawer').getByRole('menuitem', { name: '模型部署' }).waitFor();
  await shot('phone-menu');
  await page.locator('.menu-drawer').getByRole('menuitem', { name: '模型部署' }).click();
  await page.waitForURL(/\/deployments$/);
  await page.locator('.menu-drawer').waitFor({ state: 'hidden' });
  // a deployment's drawer and the wizard fit the screen
  await page.locator('.el-table').getByText('qwen2.5-7b-instruct', { exact: true }).click();
  await page.locator('.el-drawer .el-tag[data-state=running]').first().waitFor();
  await shot('phone-deployment');
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: '部署模型' }).first().click();
  await page.locator('.wizard').getByText('调用时使用的模型名').waitFor();
  const dlg = await page.locator('.wizard').boundingBox();
  assert.ok(dlg.x >= 0 && dlg.x + dlg.width <= 390, `the wizard within the screen: ${JSON.stringify(dlg)}`);
  await shot('phone-wizard');
  await page.keyboard.press('Escape');
  await page.setViewportSize({ width: 1360, height: 860 });
});

test('the deploy wizard checks the name when its step is left', async () => {
  await visit('/deployments');
  await page.getByRole('button', { name: '部署模型' }).first().click();
  const dlg = page.locator('.wizard');
  await dlg.locator('.el-select').click();
  await page.getByRole('option', { name: /^Qwen2.5-7B-Instruct（/ }).click();
  await dlg.locator('button[name=wizard-next]').click(); // qwen2.5-7b-instruct: taken
  await dlg.locator('.el-form-item__error', { hasText: '已有部署或别名叫 qwen2.5-7b-instruct' }).waitFor();
  await page.locator('input[name=deployment-name]').fill('a name with spaces');
  await dlg.locator('button[name=wizard-next]').click();
  await dlg.locator('.el-form-item__error', { hasText: '模型名只能包含字母、数字' }).waitFor();
  await shot('deploy-wizard-name');
  await page.locator('input[name=deployment-name]').fill('qwen-second');
  await dlg.locator('button[name=wizard-next]').click();
  await dlg.getByText('推理引擎', { exact: true }).first().waitFor(); // on to the engine
  assert.equal(await dlg.locator('.el-form-item__error').count(), 0);
  await page.keyboard.press('Escape');
  await dlg.waitFor({ state: 'hidden' });
});

test('the deploy wizard sizes the GPUs by the model\'s memory, checks the resources step, and offers the fix a refusal implies', async () => {
  const T = await srv.login();
  // a model one 80 GiB card cannot hold at its default context: Qwen3-32B's shape with 72 layers (~73 GB of weights, sparse)
  const cfg = { ...JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'models', 'Qwen3-32B', 'config.json'), 'utf8')), num_hidden_layers: 72 };
  const md = join(modelDir, 'Qwen3-36B-Deep');
  mkdirSync(md, { recursive: true });
  writeFileSync(join(md, 'config.json'), JSON.stringify(cfg));
  const { head, dataBytes } = safetensorsHeader(tensorsFor(cfg));
  const fd = openSync(join(md, 'model.safetensors'), 'w');
  writeSync(fd, head);
  ftruncateSync(fd, head.length + dataBytes);
  closeSync(fd);
  assert.equal((await srv.api('POST', '/api/v1/models', { token: T, body: { path: md } })).status, 201);
  // the local cards freed: what the earlier tests deployed is stopped (and started again at the end)
  const list = (j) => j.items ?? j;
  const running = list((await srv.api('GET', '/api/v1/deployments?limit=500', { token: T })).json).filter((d) => d.desired !== 'stopped');
  for (const d of running) await srv.api('POST', `/api/v1/deployments/${d.id}/stop`, { token: T, body: {} });
  await waitUntil(srv, 'the local cards free', async () =>
    list((await srv.api('GET', '/api/v1/gpus', { token: T })).json).filter((g) => g.node === 'local').every((g) => !g.memory.reserved), 30000);

  await visit('/deployments');
  await page.getByRole('button', { name: '部署模型' }).first().click();
  const dlg = page.locator('.wizard');
  await dlg.locator('.el-select').click();
  await page.getByRole('option', { name: /^Qwen3-36B-Deep（/ }).click();
  for (let i = 0; i < 2; i++) await dlg.locator('button[name=wizard-next]').click();
  // 79 GiB a card on one GPU, 40 on two: two is the default
  await dlg.getByText('按模型显存估算：2 张 GPU 可以放下').waitFor();
  const count = dlg.locator('input[name=gpus-per-replica]');
  assert.equal(await count.inputValue(), '2');
  // the resources step is checked as it is left: picked cards with none picked, a context longer than the model's
  await dlg.getByText('指定显卡').click();
  await page.locator('input[name=max-model-len]').fill('50000');
  await page.locator('input[name=max-model-len]').press('Tab');
  await dlg.locator('button[name=wizard-next]').click();
  await dlg.locator('.el-form-item__error', { hasText: '请至少点选一张显卡' }).waitFor();
  await dlg.locator('.el-form-item__error', { hasText: '超过模型的上下文 40960' }).waitFor();
  await shot('deploy-wizard-check');
  await dlg.getByText('按数量').click();
  await page.locator('input[name=max-model-len]').fill('0');
  await page.locator('input[name=max-model-len]').press('Tab');
  await waitUntil(srv, 'a changed field clears its message', async () => (await dlg.locator('.el-form-item__error').count()) === 0, 3000);
  // one GPU is refused; the refusal offers two GPUs or the context that fits, one click each
  await count.fill('1');
  await count.press('Tab');
  await dlg.locator('button[name=wizard-next]').click();
  await dlg.locator('.el-alert--error', { hasText: '78.8 GiB' }).waitFor();
  await dlg.locator('button[name=fix-gpus]', { hasText: '使用 2 张 GPU' }).waitFor();
  await dlg.locator('button[name=fix-context]', { hasText: '最大上下文 7168 可以放下' }).waitFor();
  await shot('deploy-wizard-fix');
  await dlg.locator('button[name=fix-context]').click();
  await dlg.getByText(/每块 GPU 需要 .* GiB；上下文 7168；/).waitFor();
  assert.equal(await dlg.locator('.el-alert--error').count(), 0);
  // back, the context cleared, one GPU again: the other way out
  await dlg.getByRole('button', { name: '上一步' }).click();
  await page.locator('input[name=max-model-len]').fill('0');
  await page.locator('input[name=max-model-len]').press('Tab');
  assert.equal(await count.inputValue(), '1');
  await dlg.locator('button[name=wizard-next]').click();
  await dlg.locator('button[name=fix-gpus]').click();
  await dlg.getByText('副本 0 在 local: GPU 0, GPU 1').waitFor();
  assert.equal(await dlg.locator('.el-alert--error').count(), 0);
  await shot('deploy-wizard-fixed');
  await dlg.getByRole('button', { name: '上一步' }).click();
  assert.equal(await count.inputValue(), '2', 'the fix set the field');
  await page.keyboard.press('Escape');
  await dlg.waitFor({ state: 'hidden' });
  for (const d of running) await srv.api('POST', `/api/v1/deployments/${d.id}/start`, { token: T, body: {} });
  await waitUntil(srv, 'qwen2.5-7b-instruct running again', async () =>
    (await srv.api('GET', '/api/v1/deployments/qwen2.5-7b-instruct', { token: T })).json.state === 'running', 30000);
});

test('sign out ends the session', async () => {
  await page.locator('.user-menu').click();
  await page.getByText('退出登录').click();
  await page.waitForURL(/\/login/);
  await page.goto(`${srv.url}/`);
  await page.waitForURL(/\/login/);
});

test('a user who is not an admin: no Users page, no model registration, her own password; the playground works with her session', async () => {
  await page.locator('input[name=username]').fill('alice');
  await page.locator('input[name=password]').fill('alice-password-1');
  await page.getByRole('button', { name: '登录' }).click();
  await page.waitForURL(`${srv.url}/`);
  await page.getByRole('menuitem', { name: '模型体验', exact: true }).waitFor();
  assert.equal(await page.getByRole('menuitem', { name: '用户', exact: true }).count(), 0, 'no Users menu');
  // her dashboard lists her own deployments (none) and the models others serve that she may call
  await page.getByText('还没有部署：先注册模型，再部署。').waitFor();
  await page.locator('.callable').getByText('qwen2.5-7b-instruct', { exact: true }).waitFor();
  await page.locator('.callable .el-table__row').filter({ has: page.getByText('qwen2.5-7b-instruct', { exact: true }) })
    .locator('[data-state=running]', { hasText: '运行中' }).waitFor();
  await shot('dashboard-user');
  await page.goto(`${srv.url}/users`);
  await page.waitForURL(`${srv.url}/`); // the route is for admins
  await page.getByRole('menuitem', { name: '模型', exact: true }).click();
  await page.locator('.el-table').getByText('Qwen2.5-7B-Instruct', { exact: true }).waitFor();
  assert.equal(await page.getByRole('button', { name: '注册模型' }).count(), 0, 'registering is for admins');
  // her own password: the server's refusal by field, then the change
  await page.locator('.user-menu').click();
  await page.getByText('修改密码').click();
  await page.locator('input[name=current-password]').fill('not-it');
  await page.locator('input[name=new-password]').fill('alice-password-2');
  await page.locator('.el-dialog').getByRole('button', { name: '修改密码' }).click();
  await page.locator('.el-form-item__error', { hasText: "'current_password'（当前密码）不正确" }).waitFor();
  await page.locator('input[name=current-password]').fill('alice-password-1');
  await page.locator('.el-dialog').getByRole('button', { name: '修改密码' }).click();
  await page.getByText('密码已修改；其他登录会话已退出。').waitFor();
  await page.locator('input[name=current-password]').waitFor({ state: 'hidden' });
  // the playground with her session
  await page.getByRole('menuitem', { name: '模型体验', exact: true }).click();
  await page.locator('textarea[name=chat-input]').fill('hello');
  await page.locator('button[name=chat-send]').click();
  await page.locator('.msg.assistant .stats', { hasText: /个 token/ }).waitFor();
  // the model market: hers to browse, not to download from
  await page.getByRole('menuitem', { name: '模型市场', exact: true }).click();
  await page.locator('.mcard[data-id="giant-200b"] .verdict:not(.v-pending)').waitFor();
  await page.locator('.mcard[data-id="giant-200b"]').getByText('下载模型需要管理员权限').waitFor();
  assert.equal(await page.locator('button[name=market-download]').count(), 0, 'downloading is for admins');
  assert.ok(await page.locator('.mcard[data-id="tiny-chat"] button[name=market-deploy]').isVisible(), 'deploying a downloaded one is hers too');
  await page.locator('.user-menu').click();
  await page.getByText('退出登录').click();
  await page.waitForURL(/\/login/);
});
