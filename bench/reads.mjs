// Reads on large tables: GET /deployments pages of 50 over D deployments
// (first page, a deep page by ?offset=, the same page by ?after=, with and
// without the count) and GET /usage over U million usage rows, with the
// worst /healthz answer while the aggregates run. The rows are written
// straight into the database (sqlite3 CLI) while aimaas is stopped.
// Usage: node bench/reads.mjs [DEPLOYMENTS] [USAGE_MILLIONS]   (default 10000 3)
// Env: AIMAAS_BIN (default build/aimaas).
// Measured (2-core shared machine, 2,000 deployments, 1 M rows): a page of 50
// deployments p50 4 ms (first page), 6 ms at offset 1,900, 3 ms by ?after=;
// GET /usage 0.8-1.8 s per aggregate, /healthz meanwhile p50 1.1 ms.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, pollHealthz } from '../tests/integration/lib.mjs';
import { makeModel } from '../tests/fixtures/make-models.mjs';

const D = Number(process.argv[2] || 10000);
const U = Math.round(Number(process.argv[3] || 3) * 1e6);
const dir = tempDir('aimaas-bench-');
const models = tempDir('aimaas-bench-models-');
const sql = (q) => execFileSync('sqlite3', [join(dir, 'aimaas.db'), q]).toString().trim();
const pct = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];
const fmt = (xs) => `p50 ${pct(xs, 0.5).toFixed(1)} ms, p99 ${pct(xs, 0.99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;

try {
  makeModel('Qwen2.5-7B-Instruct', models);
  let srv = await startServer({ dataDir: dir, args: ['--model-root', models, '--sim-gpus', '1x24GiB'] });
  let T = await srv.login();
  let r = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(models, 'Qwen2.5-7B-Instruct') } });
  if (r.status !== 201) throw new Error(r.text);
  r = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'd', model: 'Qwen2.5-7B-Instruct', engine: 'aimaas-sim' } });
  if (r.status !== 201) throw new Error(r.text);
  await srv.api('POST', '/api/v1/deployments/d/stop', { token: T });
  await srv.stop({ clean: false });

  let t0 = Date.now();
  // D - 1 stopped copies of the first deployment, then U usage rows
  const cols = sql("SELECT group_concat(name, ',') FROM pragma_table_info('deployments')").split(',');
  const sel = cols.map((c) => (c === 'id' ? 'NULL' : c === 'name' ? "name || '-' || i" : c === 'desired' ? "'stopped'"
    : c === 'state' ? "'stopped'" : c)).join(',');
  sql(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${D - 1})
    INSERT INTO deployments(${cols.join(',')}) SELECT ${sel} FROM n, deployments WHERE id = 1`);
  sql(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${U})
    INSERT INTO usage_records(at, key_id, user_id, model, deployment_id, instance_id, endpoint, prompt_tokens,
      completion_tokens, ttft_ms, duration_ms, status, stream)
    SELECT 1764000000000 + i * 1000, NULL, 1, 'model-' || (i % 7), 1 + (i % ${D}), 1, '/v1/chat/completions',
      10 + (i % 50), 1 + (i % 20), 12.5, 40.0 + (i % 100), CASE WHEN i % 97 = 0 THEN 500 ELSE 200 END, i % 2 FROM n;`);
  console.log(`filled ${D} deployments and ${U} usage rows in ${Date.now() - t0} ms`);

  srv = await startServer({ dataDir: dir, args: ['--model-root', models, '--sim-gpus', '1x24GiB'] });
  T = await srv.login();
  const time = async (path, n) => {
    const lat = [];
    let last;
    for (let i = 0; i < n; i++) {
      const a = performance.now();
      last = await srv.api('GET', path, { token: T });
      lat.push(performance.now() - a);
      if (last.status !== 200) throw new Error(`${path}: ${last.text}`);
    }
    return { lat, last: last.json };
  };
  const deep = Math.max(0, D - 100);
  const first = await time('/api/v1/deployments?limit=50', 20);
  console.log(`GET /deployments?limit=50 (first page, total ${first.last.total}): ${fmt(first.lat)}`);
  console.log(`  ?total=false: ${fmt((await time('/api/v1/deployments?limit=50&total=false', 20)).lat)}`);
  const cursor = (await srv.api('GET', `/api/v1/deployments?limit=1&offset=${deep - 1}`, { token: T })).json.next;
  console.log(`  ?offset=${deep}: ${fmt((await time(`/api/v1/deployments?limit=50&offset=${deep}`, 20)).lat)}`);
  console.log(`  ?after=${cursor}&total=false (the same page): ${fmt((await time(`/api/v1/deployments?limit=50&after=${cursor}&total=false`, 20)).lat)}`);

  const health = pollHealthz(srv.url);
  for (const q of ['group_by=model', 'group_by=deployment&interval=day', 'group_by=user,model&interval=hour']) {
    console.log(`GET /usage?${q} over ${U} rows: ${fmt((await time(`/api/v1/usage?${q}`, 3)).lat)}`);
  }
  const h = await health.stop();
  console.log(`/healthz meanwhile (x${h.lat.length}): ${fmt(h.lat)}`);
  await srv.stop({ clean: false });
} finally {
  rmSync(dir, { recursive: true, force: true });
  rmSync(models, { recursive: true, force: true });
}
