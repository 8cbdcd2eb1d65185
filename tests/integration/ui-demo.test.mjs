// A Chinese newcomer's first run in the browser, from a fresh `make demo`
// (scripts/demo.mjs: simulated GPUs and engines, demo models and dataset) to
// a streamed Chinese answer and a finished fine-tune, all in the console, in
// Chinese, at 1280×720 and on a phone (390×844), with a screenshot of each
// step (ui/screenshots/first-run-*.png) and no English in any of them.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, freePort, tempDir } from './lib.mjs';
import { startDemo, stop, stopDemos } from './demo-lib.mjs';
import { englishLeaks } from './ui-text.mjs';

const SHOTS = join(ROOT, 'ui', 'screenshots');
const CHROMIUM = process.env.AIMAAS_CHROMIUM || '/usr/bin/chromium';
// the demo's names, as a select or a table shows them
const NAMES = ['admin', 'local', 'bge', 'reranker', 'demo-sft-zh', 'demo', 'sft', 'zh'];
let demo, base, browser, page, dataDir;
const pageErrors = [];

before(async () => {
  assert.ok(existsSync(join(ROOT, 'build', 'ui', 'index.html')), 'the console is built (make ui)');
  mkdirSync(SHOTS, { recursive: true });
  dataDir = join(tempDir('aimaas-demo-ui-'), 'data-demo');
  const port = await freePort();
  demo = await startDemo(port, dataDir);
  base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  const ctx = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1280, height: 720 } });
  page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

afterEach(() => assert.deepEqual(pageErrors.splice(0), [], 'the page threw'));

after(async () => {
  await browser?.close();
  if (demo) await stop(demo.child);
  stopDemos();
});

async function shot(name) {
  await page.waitForTimeout(350);
  await page.screenshot({ path: join(SHOTS, `first-run-${name}.png`), fullPage: true });
  assert.deepEqual(await englishLeaks(page, NAMES), [], `English in the Chinese page first-run-${name}`);
}

test('sign in with the password the demo printed: the console says it is a demo', async () => {
  await page.goto(`${base}/`);
  await page.locator('input[name=username]').fill('admin');
  await page.locator('input[name=password]').fill(readFileSync(join(dataDir, 'demo-admin-password'), 'utf8').trim());
  await page.getByRole('button', { name: '登录' }).click();
  await page.locator('.demo-tag', { hasText: '演示模式' }).waitFor();
  await page.getByText('NVIDIA GeForce RTX 4090').first().waitFor(); // the simulated cards
  await shot('dashboard');
});

test('deploy the demo chat model with the wizard\'s defaults; it runs', async () => {
  await page.getByRole('menuitem', { name: '模型部署', exact: true }).click();
  await page.getByRole('button', { name: '部署模型' }).first().click();
  const dlg = page.locator('.el-dialog');
  await dlg.locator('.el-select').first().click();
  await page.getByRole('option', { name: /^Qwen2.5-7B-Instruct/ }).click();
  for (let i = 0; i < 3; i++) await dlg.getByRole('button', { name: '下一步' }).click();
  await page.getByText(/每块 GPU 需要 .* GiB/).waitFor(); // the planner's verdict
  await shot('deploy-wizard');
  await dlg.getByRole('button', { name: '部署', exact: true }).click();
  await page.locator('.el-drawer .el-tag[data-state=running]').first().waitFor({ timeout: 30000 });
  await shot('deployment');
  await page.keyboard.press('Escape');
  // Resources says which deployment holds the card, and that the cards are simulated
  await page.getByRole('menuitem', { name: '资源', exact: true }).click();
  const held = page.locator('.held[data-held="0"]');
  await held.getByText('qwen2.5-7b-instruct').waitFor();
  assert.match(await held.innerText(), /模型部署 qwen2\.5-7b-instruct（副本 0） · [\d.]+ GiB/);
  await page.locator('.el-table').getByText('模拟', { exact: true }).first().waitFor(); // the node's GPU source
  await shot('resources');
});

test('ask it in Chinese in the playground: the answer streams in, in Chinese', async () => {
  await page.getByRole('menuitem', { name: '模型体验', exact: true }).click();
  await page.locator('textarea[name=chat-input]').fill('你好，请介绍一下你自己');
  await page.locator('button[name=chat-send]').click();
  await page.locator('.msg.assistant .stats', { hasText: /首 token \d+ ms/ }).waitFor({ timeout: 30000 });
  const answer = await page.locator('.msg.assistant .text').last().innerText();
  assert.ok((answer.match(/[\u4e00-\u9fff]/g) || []).length >= 30, `a Chinese answer: ${answer}`);
  assert.match(answer, /你好，请介绍一下你自己/, 'the simulator\'s answer refers to the question');
  await shot('chat');
});

test('fine-tune it with LoRA on the demo dataset: the job finishes', async () => {
  await page.getByRole('menuitem', { name: '模型微调', exact: true }).click();
  await page.getByRole('tab', { name: '微调任务' }).click();
  await page.getByRole('button', { name: '新建微调任务' }).click();
  const dlg = page.locator('.el-dialog', { hasText: '基础模型' });
  await dlg.locator('.el-select').first().click();
  await page.getByRole('option', { name: 'Qwen2.5-7B-Instruct', exact: true }).click();
  await dlg.locator('.el-select').nth(1).click();
  await page.getByRole('option', { name: 'demo-sft-zh (24)' }).click();
  await dlg.locator('.el-dialog__title').click(); // closes the list
  // a learning rate typed wrong is named, not dropped for a default
  const lr = dlg.locator('input[name=learning-rate]');
  await lr.fill('abc');
  await dlg.getByText(/'hyper.learning_rate' 必须是数字/).waitFor();
  assert.ok(await dlg.getByRole('button', { name: '开始训练' }).isDisabled());
  await lr.fill('1e-4');
  await dlg.getByText(/可以运行/).waitFor();
  await shot('finetune-wizard');
  await dlg.getByRole('button', { name: '开始训练' }).click();
  await page.locator('.el-drawer .el-tag[data-state=succeeded]').first().waitFor({ timeout: 60000 });
  await shot('finetune-done');
  await page.keyboard.press('Escape');
});

test('the same on a phone: the demo mark, the menu in a drawer, the chat in reach', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/playground`);
  await page.locator('.demo-tag', { hasText: '演示模式' }).waitFor();
  assert.ok(await page.locator('button[name=chat-send]').isVisible());
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), 390, 'no sideways scrolling');
  await shot('phone-chat');
  await page.goto(`${base}/`);
  await page.locator('button[name=open-menu]').click();
  await page.getByRole('menuitem', { name: '模型微调', exact: true }).waitFor();
  await shot('phone-menu');
});
