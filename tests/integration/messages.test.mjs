// The API's messages in two languages: every literal English template a
// user can see (am_err_set's and the other formatters' of src/base/am_msg.h)
// has a Chinese entry in src/base/am_msg_zh.c, and each Chinese template
// takes the same arguments as its English one. A new message without its
// Chinese fails here. (The C side drops a mismatched entry too, and
// tests/unit/test_base.c checks the table as compiled.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './lib.mjs';

// The formatters whose template argument is looked up in the table: the
// function, the index of its template argument, and (for static helpers)
// the one file it lives in.
const FORMATTERS = [
  { fn: 'am_err_set', arg: 3 },
  { fn: 'am_msg_fmt', arg: 4 },
  { fn: 'am_msg_zhf', arg: 2 },
  { fn: 'am_msg_buf_printf', arg: 1 },
  { fn: 'AM_MSG_W', arg: 0 },
  { fn: 'AM_MSG_T', arg: 0 }, // stored in English, translated when read
  { fn: 'refuse', arg: 3, file: 'src/sched/am_planner.c' },
  { fn: 'say', arg: 1, file: 'src/finetune/am_dataset.c' },
  { fn: 'oai_error', arg: 5, file: 'src/gateway/gw_proxy.c' },
  { fn: 'reject', arg: 7, file: 'src/gateway/gw_proxy.c' },
];
// Templates that pass a message made elsewhere through unchanged.
const PASS_THROUGH = new Set(['%s']);

const cFiles = (dir) => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? cFiles(p) : p.endsWith('.c') ? [p] : [];
});

// The arguments of a call whose '(' is just before s[i], as source text.
function callArgs(s, i) {
  const out = [];
  let depth = 0, start = i;
  for (; i < s.length; i++) {
    const c = s[i];
    if (c === '"' || c === "'") {
      for (i++; s[i] !== c; i++) if (s[i] === '\\') i++;
    } else if (c === '/' && s[i + 1] === '*') i = s.indexOf('*/', i) + 1;
    else if (c === '/' && s[i + 1] === '/') i = s.indexOf('\n', i);
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) {
      if (depth === 0) { out.push(s.slice(start, i)); return out; }
      depth--;
    } else if (c === ',' && depth === 0) { out.push(s.slice(start, i)); start = i + 1; }
  }
  return out;
}

// A C string literal (adjacent ones joined) as text; null when a is not one.
function literal(a) {
  a = a.trim();
  while (a.startsWith('(') && a.endsWith(')')) a = a.slice(1, -1).trim();
  let r = '', i = 0;
  const esc = { n: '\n', t: '\t', '\\': '\\', '"': '"', "'": "'" };
  while (i < a.length) {
    while (/\s/.test(a[i])) i++;
    if (i >= a.length) break;
    if (a[i] !== '"') return null;
    for (i++; a[i] !== '"'; i++) {
      if (a[i] === '\\') {
        i++;
        if (!(a[i] in esc)) return null;
        r += esc[a[i]];
      } else r += a[i];
    }
    i++;
  }
  return r;
}

// The literals an argument may be: one literal, or each branch of "c ? a : b".
function literals(a) {
  const l = literal(a);
  if (l !== null) return [l];
  let depth = 0, q = -1, colon = -1;
  for (let i = 0; i < a.length; i++) {
    const c = a[i];
    if (c === '"') { for (i++; a[i] !== '"'; i++) if (a[i] === '\\') i++; continue; }
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (depth === 0 && c === '?' && q < 0) q = i;
    else if (depth === 0 && c === ':' && q >= 0 && colon < 0) colon = i;
  }
  if (q < 0 || colon < 0) return null;
  const a1 = literals(a.slice(q + 1, colon)), a2 = literals(a.slice(colon + 1));
  return a1 && a2 ? [...a1, ...a2] : null;
}

// What the sources format: template -> where, and the calls whose template
// is not a literal.
function scanSources() {
  const found = new Map(), nonLiteral = [];
  for (const file of cFiles(join(ROOT, 'src'))) {
    const rel = relative(ROOT, file);
    if (rel === 'src/base/am_msg_zh.c') continue;
    const s = readFileSync(file, 'utf8');
    for (const f of FORMATTERS) {
      if (f.file && f.file !== rel) continue;
      const re = new RegExp(`\\b${f.fn}\\(`, 'g');
      let m;
      while ((m = re.exec(s))) {
        const lineStart = s.lastIndexOf('\n', m.index) + 1;
        const before = s.slice(lineStart, m.index);
        if (/^\s*(static\s+)?(int|void|const char \*)\s*$/.test(before) || /^#define/.test(before)) continue; // its definition
        const a = callArgs(s, m.index + m[0].length);
        const line = s.slice(0, m.index).split('\n').length;
        const lits = a.length > f.arg ? literals(a[f.arg]) : null;
        if (!lits) { nonLiteral.push(`${rel}:${line}: ${f.fn}(... ${(a[f.arg] || '').trim()} ...)`); continue; }
        for (const t of lits) {
          if (PASS_THROUGH.has(t)) continue;
          if (!found.has(t)) found.set(t, []);
          found.get(t).push(`${rel}:${line}`);
        }
      }
    }
  }
  return { found, nonLiteral };
}

// The table: [{en, zh, line}].
function readTable() {
  const s = readFileSync(join(ROOT, 'src/base/am_msg_zh.c'), 'utf8');
  const start = s.indexOf('am__msg_table[] = {');
  assert.ok(start > 0, 'am_msg_zh.c defines am__msg_table');
  const body = s.slice(s.indexOf('{', start) + 1);
  const entries = [];
  let i = 0;
  for (;;) {
    const open = body.indexOf('{', i), end = body.indexOf('};', i);
    if (open < 0 || (end >= 0 && end < open)) break;
    const a = callArgs(body, open + 1);
    const line = s.slice(0, s.indexOf('{', start) + 1 + open).split('\n').length;
    assert.equal(a.length, 2, `am_msg_zh.c:${line}: an entry is { "English", "Chinese" }`);
    const en = literal(a[0]), zh = literal(a[1]);
    assert.ok(en !== null && zh !== null, `am_msg_zh.c:${line}: both are string literals`);
    entries.push({ en, zh, line });
    i = open + 1 + a.join(',').length + 1;
  }
  return entries;
}

// A template's arguments: ["d", "lld", "s", ...] by position; throws on a
// template am_msg would refuse (mixed positional and plain, %n, a gap).
function convs(t) {
  const types = [];
  let next = 1, positional = null;
  const re = /%(?:(\d+)\$)?([-+ #0'I]*)(\*(?:(\d+)\$)?|\d+)?(?:\.(\*(?:(\d+)\$)?|\d*))?(hh|ll|[hlLjztqZ])?([%a-zA-Z])?/g;
  let m;
  const set = (pos, type) => {
    if (types[pos - 1] && types[pos - 1] !== type) throw new Error(`argument ${pos} is ${types[pos - 1]} and ${type}`);
    types[pos - 1] = type;
  };
  while ((m = re.exec(t))) {
    const [, pos, , width, wpos, prec, ppos, lenRaw, conv] = m;
    if (conv === '%' && !pos && !width && !prec && !lenRaw) continue;
    if (!conv) throw new Error('a conversion is cut off');
    if (conv === 'm') continue;
    const isPos = !!pos;
    if (positional !== null && positional !== isPos) throw new Error('positional and plain conversions are mixed');
    positional = isPos;
    for (const [star, spos] of [[width, wpos], [prec, ppos]]) {
      if (!star || !star.startsWith('*')) continue;
      if (!!spos !== isPos) throw new Error('positional and plain conversions are mixed');
      set(isPos ? Number(spos) : next++, 'd');
    }
    const len = lenRaw === 'q' ? 'll' : lenRaw === 'Z' ? 'z' : lenRaw || '';
    let type;
    if ('di'.includes(conv)) type = `${len}d`;
    else if ('ouxX'.includes(conv)) type = `${len}u`;
    else if ('eEfFgGaA'.includes(conv)) type = `${len}f`;
    else if ('csp'.includes(conv)) type = `${len}${conv}`;
    else throw new Error(`conversion '%${conv}' is not allowed`);
    set(isPos ? Number(pos) : next++, type);
  }
  for (let k = 0; k < types.length; k++) if (!types[k]) throw new Error(`argument ${k + 1} is never used`);
  return types;
}

test('every message a user can see has a Chinese form in src/base/am_msg_zh.c', () => {
  const { found, nonLiteral } = scanSources();
  assert.ok(found.size > 300, `found the templates (${found.size})`);
  assert.deepEqual(nonLiteral, [], 'templates must be string literals (or "c ? lit : lit") so they can be checked');
  const table = new Set(readTable().map((e) => e.en));
  const missing = [...found.keys()].filter((t) => !table.has(t)).map((t) => `${JSON.stringify(t)}  (${found.get(t)[0]})`);
  assert.deepEqual(missing, [], 'add these to src/base/am_msg_zh.c with their Chinese');
});

test('each Chinese template takes the English one\'s arguments; no entry twice; no stale entry', (t) => {
  const entries = readTable();
  const seen = new Map();
  const bad = [];
  for (const e of entries) {
    if (seen.has(e.en)) bad.push(`am_msg_zh.c:${e.line}: also at line ${seen.get(e.en)}: ${JSON.stringify(e.en)}`);
    seen.set(e.en, e.line);
    if (!e.zh.trim()) bad.push(`am_msg_zh.c:${e.line}: empty Chinese`);
    try {
      const a = convs(e.en), b = convs(e.zh);
      if (JSON.stringify(a) !== JSON.stringify(b))
        bad.push(`am_msg_zh.c:${e.line}: English takes [${a}], Chinese [${b}]: ${JSON.stringify(e.zh)}`);
    } catch (err) {
      bad.push(`am_msg_zh.c:${e.line}: ${err.message}: ${JSON.stringify(e.zh)}`);
    }
  }
  assert.deepEqual(bad, []);
  const { found } = scanSources();
  const stale = entries.filter((e) => !found.has(e.en)).map((e) => `am_msg_zh.c:${e.line}: ${JSON.stringify(e.en)}`);
  assert.deepEqual(stale, [], 'entries no source formats any more: remove them (or fix the English)');
  t.diagnostic(`${entries.length} messages in both languages`);
});

test('the checker itself: reordered, mismatched and mixed templates', () => {
  assert.deepEqual(convs("'%s' must be between %lld and %lld"), ['s', 'lld', 'lld']);
  assert.deepEqual(convs('%3$s：%1$d 个，%2$.1f GiB'), ['d', 'f', 's']);
  assert.deepEqual(convs('%s may not set %.*s; 100%%'), ['s', 'd', 's']);
  assert.deepEqual(convs('%zu of %m'), ['zu']);
  assert.throws(() => convs('%1$s %d'), /mixed/);
  assert.throws(() => convs('%2$s'), /never used/);
  assert.throws(() => convs('%n'), /not allowed/);
});
