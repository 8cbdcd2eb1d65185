// The console's two languages: every key the pages use exists in both, and
// both have the same keys (a missing one would show its raw name).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';

const src = join(ROOT, 'ui', 'src');
const flat = (o, p = '') => Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' ? flat(v, `${p}${k}.`) : [`${p}${k}`]));

test('every key used by the pages exists in zh-CN and en, and the two have the same keys', async () => {
  const zh = new Set(flat((await import(join(src, 'i18n', 'zh-CN.js'))).default));
  const en = new Set(flat((await import(join(src, 'i18n', 'en.js'))).default));
  assert.deepEqual([...zh].filter((k) => !en.has(k)), [], 'in zh-CN only');
  assert.deepEqual([...en].filter((k) => !zh.has(k)), [], 'in en only');
  const files = readdirSync(join(src, 'pages')).map((f) => join(src, 'pages', f));
  const used = new Set();
  for (const f of files)
    for (const m of readFileSync(f, 'utf8').matchAll(/\bt\('([a-z_]+\.[a-z_.]+)'/g)) used.add(m[1]);
  assert.ok(used.size > 100, `found the keys the pages use (${used.size})`);
  assert.deepEqual([...used].filter((k) => !zh.has(k)).sort(), [], 'used by a page but not translated');
});
