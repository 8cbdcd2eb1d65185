// The web console in a real browser (playwright-core driving Debian's
// chromium): sign in, the dashboard with simulated GPUs, the language switch
// (remembered), sign out. A screenshot of each page goes to ui/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, ADMIN_PASSWORD, startServer } from './lib.mjs';

const CHROMIUM = process.env.AIMAAS_CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(ROOT, 'ui', 'screenshots');
let srv, browser, page;

before(async () => {
  assert.ok(existsSync(join(ROOT, 'build', 'ui', 'index.html')), 'the console is built (make ui)');
  mkdirSync(SHOTS, { recursive: true });
  srv = await startServer({ args: ['--sim-gpus', '2x80GiB:NVIDIA H100 80GB HBM3@9.0', '--ui-dir', join(ROOT, 'build', 'ui')] });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  const ctx = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1360, height: 860 } });
  page = await ctx.newPage();
  page.on('pageerror', (e) => { throw e; });
});

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

test('sign out ends the session', async () => {
  await page.locator('.user').click();
  await page.getByText('退出登录').click();
  await page.waitForURL(/\/login/);
  await page.goto(`${srv.url}/`);
  await page.waitForURL(/\/login/);
});
