// A fake model hub for the download tests: Hugging Face's HTTP shapes (model
// info at a revision, the recursive tree listing paged by a Link header,
// resolve URLs redirecting LFS files to a separate "CDN" server, the
// X-Repo-Commit / ETag / X-Linked-Etag / X-Linked-Size headers, Range, the
// X-Error-Code errors) and ModelScope's (the {Code, Data, Message, Success}
// envelope, /repo/files and /repo?FilePath= downloads). docs/hubs.md has the
// contracts; Node built-ins only.
//
//   const hub = await startHub({ repos: { 'Qwen/Qwen2.5-0.5B': { files: { 'config.json': '{...}', 'model.safetensors': buf } } } });
//   hub.url (HF endpoint), hub.msUrl (ModelScope endpoint), hub.cdnUrl;
//   hub.control.cutAfter(bytes, times)  // drop the next `times` file transfers after `bytes` bytes
//   hub.control.slow(bytesPerSecond)    // pace file bodies
//   hub.requests                        // [{method, url, range, auth, host}] as received
//   await hub.stop();
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { safetensorsHeader, tensorsFor } from '../fixtures/make-models.mjs';

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const sha1git = (b) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const LFS_MIN = 1024; // files from this size up are LFS (real repos: 10 MB, or any .safetensors)

function listen(server) {
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res(server.address().port)));
}

export async function startHub({ repos = {}, pageSize = 50, token = 'hf_test_token' } = {}) {
  const requests = [];
  const control = { cut: 0, cutTimes: 0, bps: 0, corrupt: new Set() };
  // repo -> { sha, files: Map(path -> {data, sha256, oid, lfs}), gated, private }
  const state = new Map();
  const put = (id, spec) => {
    const files = new Map();
    for (const [p, v] of Object.entries(spec.files || {})) {
      if (v && typeof v === 'object' && !Buffer.isBuffer(v) && typeof v.size === 'number') {
        // a virtual file: listed at its real size, served as its head then zeros (a 15 GB shard costs nothing)
        const head = v.head || Buffer.alloc(0);
        const digest = sha256(Buffer.concat([head, Buffer.from(String(v.size))]));
        files.set(p, { size: v.size, head, virtual: true, sha256: digest, oid: digest.slice(0, 40), lfs: true });
        continue;
      }
      const data = Buffer.isBuffer(v) ? v : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
      const lfs = data.length >= LFS_MIN || p.endsWith('.safetensors') || p.endsWith('.gguf');
      files.set(p, { data, size: data.length, sha256: sha256(data), oid: sha1git(data), lfs });
    }
    state.set(id, { sha: spec.sha || createHash('sha1').update(id).digest('hex'), files, gated: !!spec.gated, private: !!spec.private,
      downloads: spec.downloads || 0, likes: spec.likes || 0, task: spec.task || 'text-generation', tags: spec.tags || [],
      license: spec.license, params: spec.params });
  };
  for (const [id, spec] of Object.entries(repos)) put(id, spec);

  const authed = (req) => req.headers.authorization === `Bearer ${token}`;
  // the header carries the first line (a header holds no newline), the body all of it
  const hfError = (res, status, code, message) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-error-code': code,
      'x-error-message': message.split('\n')[0] });
    res.end(JSON.stringify({ error: message }));
  };
  // the repository a request may see, or an error answer sent
  const repoFor = (req, res, id) => {
    const r = state.get(id);
    if (!r || (r.private && !authed(req))) {
      hfError(res, 401, 'RepoNotFound', 'Repository Not Found for url: ' + req.url + '.\nPlease make sure you specified the correct `repo_id` and `repo_type`.\nIf you are trying to access a private or gated repo, make sure you are authenticated.');
      return null;
    }
    return r;
  };
  // a branch ("main"; "HEAD" names the default one, as @huggingface/hub asks) or the commit
  const revOk = (r, rev) => rev === 'main' || rev === 'HEAD' || rev === r.sha;

  // the body of a file, honouring Range, paced and cut as the control says
  const bytesOf = (f, start, end) => { // [start, end] of a file (a virtual one: its head, then zeros)
    if (!f.virtual) return f.data.subarray(start, end + 1);
    const b = Buffer.alloc(end - start + 1);
    if (start < f.head.length) f.head.copy(b, 0, start, Math.min(f.head.length, end + 1));
    return b;
  };
  const sendFile = (req, res, f, headers) => {
    let start = 0, end = f.size - 1, status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
    if (m) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(Number(m[2]), end);
      if (start > end) {
        res.writeHead(416, { 'content-range': `bytes */${f.size}` });
        return res.end();
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${f.size}`;
    }
    headers['accept-ranges'] = 'bytes';
    headers['content-length'] = String(end - start + 1);
    headers['content-type'] = 'application/octet-stream';
    res.writeHead(status, headers);
    if (f.virtual && end - start + 1 > (64 << 20)) { res.writeHead(503); return res.end('virtual file: ask a range of at most 64 MiB'); }
    let body = bytesOf(f, start, end);
    if (control.corrupt.has(f)) body = Buffer.from(body.map((b) => b ^ 0xff));
    const cut = control.cutTimes > 0 ? control.cut : 0;
    if (cut) control.cutTimes--;
    let off = 0;
    const step = () => {
      if (res.destroyed) return;
      const chunk = body.subarray(off, off + 65536);
      if (!chunk.length) return res.end();
      if (cut && off + chunk.length > cut) { // the connection drops mid-file
        res.write(chunk.subarray(0, Math.max(0, cut - off)));
        return setImmediate(() => res.socket?.destroy());
      }
      off += chunk.length;
      const ok = res.write(chunk);
      const wait = control.bps ? (chunk.length * 1000) / control.bps : 0;
      if (wait) setTimeout(step, wait);
      else if (ok) setImmediate(step);
      else res.once('drain', step);
    };
    step();
  };

  // ---- the CDN: where LFS files are served from (no token: a signed URL) ----
  const cdnFiles = new Map(); // key -> file
  const cdn = http.createServer((req, res) => {
    requests.push({ host: 'cdn', method: req.method, url: req.url, range: req.headers.range, auth: req.headers.authorization });
    const key = new URL(req.url, 'http://x').pathname.slice(1);
    const f = cdnFiles.get(key);
    if (!f) { res.writeHead(403, { 'content-type': 'application/xml' }); return res.end('<Error><Code>AccessDenied</Code></Error>'); }
    sendFile(req, res, f, { etag: `"${f.sha256}"` });
  });
  const cdnPort = await listen(cdn);
  const cdnUrl = `http://127.0.0.1:${cdnPort}`;

  // ---- Hugging Face ----
  const hf = http.createServer((req, res) => {
    requests.push({ host: 'hf', method: req.method, url: req.url, range: req.headers.range, auth: req.headers.authorization });
    const u = new URL(req.url, 'http://x');
    const parts = u.pathname.split('/').map(decodeURIComponent);
    // /api/models/{org}/{name}/revision/{rev}
    if (parts[1] === 'api' && parts[2] === 'models' && parts[5] === 'revision') {
      const id = `${parts[3]}/${parts[4]}`, r = repoFor(req, res, id);
      if (!r) return;
      if (!revOk(r, parts.slice(6).join('/'))) return hfError(res, 404, 'RevisionNotFound', `Invalid rev id: ${parts.slice(6).join('/')}`);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      return res.end(JSON.stringify({ _id: r.sha.slice(0, 24), id, modelId: id, private: r.private, gated: r.gated ? 'manual' : false,
        sha: r.sha, siblings: [...r.files.keys()].map((rfilename) => ({ rfilename })), tags: [], downloads: 0, likes: 0,
        author: id.split('/')[0], pipeline_tag: r.task, library_name: 'transformers', lastModified: '2025-01-01T00:00:00.000Z',
        createdAt: '2024-09-01T00:00:00.000Z', ...(r.license ? { cardData: { license: r.license } } : {}),
        ...(r.params ? { safetensors: { parameters: { BF16: r.params }, total: r.params } } : {}) }));
    }
    // /api/models?search=&sort=downloads&direction=-1&limit= (list_models; paged by Link like the tree)
    if (u.pathname === '/api/models') {
      const words = (u.searchParams.get('search') || '').toLowerCase();
      const limit = Math.min(Number(u.searchParams.get('limit') || 50), 1000);
      const hits = [...state.entries()].filter(([id, r]) => !r.private && id.toLowerCase().includes(words))
        .sort((a, b) => b[1].downloads - a[1].downloads).slice(0, limit);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      // the default fields; with expand, the Hub answers those asked for (and the ids) only
      const expand = u.searchParams.getAll('expand');
      const all = ([id, r]) => ({ likes: r.likes, trendingScore: 0, private: r.private, downloads: r.downloads, tags: r.tags,
        pipeline_tag: r.task, library_name: 'transformers', createdAt: '2024-09-01T00:00:00.000Z', gated: r.gated ? 'manual' : false,
        lastModified: '2025-01-01T00:00:00.000Z' });
      const dflt = ['likes', 'trendingScore', 'private', 'downloads', 'tags', 'pipeline_tag', 'library_name', 'createdAt'];
      return res.end(JSON.stringify(hits.map((h) => {
        const f = all(h);
        const keep = expand.length ? expand : dflt;
        return { _id: h[1].sha.slice(0, 24), id: h[0], ...Object.fromEntries(keep.filter((k) => k in f).map((k) => [k, f[k]])),
          ...(expand.length ? {} : { modelId: h[0] }) };
      })));
    }
    // /api/models/{org}/{name}/tree/{rev}[/{path}]?recursive=true&cursor=
    if (parts[1] === 'api' && parts[2] === 'models' && parts[5] === 'tree') {
      const id = `${parts[3]}/${parts[4]}`, r = repoFor(req, res, id);
      if (!r) return;
      if (!revOk(r, parts[6])) return hfError(res, 404, 'RevisionNotFound', `Invalid rev id: ${parts[6]}`);
      const all = [];
      const dirs = new Set();
      for (const [p, f] of [...r.files.entries()].sort()) {
        const segs = p.split('/');
        for (let i = 1; i < segs.length; i++) dirs.add(segs.slice(0, i).join('/'));
        all.push({ type: 'file', oid: f.oid, size: f.size, path: p,
          ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}) });
      }
      for (const d of dirs) all.push({ type: 'directory', oid: sha1git(Buffer.from(d)), size: 0, path: d });
      const start = Number(u.searchParams.get('cursor') || 0);
      const page = all.slice(start, start + pageSize);
      const headers = { 'content-type': 'application/json; charset=utf-8' };
      if (start + pageSize < all.length) {
        const next = new URL(req.url, `http://${req.headers.host}`);
        next.searchParams.set('cursor', String(start + pageSize));
        headers.link = `<${next.href}>; rel="next"`;
      }
      res.writeHead(200, headers);
      return res.end(JSON.stringify(page));
    }
    // /{org}/{name}/resolve/{rev}/{path}
    if (parts[3] === 'resolve') {
      const id = `${parts[1]}/${parts[2]}`, r = repoFor(req, res, id);
      if (!r) return;
      if (r.gated && !authed(req))
        return hfError(res, 401, 'GatedRepo', `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
      if (!revOk(r, parts[4])) return hfError(res, 404, 'RevisionNotFound', `Invalid rev id: ${parts[4]}`);
      const path = parts.slice(5).join('/');
      const f = r.files.get(path);
      if (!f) return hfError(res, 404, 'EntryNotFound', `${path} does not exist on "${parts[4]}"`);
      const common = { 'x-repo-commit': r.sha, 'access-control-expose-headers': 'X-Repo-Commit,X-Linked-Size,X-Linked-ETag,ETag' };
      if (f.lfs) {
        const key = `repos/${f.sha256}`;
        cdnFiles.set(key, f);
        res.writeHead(302, { ...common, 'x-linked-size': String(f.size), 'x-linked-etag': `"${f.sha256}"`, etag: `"${f.oid}"`,
          location: `${cdnUrl}/${key}?X-Amz-Signature=fake`, 'content-length': '0' });
        return res.end();
      }
      return sendFile(req, res, f, { ...common, etag: `"${f.oid}"` });
    }
    hfError(res, 404, 'NotFound', 'Not Found');
  });
  const hfPort = await listen(hf);

  // ---- ModelScope ----
  const ms = http.createServer((req, res) => {
    requests.push({ host: 'ms', method: req.method, url: req.url, range: req.headers.range, auth: req.headers.authorization });
    const u = new URL(req.url, 'http://x');
    // the OpenAPI search: {success, data: {models, total_count, page_number, page_size}}
    if (u.pathname === '/openapi/v1/models') {
      const words = (u.searchParams.get('search') || '').toLowerCase();
      const size = Math.min(Number(u.searchParams.get('page_size') || 20), 100), page = Number(u.searchParams.get('page_number') || 1);
      const all = [...state.entries()].filter(([id, r]) => !r.private && id.toLowerCase().includes(words))
        .sort((a, b) => b[1].downloads - a[1].downloads);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ success: true, data: { models: all.slice((page - 1) * size, page * size).map(([id, r]) => ({
        id, display_name: id.split('/')[1], description: '', downloads: r.downloads, likes: r.likes, last_modified: 1735689600,
        created_at: 1725148800, license: r.license || 'apache-2.0', tasks: [r.task], tags: r.tags, private: false, gated: r.gated })),
      total_count: all.length, page_number: page, page_size: size } }));
    }
    const m = /^\/api\/v1\/models\/([^/]+)\/([^/]+)\/(repo\/files|repo|revisions)$/.exec(u.pathname);
    const envelope = (status, code, data, message = '') => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Code: code, Data: data, Message: message, RequestId: 'fake', Success: code === 200 }));
    };
    if (!m) return envelope(404, 10010205001, null, 'not found');
    const id = `${m[1]}/${m[2]}`, r = state.get(id);
    if (!r || (r.private && req.headers.cookie !== `m_session_id=${token}` && !authed(req)))
      return envelope(404, 10010205001, null, `model ${id} not found`);
    const rev = u.searchParams.get('Revision') || 'master';
    if (m[3] === 'revisions')
      return envelope(200, 200, { RevisionMap: { Branches: [{ Revision: 'master', CreatedAt: 1700000000 }], Tags: [] } });
    if (rev !== 'master' && rev !== r.sha) return envelope(404, 10010205001, null, `revision ${rev} not found`);
    if (m[3] === 'repo/files') {
      const files = [...r.files.entries()].sort().map(([p, f]) => ({ Name: p.split('/').pop(), Path: p, Type: 'blob', Size: f.size,
        Revision: r.sha, Sha256: f.sha256, IsLFS: f.lfs, Mode: '33188', CommittedDate: 1700000000 }));
      return envelope(200, 200, { Files: files, LatestCommitter: null });
    }
    const path = u.searchParams.get('FilePath');
    const f = path && r.files.get(path);
    if (!f) return envelope(404, 10010205001, null, `file ${path} not found`);
    sendFile(req, res, f, { etag: `"${f.sha256}"` });
  });
  const msPort = await listen(ms);

  return {
    url: `http://127.0.0.1:${hfPort}`,
    msUrl: `http://127.0.0.1:${msPort}`,
    cdnUrl,
    token,
    requests,
    put,
    sha256,
    control: {
      cutAfter(bytes, times = 1) { control.cut = bytes; control.cutTimes = times; },
      slow(bps) { control.bps = bps; },
      corrupt(id, path) { control.corrupt.add(state.get(id).files.get(path)); },
    },
    async stop() {
      for (const s of [hf, ms, cdn]) { s.closeAllConnections?.(); await new Promise((r) => s.close(r)); }
    },
  };
}

// ---- repositories for tests ----
// a safetensors file over random bytes (the hash means something)
function safetensors(tensors) {
  const { head, dataBytes } = safetensorsHeader(tensors);
  return Buffer.concat([head, randomBytes(dataBytes)]);
}

// a small Qwen2 (real config keys, tiny sizes), in two shards plus duplicates a download must skip
export function tinyRepo(layers = 2, hidden = 128) {
  const cfg = { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: hidden, intermediate_size: hidden * 2,
    num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: layers, vocab_size: 1024, max_position_embeddings: 4096,
    rope_theta: 1000000.0, rms_norm_eps: 1e-6, tie_word_embeddings: false, torch_dtype: 'bfloat16' };
  const t = tensorsFor(cfg);
  const half = Math.ceil(t.length / 2);
  const a = safetensors(t.slice(0, half)), b = safetensors(t.slice(half));
  const map = Object.fromEntries(t.map(([n], i) => [n, i < half ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']));
  return {
    'config.json': JSON.stringify(cfg, null, 2),
    'generation_config.json': '{"do_sample": true}',
    'tokenizer_config.json': JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' }),
    'tokenizer.json': JSON.stringify({ version: '1.0', model: { type: 'BPE' } }),
    'model-00001-of-00002.safetensors': a,
    'model-00002-of-00002.safetensors': b,
    'model.safetensors.index.json': JSON.stringify({ metadata: { total_size: a.length + b.length }, weight_map: map }),
    'pytorch_model.bin': randomBytes(4096), // the same weights as .bin: not needed when safetensors exist
    'original/consolidated.00.pth': randomBytes(4096),
    'README.md': '# tiny',
  };
}

