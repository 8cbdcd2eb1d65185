// Wire helpers of the fake kube-apiserver: Status objects shaped exactly as
// apimachinery's errors package writes them, selectors, request bodies.
import { RESOURCES, qualified } from './objects.mjs';

export class KubeError extends Error {
  constructor(code, status, headers = {}) {
    super(status.message || `HTTP ${code}`);
    this.code = code;
    this.status = status;
    this.headers = headers;
  }
}

export function statusObj({ message, reason, details, code, success = false }) {
  const s = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: success ? 'Success' : 'Failure' };
  if (message !== undefined) s.message = message;
  if (reason) s.reason = reason;
  if (details) s.details = details;
  if (code !== undefined) s.code = code;
  return s;
}

const detailsOf = (res, name) => {
  const r = RESOURCES[res];
  const d = {};
  if (name) d.name = name;
  if (r?.group) d.group = r.group;
  d.kind = res;
  return d;
};

export const errors = {
  notFound: (res, name) => new KubeError(404, statusObj({ message: `${qualified(res, RESOURCES[res] || {})} "${name}" not found`, reason: 'NotFound', details: detailsOf(res, name), code: 404 })),
  alreadyExists: (res, name) => new KubeError(409, statusObj({ message: `${qualified(res, RESOURCES[res] || {})} "${name}" already exists`, reason: 'AlreadyExists', details: detailsOf(res, name), code: 409 })),
  conflict: (res, name) => new KubeError(409, statusObj({
    message: `Operation cannot be fulfilled on ${qualified(res, RESOURCES[res] || {})} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    reason: 'Conflict', details: detailsOf(res, name), code: 409,
  })),
  // causes: field errors from objects.validate
  invalid: (res, name, causes) => {
    const r = RESOURCES[res];
    const lines = causes.map((c) => `${c.field}: ${c.text}`);
    const msg = `${r.kind} "${name}" is invalid: ${lines.length === 1 ? lines[0] : `[${lines.join(', ')}]`}`;
    const d = { name };
    if (r.group) d.group = r.group;
    d.kind = r.kind;
    d.causes = causes.map((c) => ({ reason: c.reason, message: c.text, field: c.field }));
    return new KubeError(422, statusObj({ message: msg, reason: 'Invalid', details: d, code: 422 }));
  },
  badRequest: (message) => new KubeError(400, statusObj({ message, reason: 'BadRequest', code: 400 })),
  unauthorized: () => new KubeError(401, statusObj({ message: 'Unauthorized', reason: 'Unauthorized', code: 401 })),
  forbidden: (a, user) => {
    let resource = a.resource;
    if (a.subresource) resource += `/${a.subresource}`;
    let why;
    if (!a.resource) why = `User "${user}" cannot ${a.verb} path "${a.path}"`;
    else if (a.namespace) why = `User "${user}" cannot ${a.verb} resource "${resource}" in API group "${a.group}" in the namespace "${a.namespace}"`;
    else why = `User "${user}" cannot ${a.verb} resource "${resource}" in API group "${a.group}" at the cluster scope`;
    const q = a.resource ? qualified(a.resource, { group: a.group }) : '';
    const msg = a.resource ? (a.name ? `${q} "${a.name}" is forbidden: ${why}` : `${q} is forbidden: ${why}`) : `forbidden: ${why}`;
    const d = {};
    if (a.name) d.name = a.name;
    if (a.group) d.group = a.group;
    if (a.resource) d.kind = a.resource;
    return new KubeError(403, statusObj({ message: msg, reason: 'Forbidden', details: d, code: 403 }));
  },
  methodNotAllowed: () => new KubeError(405, statusObj({ message: 'the server does not allow this method on the requested resource', reason: 'MethodNotAllowed', details: {}, code: 405 })),
  notFoundPath: () => new KubeError(404, statusObj({ message: 'the server could not find the requested resource', reason: 'NotFound', details: {}, code: 404 })),
  unsupportedMedia: (ct) => new KubeError(415, statusObj({ message: `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${ct})`, reason: 'UnsupportedMediaType', details: {}, code: 415 })),
  internal: (message) => new KubeError(500, statusObj({ message, code: 500 })),
  expired: (rv, oldest) => statusObj({ message: `too old resource version: ${rv} (${oldest})`, reason: 'Expired', code: 410 }),
};

// An injected failure (control.failRequests): the Status a real server or an
// apiserver in trouble sends for that code.
export function injected(code, retryAfter) {
  const table = {
    429: ['TooManyRequests', 'Too many requests, please try again later.'],
    500: ['InternalError', 'Internal error occurred: injected by the fake kube-apiserver'],
    502: ['InternalError', 'Internal error occurred: injected by the fake kube-apiserver'],
    503: ['ServiceUnavailable', 'The server is currently unable to handle the request'],
    504: ['Timeout', 'The server was unable to return a response in the time allotted, but may still be processing the request'],
  };
  const [reason, message] = table[code] || ['InternalError', `injected ${code}`];
  const details = code === 500 ? { causes: [{ message: 'injected by the fake kube-apiserver' }] } : (retryAfter ? { retryAfterSeconds: retryAfter } : {});
  const headers = retryAfter ? { 'Retry-After': String(retryAfter) } : {};
  return new KubeError(code, statusObj({ message, reason, details, code }), headers);
}

// ---- selectors -----------------------------------------------------------
function splitTop(s) {
  const out = []; let depth = 0; let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { out.push(cur); cur = ''; } else cur += ch;
  }
  if (cur.trim()) out.push(cur);
  return out.map((x) => x.trim()).filter(Boolean);
}

// labelSelector: a=b, a==b, a!=b, a, !a, a in (x,y), a notin (x,y)
export function parseLabelSelector(s) {
  if (!s) return () => true;
  const terms = splitTop(s).map((t) => {
    let m;
    if ((m = t.match(/^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const vals = m[3].split(',').map((x) => x.trim());
      return m[2] === 'in' ? (l) => l[m[1]] !== undefined && vals.includes(l[m[1]]) : (l) => l[m[1]] === undefined || !vals.includes(l[m[1]]);
    }
    if ((m = t.match(/^([^!=\s]+)\s*!=\s*(\S*)$/))) return (l) => l[m[1]] !== m[2];
    if ((m = t.match(/^([^!=\s]+)\s*==?\s*(\S*)$/))) return (l) => l[m[1]] === m[2];
    if ((m = t.match(/^!\s*(\S+)$/))) return (l) => l[m[1]] === undefined;
    if ((m = t.match(/^(\S+)$/))) return (l) => l[m[1]] !== undefined;
    throw errors.badRequest(`unable to parse requirement: ${t}`);
  });
  return (labels) => terms.every((f) => f(labels || {}));
}

const FIELDS = {
  pods: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP', 'status.nominatedNodeName'],
  events: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion',
    'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'],
  nodes: ['spec.unschedulable'],
  secrets: ['type'],
  namespaces: ['status.phase'],
  jobs: ['status.successful'],
  replicasets: ['status.replicas'],
};
function fieldValue(obj, path) {
  if (path === 'source') return obj.source?.component ?? '';
  if (path === 'spec.unschedulable') return String(!!obj.spec?.unschedulable);
  if (path === 'status.successful') return String(obj.status?.succeeded ?? 0);
  let v = obj;
  for (const p of path.split('.')) v = v?.[p];
  return v === undefined || v === null ? '' : String(v);
}
export function parseFieldSelector(resource, s) {
  if (!s) return () => true;
  const terms = splitTop(s).map((t) => {
    const m = t.match(/^([^!=]+?)\s*(!=|==|=)\s*(.*)$/);
    if (!m) throw errors.badRequest(`invalid selector: '${s}'; can't understand '${t}'`);
    const [, field, op, val] = m;
    if (!['metadata.name', 'metadata.namespace'].includes(field) && !(FIELDS[resource] || []).includes(field)) {
      throw errors.badRequest(`field label not supported: ${field}`);
    }
    return (o) => ((fieldValue(o, field) === val) === (op !== '!='));
  });
  return (o) => terms.every((f) => f(o));
}

// ---- bodies --------------------------------------------------------------
export function readBody(req, limit = 3 * 1024 * 1024) {
  return new Promise((res, rej) => {
    const chunks = []; let n = 0;
    req.on('data', (c) => { n += c.length; if (n > limit) { rej(new KubeError(413, statusObj({ message: 'Request entity too large: limit is 3145728', reason: 'RequestEntityTooLarge', code: 413 }))); req.destroy(); } else chunks.push(c); });
    req.on('end', () => res(Buffer.concat(chunks).toString('utf8')));
    req.on('error', rej);
  });
}
export function parseJson(text) {
  if (!text) return {};
  try { return JSON.parse(text); } catch (e) {
    throw errors.badRequest(`error decoding request body: ${e.message} (this fake takes JSON only; YAML apply bodies must be JSON, which is valid YAML)`);
  }
}

// RFC 7386 merge patch
export function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
// Strategic merge patch, approximated: lists of objects with a "name" merge by name.
export function strategicPatch(target, patch) {
  if (Array.isArray(patch) && Array.isArray(target) && patch.every((x) => x && typeof x === 'object' && 'name' in x)) {
    const out = target.map((x) => ({ ...x }));
    for (const p of patch) {
      const i = out.findIndex((x) => x.name === p.name);
      if (p.$patch === 'delete') { if (i >= 0) out.splice(i, 1); continue; }
      if (i >= 0) out[i] = strategicPatch(out[i], p); else out.push(p);
    }
    return out;
  }
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else out[k] = strategicPatch(out[k], v);
  }
  return out;
}
// RFC 6902 JSON patch: add, remove, replace, test
export function jsonPatch(target, ops) {
  const doc = JSON.parse(JSON.stringify(target));
  for (const op of ops) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    let parent = doc;
    for (const p of parts) {
      parent = parent?.[Array.isArray(parent) ? Number(p) : p];
      if (parent === undefined) throw new KubeError(422, statusObj({ message: `the server rejected our request due to an error in our request`, reason: 'Invalid', code: 422 }));
    }
    const key = Array.isArray(parent) ? (last === '-' ? parent.length : Number(last)) : last;
    if (op.op === 'add') { if (Array.isArray(parent)) parent.splice(key, 0, op.value); else parent[key] = op.value; }
    else if (op.op === 'replace') parent[key] = op.value;
    else if (op.op === 'remove') { if (Array.isArray(parent)) parent.splice(key, 1); else delete parent[key]; }
    else if (op.op === 'test') { if (JSON.stringify(parent[key]) !== JSON.stringify(op.value)) throw new KubeError(422, statusObj({ message: 'the server rejected our request due to an error in our request', reason: 'Invalid', code: 422 })); }
  }
  return doc;
}

// ---- protobuf (only what kubectl sends as protobuf: authorization reviews) ----
function pbFields(buf) {
  const out = {}; let i = 0;
  const varint = () => { let v = 0; let m = 1; let b; do { b = buf[i++]; v += (b & 0x7f) * m; m *= 128; } while (b & 0x80); return v; };
  while (i < buf.length) {
    const key = varint(); const f = Math.floor(key / 8); const wt = key & 7;
    let v;
    if (wt === 0) v = varint();
    else if (wt === 2) { const n = varint(); v = buf.subarray(i, i + n); i += n; } else if (wt === 1) { v = buf.subarray(i, i + 8); i += 8; } else if (wt === 5) { v = buf.subarray(i, i + 4); i += 4; } else throw errors.badRequest('unsupported protobuf wire type');
    (out[f] ||= []).push(v);
  }
  return out;
}
const pbStr = (f, n) => (f[n] ? Buffer.from(f[n][0]).toString('utf8') : undefined);
// Decodes a "k8s\0"-framed SelfSubjectAccessReview / SelfSubjectRulesReview into its JSON form.
export function decodeReviewProtobuf(buf) {
  if (buf.length < 4 || buf.subarray(0, 4).toString('latin1') !== 'k8s\0') throw errors.badRequest('not a kubernetes protobuf envelope');
  const unk = pbFields(buf.subarray(4));
  const tm = unk[1] ? pbFields(unk[1][0]) : {};
  const kind = pbStr(tm, 2);
  const raw = unk[2] ? pbFields(unk[2][0]) : {};
  const spec = raw[2] ? pbFields(raw[2][0]) : {};
  if (kind === 'SelfSubjectRulesReview') return { kind, apiVersion: pbStr(tm, 1), spec: { namespace: pbStr(spec, 1) } };
  const out = { kind, apiVersion: pbStr(tm, 1), spec: {} };
  if (spec[1]) {
    const a = pbFields(spec[1][0]);
    const ra = {};
    for (const [n, k] of [[1, 'namespace'], [2, 'verb'], [3, 'group'], [4, 'version'], [5, 'resource'], [6, 'subresource'], [7, 'name']]) { const v = pbStr(a, n); if (v) ra[k] = v; }
    out.spec.resourceAttributes = ra;
  }
  if (spec[2]) { const a = pbFields(spec[2][0]); out.spec.nonResourceAttributes = { path: pbStr(a, 1), verb: pbStr(a, 2) }; }
  return out;
}
