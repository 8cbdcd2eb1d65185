// The newcomer's first run as README.md tells it: `make demo` (here
// scripts/demo.mjs on a free port and a scratch data dir), then the README's
// API blocks marked `<!-- readme-test: demo|finetune -->`, run by bash as written
// (only the address replaced): deploy the demo chat model, make a key, get a
// Chinese answer; a LoRA fine-tune on the demo dataset, its adapter served. A second start of the demo on the same data dir
// reuses everything (idempotent).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, freePort, tempDir } from './lib.mjs';
import { startDemo, stop, stopDemos } from './demo-lib.mjs';

after(() => stopDemos());

function readmeBlock(tag) {
  const md = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = md.match(new RegExp(`<!-- readme-test: ${tag} -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\``));
  assert.ok(m, `README.md has a sh block marked readme-test: ${tag}`);
  return m[1];
}

test('make demo, then the README example: deploy, a key, a Chinese answer', { timeout: 180000 }, async () => {
  const dir = tempDir('aimaas-demo-');
  const dataDir = join(dir, 'data-demo');
  const port = await freePort();
  const { child } = await startDemo(port, dataDir);
  // the blocks run in one shell, one after the other, as a reader pastes them
  const block = `${readmeBlock('demo')}\necho '-- finetune'\n${readmeBlock('finetune')}`.replaceAll('localhost:8080', `127.0.0.1:${port}`);
  // bash runs the block from the folder data-demo/ is in, as a user in the source tree would
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', block], { cwd: dir, encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `the README block failed:\n${r.stdout}\n${r.stderr}`);
  const [first, second] = r.stdout.split('-- finetune\n');
  for (const part of [first, second]) {
    const answer = part.trim().split('\n').at(-1);
    assert.ok(answer && answer !== 'null' && /[\u4e00-\u9fff]{4}/.test(answer), `a Chinese answer: ${r.stdout}`);
  }
  // the demo says it is one, and the models and dataset are there
  const h = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
  assert.equal(h.demo, true);
  assert.equal(await stop(child), 0);
  // a second start reuses the data dir: same password, nothing registered twice
  const again = await startDemo(port, dataDir);
  const pw = readFileSync(join(dataDir, 'demo-admin-password'), 'utf8').trim();
  assert.ok(again.out().includes(pw));
  const login = await (await fetch(`http://127.0.0.1:${port}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: pw }),
  })).json();
  const models = await (await fetch(`http://127.0.0.1:${port}/api/v1/models?limit=500`, { headers: { authorization: `Bearer ${login.token}` } })).json();
  assert.deepEqual(models.items.map((m) => m.name).sort(),
    ['Qwen2.5-7B-Instruct', 'Qwen2.5-VL-7B-Instruct', 'bge-large-zh-v1.5', 'bge-reranker-v2-m3', 'demo-lora']);
  const sets = await (await fetch(`http://127.0.0.1:${port}/api/v1/datasets`, { headers: { authorization: `Bearer ${login.token}` } })).json();
  assert.deepEqual(sets.items.map((d) => d.name), ['demo-sft-zh']);
  assert.equal(sets.items[0].state, 'valid');
  assert.equal(sets.items[0].records, 24);
  assert.equal(sets.items[0].visibility, 'shared');
  assert.equal(await stop(again.child), 0);
});
