// What the kernel says about the processes aimaas started: found by their
// command line (engines name the model's folder, trainers their job's
// config, both under the test's data dir), with their process group, the
// AIMAAS_OWNER marker and their open descriptors (/proc/<pid>/fd).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

function read(path) {
  try { return readFileSync(path); } catch { return null; }
}

// The live (not zombie) processes whose command line mentions dir, aimaas
// itself excepted: [{pid, pgid, argv, marker}].
export function procsUnder(dir) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = read(`/proc/${name}/cmdline`);
    if (!cmd || !cmd.includes(dir)) continue;
    const argv = cmd.toString().split('\0').filter(Boolean);
    if (argv[1] === 'serve' && argv.includes('--data-dir')) continue; // aimaas
    const stat = read(`/proc/${name}/stat`)?.toString();
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') continue;
    const env = read(`/proc/${name}/environ`)?.toString() ?? '';
    const m = env.split('\0').find((e) => e.startsWith('AIMAAS_OWNER='));
    out.push({ pid: Number(name), pgid: Number(f[2]), argv, marker: m ? m.slice(13) : null });
  }
  return out;
}

// Engines (`aimaas-sim serve`, or the vllm shim before it execs) and
// trainers (`... train`), group leaders only.
const verb = (p) => p.argv.slice(1, 3).find((a) => a === 'serve' || a === 'train');
export const engines = (dir) => procsUnder(dir).filter((p) => verb(p) === 'serve' && p.pid === p.pgid);
export const trainers = (dir) => procsUnder(dir).filter((p) => verb(p) === 'train' && p.pid === p.pgid);

// fd number -> what it points at ("socket:[123]", a path...).
export function fds(pid) {
  const out = new Map();
  let names = [];
  try { names = readdirSync(`/proc/${pid}/fd`); } catch { return out; }
  for (const n of names) {
    try { out.set(Number(n), readlinkSync(`/proc/${pid}/fd/${n}`)); } catch { /* closed meanwhile */ }
  }
  return out;
}

// The socket inodes a process holds.
export const socketsOf = (pid) => new Set([...fds(pid).values()].filter((t) => t.startsWith('socket:')));

// Descriptors >= 3 of pid without close-on-exec (O_CLOEXEC is 02000000 in fdinfo's octal flags).
export function inheritable(pid) {
  const bad = [];
  for (const [fd, target] of fds(pid)) {
    if (fd < 3) continue;
    const info = read(`/proc/${pid}/fdinfo/${fd}`)?.toString() ?? '';
    const m = info.match(/^flags:\s+([0-7]+)/m);
    if (m && !(parseInt(m[1], 8) & 0o2000000)) bad.push(`${fd} -> ${target}`);
  }
  return bad;
}

// A query on the data dir's database, read-only, through the sqlite3 tool.
export function sql(dir, query) {
  const out = execFileSync('sqlite3', ['-readonly', '-json', `${dir}/aimaas.db`, query], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : [];
}

// Alive, and not a zombie waiting for a parent that is not aimaas to reap it.
export function alive(pid) {
  const stat = read(`/proc/${pid}/stat`)?.toString();
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
  return state !== 'Z' && state !== 'X';
}
