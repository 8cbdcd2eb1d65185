// The web console in a real browser (playwright-core driving Debian's
// chromium): sign in, the dashboard with simulated GPUs, the language switch
// (remembered), sign out. A screenshot of each page goes to ui/screenshots/.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, ADMIN_PASSWORD, startServer, tempDir } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const CHROMIUM = process.env.AIMAAS_CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(ROOT, 'ui', 'screenshots');
let srv, browser, page, datasetDir;
const pageErrors = []; // uncaught errors in the console's code: checked after each test

before(async () => {
  assert.ok(existsSync(join(ROOT, 'build', 'ui', 'index.html')), 'the console is built (make ui)');
  mkdirSync(SHOTS, { recursive: true });
  const dir = tempDir();
  mkdirSync(join(dir, 'models'));
  makeModel('Qwen2.5-7B-Instruct', join(dir, 'models'));
  srv = await startServer({ dataDir: dir, args: ['--sim-gpus', '2x80GiB:NVIDIA H100 80GB HBM3@9.0', '--ui-dir', join(ROOT, 'build', 'ui'),
    '--stop-engines-on-exit'], env: { PATH: `${join(ROOT, 'tests', 'shims')}:${process.env.PATH}`,
    AIMAAS_SIM: join(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'), AIMAAS_SIM_STEP_MS: '60' } });
  writeFileSync(join(dir, 'qa.json'), JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ instruction: `Q${i}?`, input: '', output: `A${i}.` }))));
  writeFileSync(join(dir, 'bad.jsonl'), '{"instruction":"ok","output":"fine"}\n{"instruction":"no answer"}\n');
  datasetDir = dir;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  const ctx = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1360, height: 860 } });
  page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

afterEach(() => assert.deepEqual(pageErrors.splice(0), [], 'the page threw'));

after(async () => {
  await browser?.close();
  await srv.stop();
  srv.cleanup();
});

const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

test('an app route without a session goes to the sign-in page; a wrong password shows the server\'s words', async () => {
  await page.goto(`${srv.url}/`);
  await page.waitForURL(/\/login\?next=/);
  await page.getByRole('heading', { name: 'aimaas' }).waitFor();
  assert.ok(await page.getByText('私有化 AI 模型服务平台').isVisible(), 'Chinese by default for a zh-CN browser');
  await page.locator('input[name=password]').fill('wrong-password');
  await page.getByRole('button', { name: '登录' }).click();
  await page.getByText(/wrong username or password/).waitFor();
  await shot('login');
});

test('sign in: the dashboard shows the GPUs with their memory and the recent tasks', async () => {
  await page.locator('input[name=password]').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: '登录' }).click();
  await page.waitForURL(`${srv.url}/`);
  await page.getByText('#0 NVIDIA H100 80GB HBM3').waitFor();
  assert.ok(await page.getByText('#1 NVIDIA H100 80GB HBM3').isVisible());
  assert.ok(await page.getByText('还没有部署：先注册模型，再部署。').isVisible(), 'the empty state says what to do next');
  await page.getByText('auth.login').first().waitFor(); // the sign-in is the newest task
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
  await page.getByText('Qwen2.5-7B-Instruct (model)').click();
  assert.match(await page.locator('input[name=model-path]').inputValue(), /models\/Qwen2.5-7B-Instruct$/);
  await page.locator('.el-dialog').getByRole('button', { name: '注册模型' }).click();
  await page.locator('.el-table').getByText('Qwen2ForCausalLM').waitFor();
  assert.ok(await page.locator('.el-table').getByText('7.6B').isVisible());
  await shot('models');
});

test('deploy it through the wizard: the verdict and command first, then running with its log streaming', async () => {
  await page.getByRole('menuitem', { name: '模型部署', exact: true }).click();
  await page.getByRole('button', { name: '部署模型' }).first().click();
  await page.locator('.el-dialog .el-select').click();
  await page.getByRole('option', { name: /Qwen2.5-7B-Instruct/ }).click();
  assert.equal(await page.locator('input[name=deployment-name]').inputValue(), 'qwen2.5-7b-instruct');
  for (let i = 0; i < 3; i++) await page.getByRole('button', { name: '下一步' }).click();
  await page.getByText(/每块 GPU 需要 .* GiB/).waitFor();
  assert.match(await page.locator('pre.cmd').innerText(), /^vllm serve .*Qwen2.5-7B-Instruct .*--served-model-name qwen2.5-7b-instruct/);
  await shot('deploy-wizard');
  await page.getByRole('button', { name: '部署', exact: true }).click();
  const drawer = page.locator('.el-drawer');
  await drawer.locator('.el-tag', { hasText: 'running' }).first().waitFor({ timeout: 20000 });
  await drawer.locator('pre.log', { hasText: 'Application startup complete' }).waitFor();
  await shot('deployment');
  await drawer.getByRole('button', { name: '删除' }).click();
  await page.locator('.el-message-box').getByRole('button', { name: /OK|确定/ }).click();
  await page.getByText('还没有部署：先注册模型，再部署。').waitFor({ timeout: 20000 });
});

test('datasets: upload, the validation report names the bad record', async () => {
  await page.getByRole('menuitem', { name: '模型微调', exact: true }).click();
  await page.getByText('还没有数据集：填写名称后上传文件。').waitFor();
  await page.locator('input[name=dataset-name]').fill('bad');
  await page.locator('input[type=file]').setInputFiles(join(datasetDir, 'bad.jsonl'));
  await page.getByText('1 条有效，1 条无效').waitFor();
  assert.ok(await page.locator('.errors').getByText("missing 'output'").isVisible());
  await shot('dataset-report');
  await page.locator('input[name=dataset-name]').fill('qa');
  await page.locator('input[type=file]').setInputFiles(join(datasetDir, 'qa.json'));
  await page.getByText('40 条有效，0 条无效').waitFor();
});

test('a LoRA fine-tune: the loss chart draws points as the simulated trainer logs them', async () => {
  await page.getByRole('tab', { name: '微调任务' }).click();
  await page.getByRole('button', { name: '新建微调任务' }).click();
  const dlg = page.locator('.el-dialog');
  await dlg.locator('.el-select').nth(0).click();
  await page.getByRole('option', { name: 'Qwen2.5-7B-Instruct' }).click();
  await dlg.locator('.el-select').nth(1).click();
  await page.getByRole('option', { name: 'qa' }).click();
  await dlg.getByRole('button', { name: '开始训练' }).click();
  const drawer = page.locator('.el-drawer');
  await page.waitForFunction(() => Number(document.querySelector('.el-drawer .chart')?.dataset.points) >= 3, null, { timeout: 20000 });
  assert.ok(await drawer.locator('canvas').first().isVisible(), 'ECharts drew on its canvas');
  await drawer.getByText(/第 \d+\/120 步/).waitFor(); // 40 records × 3 epochs, batch 1
  await shot('finetune-job');
  await drawer.locator('.el-tag', { hasText: 'succeeded' }).waitFor({ timeout: 30000 });
  await drawer.getByText('已注册为模型').waitFor();
  await page.keyboard.press('Escape');
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
});

test('sign out ends the session', async () => {
  await page.locator('.user').click();
  await page.getByText('退出登录').click();
  await page.waitForURL(/\/login/);
  await page.goto(`${srv.url}/`);
  await page.waitForURL(/\/login/);
});
