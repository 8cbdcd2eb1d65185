// A fake kube-apiserver (v1.26.1) for tests: HTTPS with a throwaway CA,
// bearer-token and client-certificate authentication, RBAC-like rules,
// in-memory objects with resourceVersions, list/get/create/apply/patch/
// update/delete, watch (bookmarks, 410 Expired), pod logs, and a small
// scheduler + kubelet + deployment/job controllers the test drives through
// `control`. Errors are Status objects shaped as the real server's
// (tests/fixtures/kubernetes, replayed by tests/integration/kube-fake.test.mjs).
// Helpers: kube/certs (PKI), kube/objects (defaults, validation, managedFields),
// kube/http (Status errors, selectors, patches), kube/nodes, kube/discovery, kube/table.
//
//   const k = await startKube({ nodes: [{ name: 'gpu-1', gpus: 4 }], namespace: 'aimaas' });
//   k.url, k.caFile, k.token, k.kubeconfig('admin'), k.control.crash('aimaas', 'pod', {...}), await k.stop()
import https from 'node:https';
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makePki } from './kube/certs.mjs';
import {
  RESOURCES, apiVersionOf, now, nowMicro, uid, randSuffix, templateHash, clone, canonical,
  validate, applyDefaults, admitPod, fieldsV1, managedEntry,
} from './kube/objects.mjs';
import {
  KubeError, statusObj, errors, injected, parseLabelSelector, parseFieldSelector, readBody, parseJson,
  mergePatch, strategicPatch, jsonPatch, decodeReviewProtobuf,
} from './kube/http.mjs';
import { toTable, wantsTable, TABLE_CONTENT_TYPE } from './kube/table.mjs';
import { VERSION, resourceList, GROUPS, groupDoc, openapiDoc } from './kube/discovery.mjs';
import { GPU, TERMINAL, qty, makeNode, setNodeCondition, nodeReady, podRequests } from './kube/nodes.mjs';

const readRaw = (req) => new Promise((res, rej) => { const c = []; req.on('data', (d) => c.push(d)); req.on('end', () => res(Buffer.concat(c))); req.on('error', rej); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ==========================================================================
export async function startKube(opts = {}) {
  const namespace = opts.namespace ?? 'default';
  const hollow = !!opts.hollow; // mimic the kubemark hollow nodes of the recorded transcripts
  const delays = { schedule: 2, create: 10, start: 10, terminate: 10, backoff: 0, ...(opts.delays || {}) };
  const pki = makePki();
  const flowUid = randomUUID(); const prioUid = randomUUID();

  // ---- identities --------------------------------------------------------
  const ids = {};
  const wanted = { admin: { user: 'admin', groups: ['system:masters'] }, ...(opts.identities || {}) };
  for (const [name, spec] of Object.entries(wanted)) {
    const user = spec.user ?? name;
    const groups = [...(spec.groups || [])];
    if (!groups.includes('system:authenticated')) groups.push('system:authenticated');
    const token = spec.token ?? `${name}-${randomBytes(12).toString('hex')}`;
    const cert = pki.client(user, (spec.groups || []));
    ids[name] = { name, user, groups, token, rules: spec.rules || [], cert };
  }
  const byToken = new Map(Object.values(ids).map((i) => [i.token, i]));
  const rulesOfUser = new Map(Object.values(ids).map((i) => [i.user, i.rules]));

  // ---- store -------------------------------------------------------------
  let rv = Number(opts.startResourceVersion ?? 100);
  let compactedRV = 0; // watches from below this get 410 Expired
  const store = new Map(Object.keys(RESOURCES).map((r) => [r, new Map()]));
  const history = []; // { rv, resource, type, obj, old }
  const watchers = new Set();
  const runtime = new Map(); // pod uid -> { containers: { name: { logs, prev, followers, started } } }
  const failures = []; // injected request failures
  const pendingTimers = new Set();
  const schedFailures = new Map(); // pod uid -> last FailedScheduling message
  const nodePorts = new Set();
  let clusterIPNext = 10;
  let podIPNext = 2;
  let stopped = false;

  const keyOf = (ns, name) => (ns ? `${ns}/${name}` : name);
  const get = (res, ns, name) => store.get(res).get(keyOf(RESOURCES[res].namespaced ? ns : '', name));
  const list = (res, ns) => [...store.get(res).values()].filter((o) => !ns || !RESOURCES[res].namespaced || o.metadata.namespace === ns)
    .sort((a, b) => keyOf(a.metadata.namespace, a.metadata.name).localeCompare(keyOf(b.metadata.namespace, b.metadata.name)));

  function later(ms, fn) {
    if (stopped) return;
    const t = setTimeout(() => { pendingTimers.delete(t); if (!stopped) { try { fn(); } catch (e) { console.error('kube fake:', e); } } }, ms);
    pendingTimers.add(t);
  }

  function emit(res, type, obj, old) {
    const ev = { rv: Number(obj.metadata.resourceVersion), resource: res, type, obj: clone(obj), old: old ? clone(old) : null };
    history.push(ev);
    // like the watch cache: what falls out of the window can no longer be watched from
    const limit = opts.historyLimit ?? 5000;
    if (history.length > limit) { history.splice(0, history.length - limit); compactedRV = Math.max(compactedRV, history[0].rv - 1); }
    for (const w of watchers) w.offer(ev);
  }
  // Writes obj (already changed) as a new version and tells watchers.
  function put(res, obj, type, old) {
    obj.metadata.resourceVersion = String(++rv);
    const c = canonical(RESOURCES[res].kind, obj);
    Object.keys(obj).forEach((k) => delete obj[k]);
    Object.assign(obj, c);
    store.get(res).set(keyOf(RESOURCES[res].namespaced ? obj.metadata.namespace : '', obj.metadata.name), obj);
    emit(res, type, obj, old);
    return obj;
  }
  function update(res, obj, mutate, manager) {
    const old = clone(obj);
    mutate(obj);
    if (JSON.stringify(old) === JSON.stringify(obj)) return obj; // a no-op write keeps its resourceVersion
    if (manager) setManager(obj, manager);
    put(res, obj, 'MODIFIED', old);
    react(res, obj);
    return obj;
  }
  function remove(res, obj) {
    const old = clone(obj);
    store.get(res).delete(keyOf(RESOURCES[res].namespaced ? obj.metadata.namespace : '', obj.metadata.name));
    obj.metadata.resourceVersion = String(++rv);
    emit(res, 'DELETED', obj, old);
    react(res, obj, true);
  }
  // A controller's managedFields entry (status writers): manager, subresource, fields
  function setManager(obj, { manager, subresource, fields, apiVersion }) {
    const mf = obj.metadata.managedFields || (obj.metadata.managedFields = []);
    if (typeof fields === 'function') fields = fields(obj);
    const e = mf.find((m) => m.manager === manager && m.operation === 'Update' && (m.subresource || '') === (subresource || ''));
    if (e) { e.time = now(); e.fieldsV1 = fields; } else mf.push(managedEntry(manager, 'Update', apiVersion || obj.apiVersion, fields, subresource));
  }

  // ---- seed --------------------------------------------------------------
  const t0 = now();
  for (const ns of new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease', namespace, ...(opts.namespaces || [])])) {
    const o = { kind: 'Namespace', apiVersion: 'v1', metadata: { name: ns, uid: uid(), creationTimestamp: t0, labels: { 'kubernetes.io/metadata.name': ns } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } };
    put('namespaces', o, 'ADDED');
  }
  const nodeSpecs = opts.nodes ?? [{ name: 'gpu-node-1' }, { name: 'gpu-node-2' }];
  for (const spec of nodeSpecs) {
    const n = makeNode(hollow ? { providerID: `kubemark://${spec.name}`, kubeletPort: 10260, kubeletManager: 'hollow-kubelet', images: ['registry.local/llamafactory:v0.0.0-hollow'],
      nodeInfo: { kernelVersion: '3.16.0-0.bpo.4-amd64', osImage: 'Debian GNU/Linux 7 (wheezy)', containerRuntimeVersion: 'fakeRuntime://0.1.0' }, ...spec } : spec, t0);
    put('nodes', n, 'ADDED');
  }

  // ---- authorization -----------------------------------------------------
  const BASIC_RULES = [{ verbs: ['create'], apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'] }];
  const NONRESOURCE = [
    { verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*', '/readyz', '/version', '/version/'] },
    { verbs: ['get'], nonResourceURLs: ['/healthz', '/livez', '/readyz', '/version', '/version/'] },
  ];
  const has = (list, v) => !list || list.includes('*') || list.includes(v);
  function allowed(who, a) {
    if (who.groups.includes('system:masters')) return true;
    if (!a.resource) return a.verb === 'get' && (/^\/(api|apis|openapi)(\/|$)/.test(a.path) || ['/healthz', '/livez', '/readyz', '/version', '/version/'].includes(a.path));
    const full = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    for (const r of [...BASIC_RULES, ...who.rules]) {
      if (!has(r.verbs, a.verb) || !has(r.apiGroups, a.group) || !has(r.resources, full)) continue;
      if (r.resourceNames && r.resourceNames.length && !r.resourceNames.includes(a.name)) continue;
      if (r.namespaces && !(a.namespace && r.namespaces.includes(a.namespace))) continue;
      return true;
    }
    return false;
  }
  function identify(req) {
    const h = req.headers.authorization;
    if (h) {
      const m = h.match(/^Bearer\s+(.+)$/i);
      const who = m && byToken.get(m[1].trim());
      if (!who) throw errors.unauthorized();
      return who;
    }
    const sock = req.socket;
    if (sock.authorized) {
      const c = sock.getPeerCertificate();
      if (c && c.subject) {
        const user = c.subject.CN;
        const groups = [].concat(c.subject.O || []);
        if (!groups.includes('system:authenticated')) groups.push('system:authenticated');
        return { user, groups, rules: rulesOfUser.get(user) || [] };
      }
    }
    throw errors.unauthorized();
  }

  // ---- scheduler ---------------------------------------------------------
  function tolerates(pod, taint) {
    return (pod.spec.tolerations || []).some((t) => (t.operator === 'Exists' ? (!t.key || t.key === taint.key) : (t.key === taint.key && (t.value ?? '') === (taint.value ?? '')))
      && (!t.effect || t.effect === taint.effect));
  }
  function matchesAffinity(pod, node) {
    const sel = pod.spec.nodeSelector || {};
    for (const [k, v] of Object.entries(sel)) if (node.metadata.labels[k] !== v) return false;
    const terms = pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
    if (terms && terms.length) {
      const ok = terms.some((t) => (t.matchExpressions || []).every((e) => {
        const v = node.metadata.labels[e.key];
        if (e.operator === 'In') return e.values.includes(v);
        if (e.operator === 'NotIn') return !e.values.includes(v);
        if (e.operator === 'Exists') return v !== undefined;
        if (e.operator === 'DoesNotExist') return v === undefined;
        return false;
      }) && (t.matchFields || []).every((e) => e.key === 'metadata.name' && (e.operator === 'In') === e.values.includes(node.metadata.name)));
      if (!ok) return false;
    }
    return true;
  }
  function used(nodeName, except) {
    const u = { pods: 0 };
    for (const p of store.get('pods').values()) {
      if (p.spec.nodeName !== nodeName || TERMINAL.has(p.status.phase) || p === except) continue;
      u.pods++;
      for (const [k, v] of Object.entries(podRequests(p))) u[k] = (u[k] || 0) + v;
    }
    return u;
  }
  // Returns [] if pod fits on node, else the reasons (scheduler framework order:
  // NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodeResourcesFit).
  function filter(pod, node) {
    if (node.spec.unschedulable && !tolerates(pod, { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' })) return [['node(s) were unschedulable', false]];
    if (pod.spec.nodeName && pod.spec.nodeName !== node.metadata.name) return [["node(s) didn't match the requested node name", false]];
    const bad = (node.spec.taints || []).find((t) => (t.effect === 'NoSchedule' || t.effect === 'NoExecute') && !tolerates(pod, t));
    if (bad) return [[`node(s) had untolerated taint {${bad.key}: ${bad.value ?? ''}}`, false]];
    if (!matchesAffinity(pod, node)) return [["node(s) didn't match Pod's node affinity/selector", false]];
    const u = used(node.metadata.name, pod);
    const want = podRequests(pod);
    const out = [];
    if (u.pods + 1 > qty(node.status.allocatable.pods)) out.push(['Too many pods', true]);
    for (const [k, v] of Object.entries(want).sort()) {
      if (v <= 0) continue;
      const alloc = qty(node.status.allocatable[k]);
      if ((u[k] || 0) + v > alloc) out.push([`Insufficient ${k}`, true]);
    }
    return out;
  }
  function fitMessage(n, hist) {
    return `0/${n} nodes are available: ${Object.entries(hist).map(([r, c]) => `${c} ${r}`).sort().join(', ')}.`;
  }
  function schedule(pod) {
    if (pod.spec.nodeName || pod.metadata.deletionTimestamp || (pod.spec.schedulerName && pod.spec.schedulerName !== 'default-scheduler')) return;
    const nodes = list('nodes');
    const hist = {}; const pre = {};
    const fit = [];
    for (const n of nodes) {
      const why = filter(pod, n);
      if (why.length === 0) { fit.push(n); continue; }
      for (const [r] of why) hist[r] = (hist[r] || 0) + 1;
      const resolvable = why.every(([, res]) => res);
      const p = resolvable ? 'No preemption victims found for incoming pod' : 'Preemption is not helpful for scheduling';
      pre[p] = (pre[p] || 0) + 1;
    }
    if (fit.length) {
      // least allocated GPUs first, then name: spreads replicas like the default scoring
      const free = (n) => qty(n.status.allocatable[GPU]) - (used(n.metadata.name, pod)[GPU] || 0);
      fit.sort((a, b) => free(b) - free(a) || a.metadata.name.localeCompare(b.metadata.name));
      const node = fit[0];
      schedFailures.delete(pod.metadata.uid);
      const t = now();
      update('pods', pod, (p) => {
        p.spec.nodeName = node.metadata.name;
        p.status.conditions = [{ type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: t }];
      });
      recordEvent(pod, 'Normal', 'Scheduled', `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${node.metadata.name}`, 'Binding');
      later(delays.create, () => kubeletSync(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid));
      return;
    }
    let msg = nodes.length ? fitMessage(nodes.length, hist) : '0/0 nodes are available.';
    if (nodes.length) msg += ` preemption: ${fitMessage(nodes.length, pre)}.`; // the real message ends with '..'
    else msg = 'no nodes available to schedule pods';
    if (schedFailures.get(pod.metadata.uid) === msg) return;
    schedFailures.set(pod.metadata.uid, msg);
    const t = now();
    const podRv = pod.metadata.resourceVersion;
    update('pods', pod, (p) => {
      p.status.conditions = [{ type: 'PodScheduled', status: 'False', lastProbeTime: null, lastTransitionTime: t, reason: 'Unschedulable', message: msg }];
    }, { manager: 'kube-scheduler', subresource: 'status', fields: { 'f:status': { 'f:conditions': { '.': {}, 'k:{"type":"PodScheduled"}': { '.': {}, 'f:lastProbeTime': {}, 'f:lastTransitionTime': {}, 'f:message': {}, 'f:reason': {}, 'f:status': {}, 'f:type': {} } } } } });
    recordEvent(pod, 'Warning', 'FailedScheduling', msg, 'Scheduling', podRv);
  }
  function scheduleAll() {
    for (const p of list('pods')) {
      if (TERMINAL.has(p.status.phase) || p.metadata.deletionTimestamp) continue;
      if (!p.spec.nodeName) schedule(p);
      else if (!p.status.conditions && p.status.phase === 'Pending') kubeletAdmit(p);
    }
  }
  const schedulerHost = opts.schedulerHost ?? hostname();
  // event names are NAME.<UnixNano in hex>, so they sort by time
  let lastNano = 0n;
  const eventName = (name) => {
    let n = BigInt(Date.now()) * 1000000n + process.hrtime.bigint() % 1000000n;
    if (n <= lastNano) n = lastNano + 1n;
    lastNano = n;
    return `${name}.${n.toString(16)}`;
  };
  // core/v1 view of an events.k8s.io/v1 event, as the scheduler writes them
  function recordEvent(obj, type, reason, message, action, objRv) {
    const ns = obj.metadata.namespace || 'default';
    const ev = {
      kind: 'Event', apiVersion: 'v1',
      metadata: {
        name: eventName(obj.metadata.name), namespace: ns, uid: uid(), creationTimestamp: now(),
        managedFields: [managedEntry(reason === 'FailedScheduling' || reason === 'Scheduled' ? 'kube-scheduler' : 'kubelet', 'Update', 'events.k8s.io/v1',
          { 'f:action': {}, 'f:eventTime': {}, 'f:note': {}, 'f:reason': {}, 'f:regarding': {}, 'f:reportingController': {}, 'f:reportingInstance': {}, 'f:type': {} })],
      },
      involvedObject: { kind: obj.kind, namespace: ns, name: obj.metadata.name, uid: obj.metadata.uid, apiVersion: obj.apiVersion, resourceVersion: objRv ?? obj.metadata.resourceVersion },
      reason, message, source: {}, firstTimestamp: null, lastTimestamp: null, type, eventTime: nowMicro(), action,
      reportingComponent: reason === 'FailedScheduling' || reason === 'Scheduled' ? 'default-scheduler' : 'kubelet',
      reportingInstance: reason === 'FailedScheduling' || reason === 'Scheduled' ? `default-scheduler-${schedulerHost}` : (obj.spec?.nodeName || ''),
    };
    put('events', ev, 'ADDED');
  }

  // core/v1 events as the kubelet's legacy recorder writes them (the hollow
  // nodes of the transcripts post none)
  function kubeletEvent(pod, container, type, reason, message) {
    if (hollow || stopped) return;
    const t = now();
    const ref = { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid, apiVersion: 'v1', resourceVersion: pod.metadata.resourceVersion };
    if (container) ref.fieldPath = `spec.containers{${container}}`;
    put('events', {
      kind: 'Event', apiVersion: 'v1',
      metadata: { name: eventName(pod.metadata.name), namespace: pod.metadata.namespace, uid: uid(), creationTimestamp: t,
        managedFields: [managedEntry('kubelet', 'Update', 'v1', { 'f:count': {}, 'f:firstTimestamp': {}, 'f:involvedObject': {}, 'f:lastTimestamp': {}, 'f:message': {}, 'f:reason': {}, 'f:source': { 'f:component': {}, 'f:host': {} }, 'f:type': {} })] },
      involvedObject: ref, reason, message, source: { component: 'kubelet', host: pod.spec.nodeName }, firstTimestamp: t, lastTimestamp: t, count: 1, type,
      eventTime: null, reportingComponent: 'kubelet', reportingInstance: pod.spec.nodeName,
    }, 'ADDED');
  }

  // ---- kubelet -----------------------------------------------------------
  const KUBELET = hollow ? 'hollow-kubelet' : 'kubelet';
  const rt = (pod) => {
    let r = runtime.get(pod.metadata.uid);
    if (!r) {
      r = { containers: {}, ip: hollow ? '192.168.192.168' : `10.244.0.${podIPNext++ % 250 + 2}`, manualReady: new Set() };
      for (const c of [...(pod.spec.initContainers || []), ...pod.spec.containers]) r.containers[c.name] = { logs: [], prev: null, followers: new Set(), instance: 0, ready: false, held: false };
      runtime.set(pod.metadata.uid, r);
    }
    return r;
  };
  const cond = (type, status, t, reason, message) => {
    const c = { type, status, lastProbeTime: null, lastTransitionTime: t };
    if (reason) c.reason = reason;
    if (message) c.message = message;
    return c;
  };
  function kubeletFields(pod) {
    // an Update entry lists what the kubelet changed: phase only once it left Pending
    const r = rt(pod);
    if (pod.status.phase !== 'Pending') r.phaseWritten = true;
    const f = { 'f:conditions': {}, 'f:containerStatuses': {}, 'f:hostIP': {}, 'f:startTime': {} };
    if (r.phaseWritten) f['f:phase'] = {};
    for (const c of [...(pod.status.conditions || [])].sort((a, b) => a.type.localeCompare(b.type))) if (c.type !== 'PodScheduled') f['f:conditions'][`k:{"type":"${c.type}"}`] = { '.': {}, 'f:lastProbeTime': {}, 'f:lastTransitionTime': {}, ...(c.message ? { 'f:message': {} } : {}), ...(c.reason ? { 'f:reason': {} } : {}), 'f:status': {}, 'f:type': {} };
    if (pod.status.podIP) { f['f:podIP'] = {}; f['f:podIPs'] = { '.': {}, [`k:{"ip":"${pod.status.podIP}"}`]: { '.': {}, 'f:ip': {} } }; }
    return { 'f:status': Object.fromEntries(Object.keys(f).sort().map((k) => [k, f[k]])) };
  }
  const containerID = (pod, name, inst) => (hollow
    ? `fakeRuntime://${pod.metadata.name}_${pod.metadata.namespace}_${pod.metadata.uid}_0_${name}_${inst}`
    : `containerd://${randomBytes(32).toString('hex')}`);
  const needsProbe = (c) => !!(c.readinessProbe || c.startupProbe);
  // Recomputes the pod status the kubelet reports from the runtime state.
  function writeStatus(pod, mutateRt) {
    const r = rt(pod);
    update('pods', pod, (p) => {
      if (mutateRt) mutateRt(p, r);
      const t = now();
      const st = p.status;
      const statuses = p.spec.containers.map((c) => {
        const s = r.containers[c.name];
        const cs = { name: c.name, state: s.state || { waiting: { reason: 'ContainerCreating' } }, lastState: s.lastState || {}, ready: !!s.ready, restartCount: s.instance > 0 ? s.restarts || 0 : (s.restarts || 0), image: c.image, imageID: s.imageID || '' };
        if (s.containerID) cs.containerID = s.containerID;
        if (!hollow) cs.started = !!s.state?.running && !!s.started;
        return cs;
      });
      // init containers run first, one by one; the others wait for them (PodInitializing)
      const inits = (p.spec.initContainers || []).map((c) => {
        const s = r.containers[c.name];
        const cs = { name: c.name, state: s.state || { waiting: { reason: 'PodInitializing' } }, lastState: s.lastState || {}, ready: !!s.state?.terminated && s.state.terminated.exitCode === 0,
          restartCount: s.restarts || 0, image: c.image, imageID: s.imageID || '' };
        if (s.containerID) cs.containerID = s.containerID;
        if (!hollow) cs.started = !!s.state?.running;
        return cs;
      });
      const initFailed = inits.some((c) => c.state.terminated && c.state.terminated.exitCode !== 0);
      const initDone = inits.every((c) => c.state.terminated?.exitCode === 0);
      const allTerm = statuses.every((c) => c.state.terminated) || (initFailed && p.spec.restartPolicy === 'Never');
      let phase = st.phase;
      if (initFailed && p.spec.restartPolicy === 'Never') phase = 'Failed';
      else if (allTerm) phase = statuses.every((c) => c.state.terminated.exitCode === 0) ? 'Succeeded' : 'Failed';
      else if (!initDone) phase = 'Pending';
      else if (statuses.some((c) => c.state.running) || statuses.some((c) => c.restartCount > 0 && p.spec.restartPolicy !== 'Never')) phase = 'Running';
      else phase = 'Pending';
      const ready = !allTerm && statuses.every((c) => c.ready);
      const unready = statuses.filter((c) => !c.ready).map((c) => c.name);
      const prev = Object.fromEntries((st.conditions || []).map((c) => [c.type, c]));
      const mk = (type, status, reason, message) => (prev[type] && prev[type].status === status && prev[type].reason === reason && prev[type].message === message ? prev[type] : cond(type, status, t, reason, message));
      const notReadyMsg = `containers with unready status: [${unready.join(' ')}]`;
      const readyReason = TERMINAL.has(phase) ? 'PodCompleted' : 'ContainersNotReady';
      const conditions = hollow && !allTerm && !r.notReady
        ? [mk('Initialized', 'True'), mk('Ready', 'True'), mk('ContainersReady', 'True')]
        : [mk('Initialized', 'True', TERMINAL.has(phase) ? 'PodCompleted' : undefined), ready ? mk('Ready', 'True') : mk('Ready', 'False', readyReason, TERMINAL.has(phase) ? undefined : notReadyMsg),
          ready ? mk('ContainersReady', 'True') : mk('ContainersReady', 'False', readyReason, TERMINAL.has(phase) ? undefined : notReadyMsg)];
      if (inits.length && !initDone) {
        const incomplete = inits.filter((c) => !(c.state.terminated?.exitCode === 0)).map((c) => c.name);
        conditions[0] = mk('Initialized', 'False', 'ContainersNotInitialized', `containers with incomplete status: [${incomplete.join(' ')}]`);
      }
      conditions.push(prev.PodScheduled || cond('PodScheduled', 'True', t));
      const ns = { phase, conditions, hostIP: nodeIP(p.spec.nodeName) };
      if (r.started) { ns.podIP = r.ip; ns.podIPs = [{ ip: r.ip }]; }
      ns.startTime = st.startTime || t;
      if (inits.length) ns.initContainerStatuses = inits;
      ns.containerStatuses = statuses;
      ns.qosClass = st.qosClass;
      p.status = ns;
    }, { manager: KUBELET, subresource: 'status', fields: kubeletFields });
    return pod;
  }
  const nodeIP = (name) => get('nodes', '', name)?.status.addresses.find((a) => a.type === 'InternalIP')?.address;
  const livePod = (ns, name, id) => { const p = get('pods', ns, name); return p && p.metadata.uid === id && !p.metadata.deletionTimestamp ? p : null; };

  // A pod created with spec.nodeName skips the scheduler; the node's kubelet
  // admits it, or rejects it (Failed, OutOf<resource>) as a real kubelet does.
  function kubeletAdmit(pod) {
    const node = get('nodes', '', pod.spec.nodeName);
    if (!node || !nodeReady(node)) return; // nobody runs it: it stays Pending
    const u = used(node.metadata.name, pod);
    const want = podRequests(pod);
    for (const [k, v] of Object.entries(want).sort()) {
      const cap = qty(node.status.allocatable[k]);
      if (v > 0 && (u[k] || 0) + v > cap) {
        const t = now();
        update('pods', pod, (p) => {
          p.status = { phase: 'Failed', message: `Pod was rejected: Node didn't have enough resource: ${k}, requested: ${v}, used: ${u[k] || 0}, capacity: ${cap}`, reason: `OutOf${k}`, startTime: t, qosClass: p.status.qosClass };
        }, { manager: KUBELET, subresource: 'status', fields: { 'f:status': { 'f:message': {}, 'f:phase': {}, 'f:reason': {}, 'f:startTime': {} } } });
        return;
      }
    }
    update('pods', pod, (p) => { p.status.conditions = [{ type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: now() }]; });
    later(delays.create, () => kubeletSync(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid));
  }

  function kubeletSync(ns, name, id) {
    const pod = livePod(ns, name, id);
    if (!pod) return;
    const r = rt(pod);
    // ContainerCreating (or image pull failure)
    writeStatus(pod, (p, r2) => {
      for (const c of p.spec.containers) {
        const s = r2.containers[c.name];
        if ((opts.failImages || []).some((re) => new RegExp(re).test(c.image))) s.state = { waiting: { reason: 'ErrImagePull', message: `rpc error: code = NotFound desc = failed to pull and unpack image "${c.image}": not found` } };
        else s.state = { waiting: { reason: (p.spec.initContainers || []).length ? 'PodInitializing' : 'ContainerCreating' } };
        if (hollow) s.ready = true;
      }
    });
    for (const c of pod.spec.containers) {
      const s = r.containers[c.name];
      if (s.state.waiting?.reason === 'ErrImagePull') {
        kubeletEvent(pod, c.name, 'Normal', 'Pulling', `Pulling image "${c.image}"`);
        kubeletEvent(pod, c.name, 'Warning', 'Failed', `Failed to pull image "${c.image}": ${s.state.waiting.message}`);
        kubeletEvent(pod, c.name, 'Warning', 'Failed', 'Error: ErrImagePull');
      }
    }
    if (Object.values(r.containers).some((s) => s.state?.waiting?.reason === 'ErrImagePull')) {
      later(delays.start, () => { const p = livePod(ns, name, id); if (p) control.imagePullBackOff(ns, name); });
      return;
    }
    if (opts.kubelet === 'manual') return; // the test calls control.start()
    if ((pod.spec.initContainers || []).length) later(delays.start, () => runInits(ns, name, id, 0));
    else later(delays.start, () => startContainers(ns, name, id));
  }
  // Runs init container i: opts.runInit(pod, container, { log(text), exit(code) }) plays it (a test
  // runs the real program), else it completes at once; the next one, or the containers, follow.
  function runInits(ns, name, id, i) {
    const pod = livePod(ns, name, id);
    if (!pod) return;
    const c = pod.spec.initContainers[i];
    if (!c) return startContainers(ns, name, id);
    const r = rt(pod), s = r.containers[c.name];
    writeStatus(pod, () => {
      s.state = { running: { startedAt: now() } };
      s.containerID = containerID(pod, c.name, s.instance);
      s.imageID = `${c.image.replace(/:[^/:]*$/, '')}@sha256:${randomBytes(32).toString('hex')}`;
    });
    kubeletEvent(pod, c.name, 'Normal', 'Pulled', `Container image "${c.image}" already present on machine`);
    kubeletEvent(pod, c.name, 'Normal', 'Created', `Created container ${c.name}`);
    kubeletEvent(pod, c.name, 'Normal', 'Started', `Started container ${c.name}`);
    let ended = false;
    const io = {
      log(text) {
        for (const t of String(text).split('\n').filter(Boolean)) {
          const l = { ts: now(), text: t };
          s.logs.push(l);
          for (const f of s.followers) f.write(l);
        }
      },
      exit(code) {
        if (ended) return;
        ended = true;
        const p = livePod(ns, name, id);
        if (!p) return;
        writeStatus(p, () => {
          s.state = { terminated: { exitCode: code, reason: code === 0 ? 'Completed' : 'Error', startedAt: s.state?.running?.startedAt ?? now(), finishedAt: now(), containerID: s.containerID } };
        });
        for (const f of s.followers) f.end();
        s.followers.clear();
        if (code === 0) later(delays.start, () => runInits(ns, name, id, i + 1));
      },
    };
    if (opts.runInit) opts.runInit(pod, c, io);
    else io.exit(0);
  }
  function startContainers(ns, name, id, only) {
    const pod = livePod(ns, name, id);
    if (!pod) return;
    const events = [];
    writeStatus(pod, (p, r) => {
      r.started = true;
      for (const c of p.spec.containers) {
        if (only && c.name !== only) continue;
        const s = r.containers[c.name];
        if (s.state?.running || (s.state?.terminated && p.spec.restartPolicy === 'Never')) continue;
        s.state = { running: { startedAt: now() } };
        s.started = true;
        s.containerID = containerID(p, c.name, s.instance);
        s.imageID = hollow ? c.image : `${c.image.replace(/:[^/:]*$/, '')}@sha256:${randomBytes(32).toString('hex')}`;
        s.ready = hollow || (!needsProbe(c) || opts.autoReady === true || r.manualReady.has(c.name));
        events.push(c);
      }
    });
    for (const c of events) {
      if (c.imagePullPolicy === 'Always') {
        kubeletEvent(pod, c.name, 'Normal', 'Pulling', `Pulling image "${c.image}"`);
        kubeletEvent(pod, c.name, 'Normal', 'Pulled', `Successfully pulled image "${c.image}" in 1.02s (1.02s including waiting)`);
      } else kubeletEvent(pod, c.name, 'Normal', 'Pulled', `Container image "${c.image}" already present on machine`);
      kubeletEvent(pod, c.name, 'Normal', 'Created', `Created container ${c.name}`);
      kubeletEvent(pod, c.name, 'Normal', 'Started', `Started container ${c.name}`);
    }
  }
  // ends a container: code, reason; restarts per restartPolicy
  function terminate(pod, cname, { exitCode = 1, reason, message, signal } = {}) {
    const r = rt(pod);
    const s = r.containers[cname];
    if (!s) throw errors.badRequest(`container ${cname} is not valid for pod ${pod.metadata.name}`);
    const term = { exitCode, reason: reason ?? (exitCode === 0 ? 'Completed' : 'Error') };
    if (signal !== undefined) term.signal = signal;
    if (message) term.message = message;
    term.startedAt = s.state?.running?.startedAt ?? now();
    term.finishedAt = now();
    if (s.containerID) term.containerID = s.containerID;
    const restart = pod.spec.restartPolicy === 'Always' || (pod.spec.restartPolicy === 'OnFailure' && exitCode !== 0);
    writeStatus(pod, () => {
      s.ready = false;
      r.manualReady.delete(cname);
      if (restart) {
        s.lastState = { terminated: term };
        s.restarts = (s.restarts || 0) + 1;
        s.instance++;
        const backoff = Math.min(10 * 2 ** (s.restarts - 1), 300);
        s.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${backoff >= 60 ? `${Math.floor(backoff / 60)}m${backoff % 60 ? `${backoff % 60}s` : ''}` : `${backoff}s`} restarting failed container=${cname} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})` } };
        s.prev = s.logs; s.logs = [];
        s.containerID = undefined;
      } else {
        s.state = { terminated: term };
      }
    });
    for (const f of s.followers) f.end();
    s.followers.clear();
    if (restart) kubeletEvent(pod, cname, 'Warning', 'BackOff', `Back-off restarting failed container ${cname} in pod ${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`);
    if (restart && delays.backoff > 0) later(delays.backoff, () => startContainers(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid, cname));
    return pod;
  }

  // ---- controllers -------------------------------------------------------
  function ownedBy(res, owner) {
    return list(res, owner.metadata.namespace).filter((o) => (o.metadata.ownerReferences || []).some((r) => r.uid === owner.metadata.uid));
  }
  const ownerRef = (o, kind) => ({ apiVersion: o.apiVersion, kind, name: o.metadata.name, uid: o.metadata.uid, controller: true, blockOwnerDeletion: true });
  function podFromTemplate(tpl, ns, { generateName, labels, owner, ownerKind, manager }) {
    const pod = { kind: 'Pod', apiVersion: 'v1', metadata: { generateName, namespace: ns, labels: { ...(tpl.metadata?.labels || {}), ...labels }, ownerReferences: [ownerRef(owner, ownerKind)] }, spec: clone(tpl.spec) };
    if (tpl.metadata?.annotations) pod.metadata.annotations = clone(tpl.metadata.annotations);
    return createObject('pods', ns, pod, { manager, operation: 'Update' });
  }
  function syncReplicaSet(rs) {
    const pods = ownedBy('pods', rs).filter((p) => !p.metadata.deletionTimestamp && !TERMINAL.has(p.status.phase));
    const want = rs.spec.replicas ?? 1;
    for (let i = pods.length; i < want; i++) {
      podFromTemplate(rs.spec.template, rs.metadata.namespace, { generateName: `${rs.metadata.name}-`, labels: {}, owner: rs, ownerKind: 'ReplicaSet', manager: 'kube-controller-manager' });
    }
    for (const p of pods.slice(want)) deletePod(p, 0);
    const all = ownedBy('pods', rs).filter((p) => !p.metadata.deletionTimestamp);
    const ready = all.filter(isReady).length;
    update('replicasets', rs, (o) => {
      o.status = { replicas: all.length, fullyLabeledReplicas: all.length, readyReplicas: ready || undefined, availableReplicas: ready || undefined, observedGeneration: o.metadata.generation };
    });
    for (const d of list('deployments', rs.metadata.namespace)) if ((rs.metadata.ownerReferences || []).some((r) => r.uid === d.metadata.uid)) syncDeploymentStatus(d);
  }
  const isReady = (p) => p.status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  function syncDeployment(d) {
    const hash = templateHash(d.spec.template);
    const rsName = `${d.metadata.name}-${hash}`;
    let rs = get('replicasets', d.metadata.namespace, rsName);
    const revision = String(ownedBy('replicasets', d).length + (rs ? 0 : 1));
    for (const old of ownedBy('replicasets', d)) if (old.metadata.name !== rsName && old.spec.replicas !== 0) update('replicasets', old, (o) => { o.spec.replicas = 0; });
    if (!rs) {
      const tpl = clone(d.spec.template);
      tpl.metadata.labels = { ...(tpl.metadata.labels || {}), 'pod-template-hash': hash };
      rs = createObject('replicasets', d.metadata.namespace, {
        kind: 'ReplicaSet', apiVersion: 'apps/v1',
        metadata: { name: rsName, namespace: d.metadata.namespace, labels: tpl.metadata.labels, annotations: { 'deployment.kubernetes.io/desired-replicas': String(d.spec.replicas), 'deployment.kubernetes.io/max-replicas': String(d.spec.replicas + 1), 'deployment.kubernetes.io/revision': revision }, ownerReferences: [ownerRef(d, 'Deployment')] },
        spec: { replicas: d.spec.replicas, selector: { matchLabels: { ...(d.spec.selector.matchLabels || {}), 'pod-template-hash': hash } }, template: tpl },
      }, { manager: 'kube-controller-manager', operation: 'Update' });
      update('deployments', d, (o) => { o.metadata.annotations = { ...(o.metadata.annotations || {}), 'deployment.kubernetes.io/revision': revision }; });
    } else if (rs.spec.replicas !== d.spec.replicas) {
      update('replicasets', rs, (o) => { o.spec.replicas = d.spec.replicas; });
    }
    syncDeploymentStatus(d);
  }
  function syncDeploymentStatus(d) {
    d = get('deployments', d.metadata.namespace, d.metadata.name);
    if (!d) return;
    const rss = ownedBy('replicasets', d);
    const hash = templateHash(d.spec.template);
    const cur = rss.find((r) => r.metadata.name === `${d.metadata.name}-${hash}`);
    const pods = rss.flatMap((r) => ownedBy('pods', r)).filter((p) => !p.metadata.deletionTimestamp && !TERMINAL.has(p.status.phase));
    const ready = pods.filter(isReady).length;
    const updated = cur ? ownedBy('pods', cur).filter((p) => !p.metadata.deletionTimestamp && !TERMINAL.has(p.status.phase)).length : 0;
    const t = now();
    const want = d.spec.replicas;
    const maxUnavail = Math.floor(want * 0.25);
    const prevC = Object.fromEntries((d.status.conditions || []).map((c) => [c.type, c]));
    const dc = (type, status, reason, message) => {
      const p = prevC[type];
      if (p && p.status === status && p.reason === reason && p.message === message) return p;
      return { type, status, lastUpdateTime: t, lastTransitionTime: p && p.status === status ? p.lastTransitionTime : t, reason, message };
    };
    const available = ready >= want - maxUnavail;
    const conditions = [
      available ? dc('Available', 'True', 'MinimumReplicasAvailable', 'Deployment has minimum availability.') : dc('Available', 'False', 'MinimumReplicasUnavailable', 'Deployment does not have minimum availability.'),
      cur && ready >= want && updated === want
        ? dc('Progressing', 'True', 'NewReplicaSetAvailable', `ReplicaSet "${cur.metadata.name}" has successfully progressed.`)
        : dc('Progressing', 'True', cur && prevC.Progressing ? 'ReplicaSetUpdated' : 'NewReplicaSetCreated', `${prevC.Progressing ? 'ReplicaSet' : 'Created new replica set'} "${cur?.metadata.name}"${prevC.Progressing ? ' is progressing.' : ''}`),
    ];
    if (!available) conditions.reverse();
    const status = { observedGeneration: d.metadata.generation, replicas: pods.length || undefined, updatedReplicas: updated || undefined, readyReplicas: ready || undefined, availableReplicas: ready || undefined, unavailableReplicas: (want - ready) > 0 ? want - ready : undefined, conditions };
    const fields = { 'f:metadata': { 'f:annotations': { '.': {}, 'f:deployment.kubernetes.io/revision': {} } }, 'f:status': { 'f:conditions': { '.': {} } } };
    for (const c of conditions) fields['f:status']['f:conditions'][`k:{"type":"${c.type}"}`] = { '.': {}, 'f:lastTransitionTime': {}, 'f:lastUpdateTime': {}, 'f:message': {}, 'f:reason': {}, 'f:status': {}, 'f:type': {} };
    for (const k of Object.keys(status).filter((x) => x !== 'conditions' && status[x] !== undefined)) fields['f:status'][`f:${k}`] = {};
    fields['f:status'] = Object.fromEntries(Object.keys(fields['f:status']).sort().map((k) => [k, fields['f:status'][k]]));
    update('deployments', d, (o) => { o.status = status; }, { manager: 'kube-controller-manager', subresource: 'status', fields });
  }
  function syncJob(job) {
    job = get('jobs', job.metadata.namespace, job.metadata.name);
    if (!job || job.spec.suspend) return;
    if ((job.status.conditions || []).some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True')) return;
    const pods = ownedBy('pods', job);
    const active = pods.filter((p) => !TERMINAL.has(p.status.phase) && !p.metadata.deletionTimestamp);
    const succeeded = pods.filter((p) => p.status.phase === 'Succeeded').length;
    const failed = pods.filter((p) => p.status.phase === 'Failed').length;
    const t = now();
    const st = { ...job.status };
    st.startTime ??= t;
    const done = succeeded >= (job.spec.completions ?? 1);
    const gaveUp = failed > job.spec.backoffLimit;
    if (!done && !gaveUp && active.length < (job.spec.parallelism ?? 1) - 0 && active.length + succeeded < (job.spec.completions ?? 1)) {
      podFromTemplate(job.spec.template, job.metadata.namespace, { generateName: `${job.metadata.name}-`, labels: { 'controller-uid': job.metadata.uid, 'job-name': job.metadata.name }, owner: job, ownerKind: 'Job', manager: 'kube-controller-manager' });
      return; // the pod's creation calls back here
    }
    const conditions = [...(st.conditions || [])];
    if (done) conditions.push({ type: 'Complete', status: 'True', lastProbeTime: t, lastTransitionTime: t });
    else if (gaveUp) {
      conditions.push({ type: 'Failed', status: 'True', lastProbeTime: t, lastTransitionTime: t, reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' });
      for (const p of active) deletePod(p, 0);
    }
    const ns = {};
    if (conditions.length) ns.conditions = conditions;
    ns.startTime = st.startTime;
    if (done) ns.completionTime = t;
    const nActive = done || gaveUp ? 0 : active.length;
    if (nActive) ns.active = nActive;
    if (succeeded) ns.succeeded = succeeded;
    if (failed) ns.failed = failed;
    ns.uncountedTerminatedPods = {};
    ns.ready = done || gaveUp ? 0 : active.filter(isReady).length;
    const fields = { 'f:status': {} };
    for (const k of Object.keys(ns).sort()) fields['f:status'][`f:${k}`] = {};
    update('jobs', job, (o) => { o.status = ns; }, { manager: 'kube-controller-manager', subresource: 'status', fields });
  }
  // Called after every change: the controllers and the scheduler react.
  function react(res, obj, deleted) {
    if (stopped) return;
    if (res === 'pods') {
      for (const ref of obj.metadata.ownerReferences || []) {
        if (ref.kind === 'ReplicaSet') { const rs = get('replicasets', obj.metadata.namespace, ref.name); if (rs && rs.metadata.uid === ref.uid) later(0, () => { const x = get('replicasets', rs.metadata.namespace, rs.metadata.name); if (x) syncReplicaSet(x); }); }
        if (ref.kind === 'Job') { const j = get('jobs', obj.metadata.namespace, ref.name); if (j && j.metadata.uid === ref.uid) later(0, () => syncJob(j)); }
      }
      if (deleted || TERMINAL.has(obj.status.phase)) {
        runtime.get(obj.metadata.uid)?.containers && Object.values(runtime.get(obj.metadata.uid).containers).forEach((c) => { for (const f of c.followers) f.end(); c.followers.clear(); });
        if (deleted) later(delays.schedule, scheduleAll);
      }
    } else if (res === 'nodes') {
      later(delays.schedule, scheduleAll);
    } else if (res === 'replicasets' && !deleted) {
      later(0, () => { const x = get('replicasets', obj.metadata.namespace, obj.metadata.name); if (x && x.metadata.uid === obj.metadata.uid) syncReplicaSet(x); });
    }
  }

  // ---- create / delete ---------------------------------------------------
  const SYSTEM = { manager: null };
  function createObject(res, ns, body, { manager, operation = 'Update', dryRun = false } = SYSTEM) {
    const r = RESOURCES[res];
    const o = clone(body);
    o.kind = r.kind; o.apiVersion = apiVersionOf(r);
    o.metadata = o.metadata || {};
    if (r.namespaced) {
      if (o.metadata.namespace && o.metadata.namespace !== ns) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      o.metadata.namespace = ns;
      if (!get('namespaces', '', ns)) throw errors.notFound('namespaces', ns);
    } else delete o.metadata.namespace;
    if (operation !== 'Apply') applyDefaults(res, o);
    if (!o.metadata.name && o.metadata.generateName) o.metadata.name = o.metadata.generateName + randSuffix(5);
    const errs = validate(res, o);
    if (errs.length) throw errors.invalid(res, o.metadata.name ?? '', errs);
    if (get(res, ns, o.metadata.name)) throw errors.alreadyExists(res, o.metadata.name);
    let fields = null;
    if (manager) fields = fieldsV1(res, o, { apply: operation === 'Apply' });
    if (operation === 'Apply') applyDefaults(res, o);
    for (const k of ['uid', 'resourceVersion', 'creationTimestamp', 'generation', 'managedFields', 'deletionTimestamp', 'selfLink']) delete o.metadata[k];
    o.metadata.uid = uid();
    const t = now();
    o.metadata.creationTimestamp = t;
    if (['deployments', 'jobs', 'replicasets'].includes(res)) o.metadata.generation = 1;
    if (fields) o.metadata.managedFields = [managedEntry(manager, operation, o.apiVersion, fields)];
    if (res === 'pods') admitPod(o);
    if (res === 'jobs') {
      const id = o.metadata.uid;
      o.metadata.labels = { 'controller-uid': id, 'job-name': o.metadata.name, ...(o.metadata.labels || {}) };
      o.metadata.annotations = { 'batch.kubernetes.io/job-tracking': '', ...(o.metadata.annotations || {}) };
      if (!o.spec.manualSelector) o.spec.selector = { matchLabels: { 'controller-uid': id } };
      o.spec.template.metadata.labels = { 'controller-uid': id, 'job-name': o.metadata.name, ...(o.spec.template.metadata.labels || {}) };
      o.status = {};
    }
    if (res === 'deployments' || res === 'replicasets') o.status = {};
    if (res === 'services') {
      const s = o.spec;
      if (s.type !== 'ExternalName' && !s.clusterIP) { s.clusterIP = `10.0.0.${clusterIPNext++ % 250 + 2}`; }
      if (s.clusterIP && s.clusterIP !== 'None' || s.clusterIP === 'None') s.clusterIPs = [s.clusterIP];
      s.ipFamilies = ['IPv4']; s.ipFamilyPolicy = 'SingleStack';
      if (s.type === 'NodePort' || s.type === 'LoadBalancer') {
        for (const p of s.ports) {
          if (p.nodePort) {
            if (nodePorts.has(p.nodePort)) throw errors.invalid(res, o.metadata.name, [{ reason: 'FieldValueInvalid', field: 'spec.ports[0].nodePort', text: `Invalid value: ${p.nodePort}: provided port is already allocated` }]);
          } else {
            do p.nodePort = 30000 + Math.floor(Math.random() * 2768); while (nodePorts.has(p.nodePort));
          }
          if (!dryRun) nodePorts.add(p.nodePort);
        }
      }
      if (s.type === 'LoadBalancer') s.allocateLoadBalancerNodePorts ??= true;
      o.status = { loadBalancer: {} };
    }
    if (dryRun) return canonical(r.kind, o);
    put(res, o, 'ADDED');
    if (res === 'pods') {
      later(delays.schedule, () => {
        const p = get('pods', ns, o.metadata.name);
        if (!p || p.metadata.uid !== o.metadata.uid) return;
        if (p.spec.nodeName) kubeletAdmit(p); else schedule(p);
      });
    }
    if (res === 'deployments') later(0, () => { const d = get('deployments', ns, o.metadata.name); if (d) syncDeployment(d); });
    if (res === 'replicasets') syncReplicaSet(o);
    if (res === 'jobs') later(0, () => syncJob(o));
    if (res === 'pods') react(res, o);
    return o;
  }
  function deletePod(pod, grace) {
    if (!pod.spec.nodeName || grace === 0 || TERMINAL.has(pod.status.phase)) {
      if (!pod.metadata.deletionTimestamp && pod.spec.nodeName && grace === 0) update('pods', pod, (p) => { p.metadata.deletionTimestamp = now(); p.metadata.deletionGracePeriodSeconds = 0; });
      const snap = clone(pod);
      remove('pods', pod);
      return snap;
    }
    if (!pod.metadata.deletionTimestamp) {
      const g = grace ?? pod.spec.terminationGracePeriodSeconds ?? 30;
      update('pods', pod, (p) => { p.metadata.deletionTimestamp = new Date(Date.now() + g * 1000).toISOString().replace(/\.\d+Z$/, 'Z'); p.metadata.deletionGracePeriodSeconds = g; });
      for (const c of pod.spec.containers) if (runtime.get(pod.metadata.uid)?.containers[c.name]?.state?.running) kubeletEvent(pod, c.name, 'Normal', 'Killing', `Stopping container ${c.name}`);
      const { namespace: ns, name, uid: id } = pod.metadata;
      later(delays.terminate, () => {
        const p = get('pods', ns, name);
        if (!p || p.metadata.uid !== id) return;
        const rtc = runtime.get(id);
        if (rtc) for (const c of Object.values(rtc.containers)) { for (const f of c.followers) f.end(); c.followers.clear(); }
        remove('pods', p);
      });
    }
    return clone(pod);
  }
  // propagation: Background | Foreground | Orphan
  function deleteObject(res, obj, { propagation, grace } = {}) {
    const def = res === 'jobs' || res === 'replicationcontrollers' ? 'Orphan' : 'Background';
    const policy = propagation || def;
    let out;
    if (res === 'pods') out = deletePod(obj, grace);
    else { remove(res, obj); out = clone(obj); }
    // the garbage collector: whatever names obj in its ownerReferences
    const deps = ['replicasets', 'pods', 'services', 'secrets', 'configmaps'].flatMap((r) => ownedBy(r, obj).map((o) => [r, o]));
    for (const [r, o] of deps) {
      if (policy === 'Orphan') update(r, o, (x) => { x.metadata.ownerReferences = x.metadata.ownerReferences.filter((ref) => ref.uid !== obj.metadata.uid); if (!x.metadata.ownerReferences.length) delete x.metadata.ownerReferences; });
      else deleteObject(r, o, { propagation: 'Background' });
    }
    if (res === 'services') for (const p of obj.spec.ports || []) nodePorts.delete(p.nodePort);
    if (res === 'namespaces') for (const r of Object.keys(RESOURCES)) if (RESOURCES[r].namespaced) for (const o of list(r, obj.metadata.name)) deleteObject(r, o, { grace: 0 });
    return out;
  }

  // ---- apply / patch / update -----------------------------------------------
  // key-order-insensitive serialisation, to tell real changes from reordering
  const stable = (v) => (Array.isArray(v) ? `[${v.map(stable).join(',')}]` : v && typeof v === 'object'
    ? `{${Object.keys(v).filter((k) => v[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${stable(v[k])}`).join(',')}}` : JSON.stringify(v));
  function specOf(o) { return stable({ spec: o.spec, data: o.data, type: o.type }); }
  function writeExisting(res, cur, next, { manager, operation, fields, explicitManagedFields = false }) {
    const r = RESOURCES[res];
    next.kind = r.kind; next.apiVersion = apiVersionOf(r);
    for (const k of ['name', 'namespace', 'uid', 'creationTimestamp', 'generation', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'ownerReferences']) {
      if (cur.metadata[k] !== undefined) next.metadata[k] = cur.metadata[k];
    }
    if (res !== 'pods' && res !== 'nodes' && res !== 'namespaces') next.status = cur.status;
    if (res === 'pods') { next.status = cur.status; next.spec.nodeName = cur.spec.nodeName; }
    if (res === 'nodes') next.status = cur.status;
    applyDefaults(res, next);
    if (res === 'services') {
      // the service registry keeps what it allocated when an update leaves it out
      for (const k of ['clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy']) if (next.spec[k] === undefined && cur.spec[k] !== undefined) next.spec[k] = clone(cur.spec[k]);
      for (const p of next.spec.ports || []) {
        const was = (cur.spec.ports || []).find((q) => q.port === p.port && (q.protocol || 'TCP') === (p.protocol || 'TCP'));
        if (p.nodePort === undefined && was?.nodePort && ['NodePort', 'LoadBalancer'].includes(next.spec.type)) p.nodePort = was.nodePort;
      }
    }
    const errs = validate(res, next);
    if (errs.length) throw errors.invalid(res, next.metadata.name, errs);
    // a client may rewrite managedFields itself (kubectl's client-side to server-side apply migration)
    const mf = explicitManagedFields && Array.isArray(next.metadata.managedFields) ? next.metadata.managedFields
      : (cur.metadata.managedFields || []).filter((m) => !(m.manager === manager && m.operation === operation && !m.subresource));
    if (manager && fields && !explicitManagedFields) mf.push(managedEntry(manager, operation, next.apiVersion, fields));
    next.metadata.managedFields = mf;
    if (next.metadata.generation !== undefined && specOf(next) !== specOf(cur)) next.metadata.generation++;
    const old = clone(cur);
    const changed = stable({ ...next, metadata: { ...next.metadata, managedFields: undefined, resourceVersion: undefined } }) !== stable({ ...old, metadata: { ...old.metadata, managedFields: undefined, resourceVersion: undefined } });
    Object.keys(cur).forEach((k) => delete cur[k]);
    Object.assign(cur, next);
    if (!changed) return cur; // a no-op write keeps its resourceVersion
    put(res, cur, 'MODIFIED', old);
    if (res === 'deployments') later(0, () => { const d = get('deployments', cur.metadata.namespace, cur.metadata.name); if (d) syncDeployment(d); });
    if (res === 'replicasets') later(0, () => syncReplicaSet(cur));
    react(res, cur);
    return cur;
  }
  // apply body deep-merged over the object (maps merge; lists replace, except
  // lists keyed by name which merge by name)
  const applyMerge = (a, b) => strategicPatch(a, b);
  // Removes from v the fields of a FieldsV1 set (a manager's previous apply),
  // so that re-applying drops what the manager no longer sends.
  function removeOwned(v, f) {
    if (!v || typeof v !== 'object') return;
    for (const [k, sub] of Object.entries(f)) {
      if (k.startsWith('f:')) {
        const name = k.slice(2);
        if (!(name in v)) continue;
        if (Object.keys(sub).length === 0) delete v[name];
        else removeOwned(v[name], sub);
      } else if (k.startsWith('k:') && Array.isArray(v)) {
        const key = JSON.parse(k.slice(2));
        const i = v.findIndex((it) => it && Object.entries(key).every(([kk, vv]) => it[kk] === vv || (kk === 'protocol' && it[kk] === undefined && vv === 'TCP')));
        if (i < 0) continue;
        if ('.' in sub) v.splice(i, 1); else removeOwned(v[i], sub);
      }
    }
  }

  // ---- watch -------------------------------------------------------------
  const BOOKMARK_SHAPES = {
    Pod: { spec: { containers: null }, status: {} },
    Service: { spec: {}, status: { loadBalancer: {} } },
    Node: { spec: {}, status: { daemonEndpoints: { kubeletEndpoint: { Port: 0 } }, nodeInfo: { machineID: '', systemUUID: '', bootID: '', kernelVersion: '', osImage: '', containerRuntimeVersion: '', kubeletVersion: '', kubeProxyVersion: '', operatingSystem: '', architecture: '' } } },
    Job: { spec: { template: { metadata: { creationTimestamp: null }, spec: { containers: null } } }, status: {} },
    Deployment: { spec: { selector: null, template: { metadata: { creationTimestamp: null }, spec: { containers: null } }, strategy: {} }, status: {} },
    ReplicaSet: { spec: { selector: null, template: { metadata: { creationTimestamp: null }, spec: { containers: null } } }, status: { replicas: 0 } },
    Namespace: { spec: {}, status: {} },
    Event: { involvedObject: {}, reason: undefined, source: {}, firstTimestamp: null, lastTimestamp: null, eventTime: null, reportingComponent: '', reportingInstance: '' },
  };
  function startWatch(req, res, resource, ns, q, match) {
    const r = RESOURCES[resource];
    const table = wantsTable(req.headers.accept);
    res.writeHead(200, baseHeaders({ 'Content-Type': table ? TABLE_CONTENT_TYPE : 'application/json', 'Transfer-Encoding': 'chunked' }));
    res.flushHeaders?.();
    let first = true; // a Table watch carries the column definitions in its first event only
    const write = (type, object) => {
      if (res.writableEnded) return;
      if (table && (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED')) {
        const { kind, apiVersion: av, ...o } = object;
        object = toTable(resource, [o], { headers: first, includeObject: q.get('includeObject') || 'Metadata', kind, apiVersion: av });
        first = false;
      }
      res.write(goJson({ type, object }));
    };
    const inScope = (o) => !r.namespaced || !ns || o.metadata.namespace === ns;
    const w = {
      resource,
      offer(ev) {
        if (ev.resource !== resource || !inScope(ev.obj)) return;
        const now_ = match(ev.obj); const before = ev.old ? match(ev.old) : false;
        if (ev.type === 'ADDED') { if (now_) write('ADDED', ev.obj); } else if (ev.type === 'DELETED') { if (before || now_) write('DELETED', ev.obj); } else if (now_ && before) write('MODIFIED', ev.obj);
        else if (now_) write('ADDED', ev.obj);
        else if (before) write('DELETED', ev.obj);
        w.lastRV = ev.rv;
      },
      bookmark() {
        if (!q.get('allowWatchBookmarks') || !['true', '1'].includes(q.get('allowWatchBookmarks'))) return;
        const shape = clone(BOOKMARK_SHAPES[r.kind] || {});
        write('BOOKMARK', { kind: r.kind, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(rv), creationTimestamp: null }, ...shape });
      },
      end() { watchers.delete(w); clearTimeout(w.timer); clearInterval(w.bm); if (!res.writableEnded) res.end(); },
      expire() { write('ERROR', errors.expired(q.get('resourceVersion'), compactedRV)); w.end(); },
    };
    const fromRV = q.get('resourceVersion');
    if (fromRV && fromRV !== '0' && Number(fromRV) < compactedRV) {
      write('ERROR', errors.expired(fromRV, compactedRV));
      res.end();
      return;
    }
    if (!fromRV || fromRV === '0') {
      for (const o of list(resource, ns)) if (match(o)) write('ADDED', o);
    } else {
      for (const ev of history) if (ev.rv > Number(fromRV)) w.offer(ev);
    }
    watchers.add(w);
    const ts = Number(q.get('timeoutSeconds') || 0);
    if (ts > 0) w.timer = setTimeout(() => w.end(), ts * 1000);
    if (opts.bookmarkMs) w.bm = setInterval(() => w.bookmark(), opts.bookmarkMs);
    req.on('close', () => w.end());
    res.on('close', () => w.end());
  }

  // ---- logs ----------------------------------------------------------------
  function serveLog(req, res, pod, q) {
    const names = pod.spec.containers.map((c) => c.name);
    const initNames = (pod.spec.initContainers || []).map((c) => c.name);
    let cname = q.get('container');
    if (!cname) {
      if (names.length !== 1) throw errors.badRequest(`a container name must be specified for pod ${pod.metadata.name}, choose one of: [${names.join(' ')}]`);
      cname = names[0];
    }
    if (!names.includes(cname) && !initNames.includes(cname)) throw errors.badRequest(`container ${cname} is not valid for pod ${pod.metadata.name}`);
    if (!pod.spec.nodeName) throw errors.badRequest(`pod ${pod.metadata.name} does not have a host assigned`);
    if (hollow) {
      const params = ['container', 'follow', 'limitBytes', 'previous', 'sinceSeconds', 'tailLines', 'timestamps'].filter((k) => k !== 'container' && q.get(k) && q.get(k) !== 'false');
      const qs = params.sort().map((k) => `${k}=${['follow', 'previous', 'timestamps'].includes(k) ? 'true' : q.get(k)}`).join('&');
      const port = get('nodes', '', pod.spec.nodeName)?.status.daemonEndpoints.kubeletEndpoint.Port;
      throw errors.internal(`Get "https://${nodeIP(pod.spec.nodeName)}:${port}/containerLogs/${pod.metadata.namespace}/${pod.metadata.name}/${cname}${qs ? `?${qs}` : ''}": http: server gave HTTP response to HTTPS client`);
    }
    const s = rt(pod).containers[cname];
    const previous = ['true', '1'].includes(q.get('previous'));
    if (previous && !s.prev) throw errors.badRequest(`previous terminated container "${cname}" in pod "${pod.metadata.name}" not found`);
    if (!previous && s.state?.waiting && !s.prev && !s.logs.length) {
      const why = s.state.waiting.reason === 'ImagePullBackOff' || s.state.waiting.reason === 'ErrImagePull' ? 'trying and failing to pull image' : s.state.waiting.reason;
      throw errors.badRequest(`container "${cname}" in pod "${pod.metadata.name}" is waiting to start: ${why}`);
    }
    const stamps = ['true', '1'].includes(q.get('timestamps'));
    const fmt = (l) => (stamps ? `${l.ts} ${l.text}\n` : `${l.text}\n`);
    let lines = previous ? s.prev : s.logs;
    const since = Number(q.get('sinceSeconds') || 0);
    if (since) lines = lines.filter((l) => Date.parse(l.ts) >= Date.now() - since * 1000);
    const tail = q.get('tailLines');
    if (tail !== null && tail !== '') lines = lines.slice(Math.max(0, lines.length - Number(tail)));
    let text = lines.map(fmt).join('');
    const limit = Number(q.get('limitBytes') || 0);
    if (limit) text = text.slice(0, limit);
    const follow = ['true', '1'].includes(q.get('follow')) && !previous;
    res.writeHead(200, baseHeaders({ 'Content-Type': 'text/plain', ...(follow ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': Buffer.byteLength(text) }) }));
    res.write(text);
    if (!follow || s.state?.terminated || (pod.spec.restartPolicy === 'Never' && TERMINAL.has(pod.status.phase))) { res.end(); return; }
    const f = { write: (l) => res.write(fmt(l)), end: () => { s.followers.delete(f); if (!res.writableEnded) res.end(); } };
    s.followers.add(f);
    req.on('close', () => f.end());
  }

  // ---- authz reviews -------------------------------------------------------
  function rulesReview(who, ns) {
    if (who.groups.includes('system:masters')) {
      return { resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }, ...BASIC_RULES], nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }, ...NONRESOURCE], incomplete: false };
    }
    const rr = [...BASIC_RULES];
    for (const r of who.rules) {
      if (r.namespaces && !r.namespaces.includes(ns)) continue;
      const x = { verbs: r.verbs, apiGroups: r.apiGroups ?? [''], resources: r.resources };
      if (r.resourceNames) x.resourceNames = r.resourceNames;
      rr.push(x);
    }
    return { resourceRules: rr, nonResourceRules: NONRESOURCE, incomplete: false };
  }

  // ---- HTTP ----------------------------------------------------------------
  const baseHeaders = (h = {}) => ({ 'Audit-Id': randomUUID(), 'Cache-Control': 'no-cache, private', ...h, 'X-Kubernetes-Pf-Flowschema-Uid': flowUid, 'X-Kubernetes-Pf-Prioritylevel-Uid': prioUid });
  // Go's json.Encoder: HTML-safe escapes and a trailing newline
  const goJson = (obj) => `${JSON.stringify(obj).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
  function send(res, code, obj, extra = {}, { indent = false } = {}) {
    const body = indent ? JSON.stringify(obj, null, 2) : goJson(obj);
    const h = baseHeaders({ 'Content-Type': 'application/json', ...extra, 'Content-Length': Buffer.byteLength(body) });
    if (code === 401 || code === 403) h['X-Content-Type-Options'] = 'nosniff';
    if (code === 401 || code >= 500) { delete h['X-Kubernetes-Pf-Flowschema-Uid']; delete h['X-Kubernetes-Pf-Prioritylevel-Uid']; }
    res.writeHead(code, h);
    res.end(body);
  }
  const requests = [];

  // path -> { group, version, resource, namespace, name, subresource } or null
  function parsePath(path) {
    const p = path.split('/').filter(Boolean);
    let group; let version; let rest;
    if (p[0] === 'api' && p[1] === 'v1') { group = ''; version = 'v1'; rest = p.slice(2); } else if (p[0] === 'apis' && p.length >= 3) { group = p[1]; version = p[2]; rest = p.slice(3); } else return null;
    if (!rest.length) return null;
    let ns = '';
    if (rest[0] === 'namespaces' && rest.length >= 3) { ns = rest[1]; rest = rest.slice(2); }
    return { group, version, resource: rest[0], name: rest[1] || '', subresource: rest[2] || '', namespace: ns, extra: rest.length > 3 };
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'https://x');
    const q = url.searchParams;
    const path = url.pathname.replace(/\/+$/, '') || '/';
    requests.push({ method: req.method, path: req.url });
    const fail = failures.find((f) => f.count > 0 && (!f.method || f.method === req.method) && (!f.path || new RegExp(f.path).test(req.url)));
    if (fail) { fail.count--; throw injected(fail.status, fail.retryAfter); }
    const who = identify(req);
    const pr = parsePath(path);
    const ctype = (req.headers['content-type'] || '').split(';')[0].trim();
    const isReview = pr && pr.group === 'authorization.k8s.io' && /^selfsubject(access|rules)reviews$/.test(pr.resource);
    if (ctype === 'application/vnd.kubernetes.protobuf' && req.method !== 'GET' && !isReview) throw errors.unsupportedMedia(ctype);
    const isWatch = ['true', '1'].includes(q.get('watch'));
    // attributes for authorization, as the apiserver's RequestInfo
    let a;
    if (pr) {
      const verbs = { GET: pr.name ? 'get' : (isWatch ? 'watch' : 'list'), POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: pr.name ? 'delete' : 'deletecollection' };
      a = { verb: verbs[req.method] || req.method.toLowerCase(), group: pr.group, resource: pr.resource, subresource: pr.subresource, name: pr.name, namespace: pr.namespace || (pr.resource === 'namespaces' ? pr.name : ''), path };
      if (isWatch && pr.name) a.verb = 'watch';
    } else a = { verb: { GET: 'get', POST: 'post', PUT: 'put', DELETE: 'delete', PATCH: 'patch' }[req.method] || 'get', path };
    if (!allowed(who, a)) throw errors.forbidden(a, who.user);

    if (!pr) {
      if (req.method !== 'GET') throw errors.notFoundPath();
      if (path === '/version') return send(res, 200, VERSION, {}, { indent: true }); // the real one is indented
      if (path === '/api') return send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }] });
      if (path === '/apis') return send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: GROUPS.map(groupDoc) });
      if (path === '/api/v1') return send(res, 200, resourceList('', 'v1'));
      const g = path.match(/^\/apis\/([^/]+)(?:\/(v1))?$/);
      if (g && GROUPS.includes(g[1])) return send(res, 200, g[2] ? resourceList(g[1], 'v1') : { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(g[1]) });
      if (path === '/openapi/v3') return send(res, 200, { paths: Object.fromEntries(['api/v1', ...GROUPS.map((g) => `apis/${g}/v1`)].map((gv) => [gv, { serverRelativeURL: `/openapi/v3/${gv}?hash=${VERSION.gitCommit.slice(0, 16)}` }])) });
      const ov = path.match(/^\/openapi\/v3\/(api\/v1|apis\/([^/]+)\/v1)$/);
      if (ov && (!ov[2] || GROUPS.includes(ov[2]))) return send(res, 200, openapiDoc(ov[2] || ''));
      if (['/healthz', '/livez', '/readyz'].includes(path)) { res.writeHead(200, baseHeaders({ 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' })); return res.end('ok'); }
      throw errors.notFoundPath();
    }
    if (pr.group === 'authorization.k8s.io' && pr.version === 'v1' && req.method === 'POST' && ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'].includes(pr.resource) && !pr.name) {
      const body = ctype === 'application/vnd.kubernetes.protobuf' ? decodeReviewProtobuf(await readRaw(req)) : parseJson(await readBody(req));
      if (pr.resource === 'selfsubjectrulesreviews') {
        const ns = body.spec?.namespace;
        if (!ns) throw errors.badRequest('no namespace on request');
        return send(res, 201, { kind: 'SelfSubjectRulesReview', apiVersion: 'authorization.k8s.io/v1', metadata: { creationTimestamp: null }, spec: {}, status: rulesReview(who, ns) });
      }
      const ra = body.spec?.resourceAttributes; const nra = body.spec?.nonResourceAttributes;
      let ok = false;
      if (ra) ok = allowed(who, { verb: ra.verb, group: ra.group ?? '', resource: ra.resource, subresource: ra.subresource ?? '', name: ra.name ?? '', namespace: ra.namespace ?? '' });
      else if (nra) ok = allowed(who, { verb: nra.verb, path: nra.path });
      const status = { allowed: ok };
      if (ok && !who.groups.includes('system:masters')) status.reason = `RBAC: allowed by ClusterRoleBinding "fake:${who.user}" of ClusterRole "fake:${who.user}" to User "${who.user}"`;
      return send(res, 201, { kind: 'SelfSubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', metadata: { creationTimestamp: null }, spec: body.spec || {}, status });
    }
    const r = RESOURCES[pr.resource];
    if (!r || r.group !== pr.group || r.version !== pr.version || pr.extra || (pr.namespace && !r.namespaced)) throw errors.notFoundPath();
    if (pr.subresource && !(r.sub || []).includes(pr.subresource)) throw errors.notFoundPath();
    const ns = pr.namespace;
    if (r.namespaced && ns && req.method !== 'POST' && !get('namespaces', '', ns) && pr.name) throw errors.notFound(pr.resource, pr.name);
    const manager = q.get('fieldManager') || (req.headers['user-agent'] || 'unknown').split('/')[0];
    const dryRun = q.get('dryRun') === 'All';

    if (req.method === 'GET') {
      if (!pr.name) {
        const match = (() => { const l = parseLabelSelector(q.get('labelSelector')); const f = parseFieldSelector(pr.resource, q.get('fieldSelector')); return (o) => l(o.metadata.labels) && f(o); })();
        if (isWatch) return startWatch(req, res, pr.resource, ns, q, match);
        let all = list(pr.resource, ns).filter(match);
        // chunked lists: limit / continue (a token as the real one: {v, rv, start})
        const meta = { resourceVersion: String(rv) };
        const cont = q.get('continue');
        if (cont) {
          let tok;
          try { tok = JSON.parse(Buffer.from(cont, 'base64').toString('utf8')); } catch { throw errors.badRequest('continue key is not valid: illegal base64 data'); }
          if (Number(tok.rv) < compactedRV) {
            throw new KubeError(410, statusObj({ message: 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.', reason: 'Expired', code: 410 }));
          }
          const start = String(tok.start).replace(/\u0000$/, '');
          all = all.filter((o) => keyOf(o.metadata.namespace, o.metadata.name) > start);
          meta.resourceVersion = String(tok.rv);
        }
        const limit = Number(q.get('limit') || 0);
        if (limit > 0 && all.length > limit) {
          const last = all[limit - 1];
          meta.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: Number(meta.resourceVersion), start: `${keyOf(last.metadata.namespace, last.metadata.name)}\u0000` })).toString('base64');
          meta.remainingItemCount = all.length - limit;
          all = all.slice(0, limit);
        }
        const items = all.map((o) => { const { kind, apiVersion, ...rest } = o; return rest; });
        if (wantsTable(req.headers.accept)) return send(res, 200, toTable(pr.resource, items, { rv, includeObject: q.get('includeObject') || 'Metadata', kind: r.kind, apiVersion: apiVersionOf(r) }), { 'Content-Type': TABLE_CONTENT_TYPE });
        return send(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: meta, items });
      }
      if (isWatch) {
        const f = (o) => o.metadata.name === pr.name;
        return startWatch(req, res, pr.resource, ns, q, f);
      }
      const o = get(pr.resource, ns, pr.name);
      if (!o) throw errors.notFound(pr.resource, pr.name);
      if (pr.subresource === 'log') return serveLog(req, res, o, q);
      if (wantsTable(req.headers.accept)) { const { kind, apiVersion: av, ...x } = o; return send(res, 200, toTable(pr.resource, [x], { rv: o.metadata.resourceVersion, includeObject: q.get('includeObject') || 'Metadata', kind, apiVersion: av }), { 'Content-Type': TABLE_CONTENT_TYPE }); }
      return send(res, 200, o);
    }
    if (req.method === 'POST') {
      if (pr.name) throw errors.methodNotAllowed();
      const body = parseJson(await readBody(req));
      const o = createObject(pr.resource, ns, body, { manager, operation: 'Update', dryRun });
      return send(res, 201, o);
    }
    if (req.method === 'DELETE') {
      const text = await readBody(req);
      const opts2 = text ? parseJson(text) : {};
      const propagation = q.get('propagationPolicy') || opts2.propagationPolicy || (opts2.orphanDependents === true ? 'Orphan' : undefined);
      const graceRaw = q.get('gracePeriodSeconds') ?? opts2.gracePeriodSeconds;
      const grace = graceRaw === undefined || graceRaw === null ? undefined : Number(graceRaw);
      if (!pr.name) {
        const l = parseLabelSelector(q.get('labelSelector')); const f = parseFieldSelector(pr.resource, q.get('fieldSelector'));
        const items = list(pr.resource, ns).filter((o) => l(o.metadata.labels) && f(o));
        const out = items.map((o) => deleteObject(pr.resource, o, { propagation, grace }));
        return send(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(rv) }, items: out.map(({ kind, apiVersion, ...x }) => x) });
      }
      const o = get(pr.resource, ns, pr.name);
      if (!o) throw errors.notFound(pr.resource, pr.name);
      if (opts2.preconditions?.uid && opts2.preconditions.uid !== o.metadata.uid) throw errors.conflict(pr.resource, pr.name);
      const snap = deleteObject(pr.resource, o, { propagation, grace });
      if (pr.resource === 'pods' || pr.resource === 'services') return send(res, 200, snap);
      const d = { name: o.metadata.name };
      if (r.group) d.group = r.group;
      d.kind = pr.resource; d.uid = o.metadata.uid;
      return send(res, 200, statusObj({ success: true, details: d }));
    }
    if (req.method === 'PUT') {
      const body = parseJson(await readBody(req));
      const cur = get(pr.resource, ns, pr.name);
      if (!cur) throw errors.notFound(pr.resource, pr.name);
      if (body.metadata?.resourceVersion && body.metadata.resourceVersion !== cur.metadata.resourceVersion) throw errors.conflict(pr.resource, pr.name);
      const next = clone(body);
      next.metadata = next.metadata || {};
      applyDefaults(pr.resource, next);
      return send(res, 200, writeExisting(pr.resource, cur, next, { manager, operation: 'Update', fields: fieldsV1(pr.resource, next) }));
    }
    if (req.method === 'PATCH') {
      const ct = (req.headers['content-type'] || '').split(';')[0].trim();
      const body = parseJson(await readBody(req));
      const cur = get(pr.resource, ns, pr.name);
      if (ct === 'application/apply-patch+yaml') {
        if (!q.get('fieldManager')) throw new KubeError(422, statusObj({ message: 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch', reason: 'Invalid', details: { group: 'meta.k8s.io', kind: 'PatchOptions', causes: [{ reason: 'FieldValueRequired', message: 'Required value: is required for apply patch', field: 'fieldManager' }] }, code: 422 }));
        if (body.metadata?.name && body.metadata.name !== pr.name) throw errors.badRequest('the name of the object (' + body.metadata.name + ') does not match the name on the URL (' + pr.name + ')');
        if (!cur) {
          // an apply that creates needs the create verb too, as with the real patch handler
          if (!allowed(who, { ...a, verb: 'create' })) throw errors.forbidden({ ...a, verb: 'create' }, who.user);
          const b = clone(body); b.metadata = { ...(b.metadata || {}), name: pr.name };
          return send(res, 201, createObject(pr.resource, ns, b, { manager, operation: 'Apply', dryRun }));
        }
        const base = clone(cur);
        const prev = (cur.metadata.managedFields || []).find((m) => m.manager === manager && m.operation === 'Apply');
        if (prev) removeOwned(base, prev.fieldsV1);
        const next = applyMerge(base, clone(body));
        const out = writeExisting(pr.resource, cur, next, { manager, operation: 'Apply', fields: fieldsV1(pr.resource, body, { apply: true }) });
        return send(res, 200, out);
      }
      if (!cur) throw errors.notFound(pr.resource, pr.name);
      let next;
      if (ct === 'application/merge-patch+json') next = mergePatch(clone(cur), body);
      else if (ct === 'application/strategic-merge-patch+json') next = strategicPatch(clone(cur), body);
      else if (ct === 'application/json-patch+json') next = jsonPatch(cur, body);
      else throw errors.unsupportedMedia(ct);
      if (pr.subresource === 'status') { const s = next.status; next = clone(cur); next.status = s; }
      const explicitManagedFields = ct === 'application/json-patch+json' ? body.some((op) => String(op.path).startsWith('/metadata/managedFields')) : !!body.metadata?.managedFields;
      return send(res, 200, writeExisting(pr.resource, cur, next, { manager, operation: 'Update', fields: ct === 'application/json-patch+json' ? null : fieldsV1(pr.resource, body), explicitManagedFields }));
    }
    throw errors.methodNotAllowed();
  }

  const server = https.createServer({
    key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true, rejectUnauthorized: false,
  }, (req, res) => {
    handle(req, res).catch((e) => {
      if (e instanceof KubeError) {
        if (!res.headersSent) return send(res, e.code, e.status, e.headers);
        return res.end();
      }
      console.error('kube fake: internal error', e);
      if (!res.headersSent) send(res, 500, statusObj({ message: `Internal error occurred: ${e.message}`, reason: 'InternalError', details: { causes: [{ message: e.message }] }, code: 500 }));
      else res.end();
    });
  });
  const sockets = new Set();
  server.on('secureConnection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const port = server.address().port;
  const url = `https://127.0.0.1:${port}`;

  // ---- control -------------------------------------------------------------
  const mustPod = (ns, name) => { const p = get('pods', ns, name); if (!p) throw new Error(`no pod ${ns}/${name}`); return p; };
  const firstContainer = (p, c) => c ?? p.spec.containers[0].name;
  const control = {
    // Runs the scheduler over pending pods now.
    schedule() { scheduleAll(); },
    // kubelet 'manual' mode: move a ContainerCreating pod to Running.
    start(ns, name, container) { const p = mustPod(ns, name); startContainers(ns, name, p.metadata.uid, container); },
    // The readiness (or startup) probe passes (true) or fails (false).
    setReady(ns, name, ready = true, container) {
      const p = mustPod(ns, name); const c = firstContainer(p, container);
      writeStatus(p, (_, r) => { if (ready) r.manualReady.add(c); else r.manualReady.delete(c); if (r.containers[c].state?.running) r.containers[c].ready = ready; r.notReady = !ready; });
    },
    // The container exits: { container, exitCode=1, reason: 'Error'|'OOMKilled'|..., message }.
    crash(ns, name, { container, exitCode, reason, message } = {}) {
      const p = mustPod(ns, name);
      return terminate(p, firstContainer(p, container), { exitCode: exitCode ?? (reason === 'OOMKilled' ? 137 : 1), reason, message });
    },
    // Leave CrashLoopBackOff: the container runs again (new containerID).
    restart(ns, name, container) { const p = mustPod(ns, name); startContainers(ns, name, p.metadata.uid, firstContainer(p, container)); },
    imagePullBackOff(ns, name, container) {
      const p = mustPod(ns, name); const c = firstContainer(p, container);
      const img = p.spec.containers.find((x) => x.name === c).image;
      writeStatus(p, (_, r) => { r.containers[c].state = { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${img}"` } }; r.containers[c].ready = false; });
      kubeletEvent(p, c, 'Normal', 'BackOff', `Back-off pulling image "${img}"`);
      kubeletEvent(p, c, 'Warning', 'Failed', 'Error: ImagePullBackOff');
    },
    setNodeReady(name, ready = true) {
      const n = get('nodes', '', name); if (!n) throw new Error(`no node ${name}`);
      update('nodes', n, (x) => setNodeCondition(x, ready, now()));
      if (!ready) for (const p of list('pods')) if (p.spec.nodeName === name && !TERMINAL.has(p.status.phase)) {
        update('pods', p, (x) => { for (const c of x.status.conditions || []) if (c.type === 'Ready' && c.status === 'True') Object.assign(c, { status: 'False', lastTransitionTime: now() }); });
      }
    },
    setNodeSchedulable(name, schedulable = true) {
      const n = get('nodes', '', name);
      update('nodes', n, (x) => { if (schedulable) delete x.spec.unschedulable; else x.spec.unschedulable = true; });
    },
    addNode(spec) { const n = put('nodes', makeNode(spec, now()), 'ADDED'); react('nodes', n); return n; },
    removeNode(name) { const n = get('nodes', '', name); if (n) remove('nodes', n); },
    // Appends lines to a container's log (followers see them at once).
    log(ns, name, container, ...lines) {
      const p = mustPod(ns, name); const s = rt(p).containers[firstContainer(p, container)];
      for (const text of lines.flat()) {
        const l = { ts: new Date().toISOString().replace(/Z$/, '000000Z').replace(/(\.\d{9})\d*Z$/, '$1Z'), text: String(text) };
        s.logs.push(l);
        for (const f of s.followers) f.write(l);
      }
    },
    // A pod's containers exit: 'succeeded' (exit 0) or 'failed' ({ exitCode, reason }).
    finishPod(ns, name, outcome = 'succeeded', { exitCode, reason } = {}) {
      const p = mustPod(ns, name);
      for (const c of p.spec.containers) {
        const s = rt(p).containers[c.name];
        if (!s.state?.running) startContainers(ns, name, p.metadata.uid, c.name);
        terminate(p, c.name, outcome === 'succeeded' ? { exitCode: 0, reason: 'Completed' } : { exitCode: exitCode ?? 1, reason: reason ?? 'Error' });
      }
    },
    // Finishes the running pod of a Job; the Job gets Complete or Failed.
    finishJob(ns, name, outcome = 'succeeded', o = {}) {
      const j = get('jobs', ns, name); if (!j) throw new Error(`no job ${ns}/${name}`);
      const pods = ownedBy('pods', j).filter((p) => !TERMINAL.has(p.status.phase));
      if (!pods.length) throw new Error(`job ${ns}/${name} has no running pod`);
      for (const p of pods) control.finishPod(ns, p.metadata.name, outcome, o);
    },
    // Drops watch history: watches from older resourceVersions get 410 Expired;
    // dropWatches also ends open watch streams (clients re-watch and get 410).
    compact({ dropWatches = false } = {}) {
      compactedRV = rv;
      history.length = 0;
      if (dropWatches) for (const w of [...watchers]) w.end();
    },
    // The next `count` requests (matching method / path regex) fail with `status`.
    failRequests({ status = 503, count = 1, method, path, retryAfter } = {}) { failures.push({ status, count, method, path, retryAfter }); },
    bookmark() { for (const w of watchers) w.bookmark(); },
    // Waits until the simulation has nothing scheduled (timers fired).
    async settle(ms = 5000) {
      const t = Date.now();
      while (pendingTimers.size && Date.now() - t < ms) await sleep(5);
      await sleep(5);
    },
    requests,
  };

  // optional plain-HTTP control endpoint: POST /control/<fn> with a JSON array of arguments
  let ctlServer = null; let controlUrl = null;
  if (opts.controlPort !== undefined && opts.controlPort !== false) {
    ctlServer = http.createServer(async (req, res) => {
      try {
        const u = new URL(req.url, 'http://x');
        let out;
        const m = u.pathname.match(/^\/control\/(\w+)$/);
        const s = u.pathname.match(/^\/state\/(\w+)$/);
        if (req.method === 'POST' && m && typeof control[m[1]] === 'function' && m[1] !== 'requests') {
          const args = parseJson(await readBody(req));
          out = await control[m[1]](...(Array.isArray(args) ? args : [args]));
        } else if (req.method === 'GET' && s && RESOURCES[s[1]]) out = list(s[1], u.searchParams.get('namespace') || '');
        else { res.writeHead(404); return res.end(); }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(out ?? { ok: true }));
      } catch (e) {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: e.message }));
      }
    });
    await new Promise((r) => ctlServer.listen(opts.controlPort === true ? 0 : opts.controlPort, '127.0.0.1', r));
    controlUrl = `http://127.0.0.1:${ctlServer.address().port}`;
  }

  const b64 = (s) => Buffer.from(s).toString('base64');
  return {
    url, port, caFile: pki.caFile, caData: b64(pki.ca), ca: pki.ca, controlUrl,
    token: ids.admin.token,
    clientCertData: b64(ids.admin.cert.cert), clientKeyData: b64(ids.admin.cert.key),
    identities: Object.fromEntries(Object.entries(ids).map(([k, v]) => [k, { user: v.user, groups: v.groups, token: v.token, certFile: v.cert.certFile, keyFile: v.cert.keyFile, clientCertData: b64(v.cert.cert), clientKeyData: b64(v.cert.key) }])),
    // kubeconfig YAML for identity; auth 'token' or 'cert'
    // An in-cluster service-account folder (token, ca.crt, namespace) for identity,
    // and the environment a pod would have: { dir, env: { KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT } }.
    serviceAccount(identity = 'admin', ns = namespace) {
      const i = ids[identity];
      if (!i) throw new Error(`no identity ${identity}`);
      const dir = mkdtempSync(join(pki.dir, 'sa-'));
      writeFileSync(join(dir, 'token'), i.token);
      writeFileSync(join(dir, 'ca.crt'), pki.ca);
      writeFileSync(join(dir, 'namespace'), ns);
      return { dir, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) } };
    },
    kubeconfig(identity = 'admin', { auth = 'token', ns = namespace } = {}) {
      const i = ids[identity];
      if (!i) throw new Error(`no identity ${identity}`);
      const user = auth === 'cert'
        ? `    client-certificate-data: ${b64(i.cert.cert)}\n    client-key-data: ${b64(i.cert.key)}\n`
        : `    token: ${i.token}\n`;
      return `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: ${url}\n    certificate-authority-data: ${b64(pki.ca)}\n`
        + `users:\n- name: ${identity}\n  user:\n${user}contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: ${identity}\n    namespace: ${ns}\ncurrent-context: fake\n`;
    },
    state: {
      get: (res, ns, name) => clone(get(res, ns, name)),
      list: (res, ns) => clone(list(res, ns)),
      get resourceVersion() { return rv; },
    },
    control,
    async stop() {
      stopped = true;
      for (const t of pendingTimers) clearTimeout(t);
      for (const w of [...watchers]) w.end();
      for (const r of runtime.values()) for (const c of Object.values(r.containers)) for (const f of c.followers) f.end();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
      if (ctlServer) await new Promise((r) => ctlServer.close(r));
      pki.remove();
    },
  };
}
