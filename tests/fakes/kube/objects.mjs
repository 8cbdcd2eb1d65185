// What kube-apiserver v1.26 does to an object on its way in: the resource
// table (kinds, groups, scopes), defaulting, the admission plugins that touch
// pods (ServiceAccount, DefaultTolerationSeconds, Priority), validation of
// names and containers with the real messages, managedFields (FieldsV1) and
// Go's field order when serialising. Pure functions; no I/O.
import { randomBytes, randomUUID, createHash } from 'node:crypto';

export const RESOURCES = {
  namespaces: { group: '', version: 'v1', kind: 'Namespace', namespaced: false, short: ['ns'] },
  nodes: { group: '', version: 'v1', kind: 'Node', namespaced: false, short: ['no'] },
  pods: { group: '', version: 'v1', kind: 'Pod', namespaced: true, short: ['po'], sub: ['log', 'status'] },
  services: { group: '', version: 'v1', kind: 'Service', namespaced: true, short: ['svc'] },
  secrets: { group: '', version: 'v1', kind: 'Secret', namespaced: true, short: [] },
  configmaps: { group: '', version: 'v1', kind: 'ConfigMap', namespaced: true, short: ['cm'] },
  events: { group: '', version: 'v1', kind: 'Event', namespaced: true, short: ['ev'] },
  deployments: { group: 'apps', version: 'v1', kind: 'Deployment', namespaced: true, short: ['deploy'] },
  replicasets: { group: 'apps', version: 'v1', kind: 'ReplicaSet', namespaced: true, short: ['rs'] },
  jobs: { group: 'batch', version: 'v1', kind: 'Job', namespaced: true, short: [] },
};
export const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
export const apiVersionOf = (r) => (r.group ? `${r.group}/${r.version}` : r.version);
// "pods", "deployments.apps": how Status messages name a resource
export const qualified = (res, r) => (r.group ? `${res}.${r.group}` : res);

export const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
export const nowMicro = () => new Date().toISOString().replace(/Z$/, '000Z').replace(/(\.\d{6})\d*Z$/, '$1Z');
export const uid = () => randomUUID();
const ALNUM = 'bcdfghjklmnpqrstvwxz2456789'; // apimachinery's rand.String alphabet
export function randSuffix(n = 5) {
  const b = randomBytes(n);
  return Array.from(b, (x) => ALNUM[x % ALNUM.length]).join('');
}
// pod-template-hash: a stable hash of the template, in the same alphabet
export function templateHash(tpl) {
  const h = createHash('sha256').update(JSON.stringify(tpl)).digest();
  return Array.from(h.subarray(0, 10), (x) => ALNUM[x % ALNUM.length]).join('');
}
export const clone = (o) => (o === undefined ? undefined : JSON.parse(JSON.stringify(o)));

// ---- Go field order ----------------------------------------------------
const ORDER = {
  top: ['kind', 'apiVersion', 'metadata', 'spec', 'status'],
  meta: ['name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
    'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields'],
  podSpec: ['volumes', 'initContainers', 'containers', 'ephemeralContainers', 'restartPolicy', 'terminationGracePeriodSeconds',
    'activeDeadlineSeconds', 'dnsPolicy', 'nodeSelector', 'serviceAccountName', 'serviceAccount', 'automountServiceAccountToken',
    'nodeName', 'hostNetwork', 'hostPID', 'hostIPC', 'shareProcessNamespace', 'securityContext', 'imagePullSecrets', 'hostname',
    'subdomain', 'affinity', 'schedulerName', 'tolerations', 'hostAliases', 'priorityClassName', 'priority', 'dnsConfig',
    'readinessGates', 'runtimeClassName', 'enableServiceLinks', 'preemptionPolicy', 'overhead', 'topologySpreadConstraints',
    'setHostnameAsFQDN', 'os', 'hostUsers', 'schedulingGates', 'resourceClaims'],
  container: ['name', 'image', 'command', 'args', 'workingDir', 'ports', 'envFrom', 'env', 'resources', 'volumeMounts',
    'volumeDevices', 'livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle', 'terminationMessagePath',
    'terminationMessagePolicy', 'imagePullPolicy', 'securityContext', 'stdin', 'stdinOnce', 'tty'],
  port: ['name', 'hostPort', 'containerPort', 'protocol', 'hostIP'],
  podStatus: ['phase', 'conditions', 'message', 'reason', 'nominatedNodeName', 'hostIP', 'podIP', 'podIPs', 'startTime',
    'initContainerStatuses', 'containerStatuses', 'qosClass', 'ephemeralContainerStatuses'],
  svcSpec: ['ports', 'selector', 'clusterIP', 'clusterIPs', 'type', 'externalIPs', 'sessionAffinity', 'loadBalancerIP',
    'loadBalancerSourceRanges', 'externalName', 'externalTrafficPolicy', 'healthCheckNodePort', 'publishNotReadyAddresses',
    'sessionAffinityConfig', 'ipFamilies', 'ipFamilyPolicy', 'allocateLoadBalancerNodePorts', 'loadBalancerClass', 'internalTrafficPolicy'],
  svcPort: ['name', 'protocol', 'appProtocol', 'port', 'targetPort', 'nodePort'],
  jobSpec: ['parallelism', 'completions', 'activeDeadlineSeconds', 'podFailurePolicy', 'backoffLimit', 'selector', 'manualSelector',
    'template', 'ttlSecondsAfterFinished', 'completionMode', 'suspend'],
  jobStatus: ['conditions', 'startTime', 'completionTime', 'active', 'succeeded', 'failed', 'completedIndexes', 'uncountedTerminatedPods', 'ready'],
  deploySpec: ['replicas', 'selector', 'template', 'strategy', 'minReadySeconds', 'revisionHistoryLimit', 'paused', 'progressDeadlineSeconds'],
  deployStatus: ['observedGeneration', 'replicas', 'updatedReplicas', 'readyReplicas', 'availableReplicas', 'unavailableReplicas', 'conditions', 'collisionCount'],
  rsSpec: ['replicas', 'minReadySeconds', 'selector', 'template'],
  rsStatus: ['replicas', 'fullyLabeledReplicas', 'readyReplicas', 'availableReplicas', 'observedGeneration', 'conditions'],
  template: ['metadata', 'spec'],
  secret: ['kind', 'apiVersion', 'metadata', 'immutable', 'data', 'stringData', 'type'],
  configmap: ['kind', 'apiVersion', 'metadata', 'immutable', 'data', 'binaryData'],
  event: ['kind', 'apiVersion', 'metadata', 'involvedObject', 'reason', 'message', 'source', 'firstTimestamp', 'lastTimestamp', 'count',
    'type', 'eventTime', 'series', 'action', 'related', 'reportingComponent', 'reportingInstance'],
};
export function order(o, keys) {
  if (!o || typeof o !== 'object' || Array.isArray(o)) return o;
  const out = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  for (const k of Object.keys(o)) if (out[k] === undefined && o[k] !== undefined) out[k] = o[k];
  return out;
}
function orderPodSpec(s) {
  if (!s) return s;
  for (const f of ['containers', 'initContainers']) {
    if (Array.isArray(s[f])) s[f] = s[f].map((c) => {
      const c2 = order(c, ORDER.container);
      if (Array.isArray(c2.ports)) c2.ports = c2.ports.map((p) => order(p, ORDER.port));
      return c2;
    });
  }
  return order(s, ORDER.podSpec);
}
// Puts an object's fields in the order the real server writes them.
const sortMap = (m) => (m && typeof m === 'object' && !Array.isArray(m) ? Object.fromEntries(Object.keys(m).sort().map((k) => [k, m[k]])) : m);
// Go writes map[string]... fields with sorted keys
function sortMaps(o, inMap) {
  if (!o || typeof o !== 'object') return o;
  if (Array.isArray(o)) { o.forEach((x) => sortMaps(x)); return o; }
  for (const k of Object.keys(o)) {
    if (['labels', 'annotations', 'nodeSelector', 'limits', 'requests', 'capacity', 'allocatable', 'data', 'binaryData', 'matchLabels'].includes(k)
      || (k === 'selector' && inMap === 'Service')) o[k] = sortMap(o[k]);
    else if (k !== 'managedFields') sortMaps(o[k]);
  }
  return o;
}
export function canonical(kind, o) {
  sortMaps(o.spec, kind); if (o.metadata) sortMaps(o.metadata); if (o.status) sortMaps(o.status); if (o.data) o.data = sortMap(o.data);
  const top = kind === 'Secret' ? ORDER.secret : kind === 'ConfigMap' ? ORDER.configmap : kind === 'Event' ? ORDER.event : ORDER.top;
  o = order(o, top);
  if (o.metadata) o.metadata = order(o.metadata, ORDER.meta);
  const tpl = (t) => (t ? order({ ...t, metadata: t.metadata && order(t.metadata, ORDER.meta), spec: orderPodSpec(t.spec) }, ORDER.template) : t);
  if (kind === 'Pod') {
    o.spec = orderPodSpec(o.spec);
    if (o.status) o.status = order(o.status, ORDER.podStatus);
  } else if (kind === 'Service') {
    if (o.spec) { o.spec = order(o.spec, ORDER.svcSpec); if (o.spec.ports) o.spec.ports = o.spec.ports.map((p) => order(p, ORDER.svcPort)); }
  } else if (kind === 'Job') {
    if (o.spec) { o.spec = order(o.spec, ORDER.jobSpec); o.spec.template = tpl(o.spec.template); }
    if (o.status) o.status = order(o.status, ORDER.jobStatus);
  } else if (kind === 'Deployment') {
    if (o.spec) { o.spec = order(o.spec, ORDER.deploySpec); o.spec.template = tpl(o.spec.template); }
    if (o.status) o.status = order(o.status, ORDER.deployStatus);
  } else if (kind === 'ReplicaSet') {
    if (o.spec) { o.spec = order(o.spec, ORDER.rsSpec); o.spec.template = tpl(o.spec.template); }
    if (o.status) o.status = order(o.status, ORDER.rsStatus);
  }
  return o;
}

// ---- validation ----------------------------------------------------------
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const MSG_SUBDOMAIN = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const MSG_LABEL = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const MSG_1035 = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

// A field error as apimachinery's field.Error: {type, field, value, detail}
const invalid = (field, value, detail) => ({ reason: 'FieldValueInvalid', field, text: `Invalid value: ${JSON.stringify(value)}: ${detail}` });
const required = (field, detail) => ({ reason: 'FieldValueRequired', field, text: detail ? `Required value: ${detail}` : 'Required value' });
const unsupported = (field, value, allowed) => ({ reason: 'FieldValueNotSupported', field, text: `Unsupported value: ${JSON.stringify(value)}: supported values: ${allowed.map((a) => JSON.stringify(a)).join(', ')}` });

function checkName(errs, field, name, kind) {
  if (kind === 'label' || kind === '1035') {
    const [re, msg] = kind === 'label' ? [LABEL, MSG_LABEL] : [DNS1035, MSG_1035];
    if (name.length > 63) errs.push(invalid(field, name, 'must be no more than 63 characters'));
    if (!re.test(name)) errs.push(invalid(field, name, msg));
  } else {
    if (name.length > 253) errs.push(invalid(field, name, 'must be no more than 253 characters'));
    if (!SUBDOMAIN.test(name)) errs.push(invalid(field, name, MSG_SUBDOMAIN));
  }
}

function checkPodSpec(errs, spec, at, { job } = {}) {
  if (!spec || !Array.isArray(spec.containers) || spec.containers.length === 0) {
    errs.push(required(`${at}.containers`));
    return;
  }
  const seen = new Set();
  spec.containers.forEach((c, i) => {
    const f = `${at}.containers[${i}]`;
    if (!c.name) errs.push(required(`${f}.name`));
    else {
      checkName(errs, `${f}.name`, c.name, 'label');
      if (seen.has(c.name)) errs.push({ reason: 'FieldValueDuplicate', field: `${f}.name`, text: `Duplicate value: ${JSON.stringify(c.name)}` });
      seen.add(c.name);
    }
    if (!c.image) errs.push(required(`${f}.image`));
  });
  if (job && !['Never', 'OnFailure'].includes(spec.restartPolicy)) {
    errs.push(unsupported(`${at}.restartPolicy`, spec.restartPolicy ?? 'Always', ['OnFailure', 'Never']));
  }
}

// Validates an object about to be created. Returns [] or field errors.
export function validate(resource, obj) {
  const errs = [];
  const m = obj.metadata || {};
  if (!m.name && !m.generateName) errs.push(required('metadata.name', 'name or generateName is required'));
  else if (m.name) checkName(errs, 'metadata.name', m.name, resource === 'services' || resource === 'namespaces' ? (resource === 'services' ? '1035' : 'label') : 'subdomain');
  if (resource === 'pods') checkPodSpec(errs, obj.spec, 'spec');
  if (resource === 'jobs') checkPodSpec(errs, obj.spec?.template?.spec, 'spec.template.spec', { job: true });
  if (resource === 'deployments') {
    checkPodSpec(errs, obj.spec?.template?.spec, 'spec.template.spec');
    if (!obj.spec?.selector) errs.push(required('spec.selector'));
  }
  if (resource === 'services') {
    const ports = obj.spec?.ports;
    if (obj.spec?.type !== 'ExternalName' && (!Array.isArray(ports) || ports.length === 0)) errs.push(required('spec.ports'));
    (ports || []).forEach((p, i) => {
      if (!(p.port >= 1 && p.port <= 65535)) errs.push(invalid(`spec.ports[${i}].port`, p.port ?? 0, 'must be between 1 and 65535, inclusive'));
      if (p.nodePort !== undefined && !(p.nodePort >= 30000 && p.nodePort <= 32767)) {
        errs.push(invalid(`spec.ports[${i}].nodePort`, p.nodePort, 'provided port is not in the valid range. The range of valid ports is 30000-32767'));
      }
    });
  }
  return errs;
}

// ---- defaulting (decode-time) and admission ------------------------------
const POLICY_ALWAYS = (img) => !/:[^/]+$/.test(img.replace(/@.*$/, '')) || /:latest$/.test(img);
function defaultContainer(c) {
  if (Array.isArray(c.ports)) for (const p of c.ports) p.protocol ??= 'TCP';
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  c.imagePullPolicy ??= (c.image && POLICY_ALWAYS(c.image) ? 'Always' : 'IfNotPresent');
  for (const pr of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
    const p = c[pr];
    if (!p) continue;
    p.timeoutSeconds ??= 1; p.periodSeconds ??= 10; p.successThreshold ??= 1; p.failureThreshold ??= 3;
    if (p.httpGet) p.httpGet.scheme ??= 'HTTP';
  }
}
export function defaultPodSpec(s) {
  if (!s) return;
  for (const c of [...(s.initContainers || []), ...(s.containers || [])]) defaultContainer(c);
  s.restartPolicy ??= 'Always';
  s.terminationGracePeriodSeconds ??= 30;
  s.dnsPolicy ??= 'ClusterFirst';
  s.securityContext ??= {};
  s.schedulerName ??= 'default-scheduler';
  for (const v of s.volumes || []) {
    if (v.hostPath) v.hostPath.type ??= '';
    if (v.secret) v.secret.defaultMode ??= 420;
    if (v.configMap) v.configMap.defaultMode ??= 420;
  }
}
const template = (t) => {
  t.metadata ??= {};
  t.metadata.creationTimestamp = null;
  defaultPodSpec(t.spec);
};

// Defaults applied while decoding (these end up in the writer's managedFields).
export function applyDefaults(resource, o) {
  const s = o.spec;
  if (resource === 'pods') {
    defaultPodSpec(s);
    for (const c of s?.containers || []) {
      const lim = c.resources?.limits;
      if (lim) { c.resources.requests = { ...lim, ...(c.resources.requests || {}) }; }
    }
    if (s) s.enableServiceLinks ??= true;
  } else if (resource === 'services') {
    s.type ??= 'ClusterIP';
    for (const p of s.ports || []) { p.protocol ??= 'TCP'; p.targetPort ??= p.port; }
    s.sessionAffinity ??= 'None';
    if (s.type === 'NodePort' || s.type === 'LoadBalancer') s.externalTrafficPolicy ??= 'Cluster';
    s.internalTrafficPolicy ??= 'Cluster';
  } else if (resource === 'jobs') {
    s.parallelism ??= 1;
    s.completions ??= 1;
    s.backoffLimit ??= 6;
    s.completionMode ??= 'NonIndexed';
    s.suspend ??= false;
    if (s.template) template(s.template);
  } else if (resource === 'deployments') {
    s.replicas ??= 1;
    s.strategy ??= { type: 'RollingUpdate' };
    if (s.strategy.type === 'RollingUpdate') s.strategy.rollingUpdate ??= { maxUnavailable: '25%', maxSurge: '25%' };
    s.revisionHistoryLimit ??= 10;
    s.progressDeadlineSeconds ??= 600;
    if (s.template) template(s.template);
  } else if (resource === 'replicasets') {
    s.replicas ??= 1;
    if (s.template) template(s.template);
  } else if (resource === 'secrets') {
    o.type ??= 'Opaque';
    if (o.stringData) {
      o.data = { ...(o.data || {}) };
      for (const [k, v] of Object.entries(o.stringData)) o.data[k] = Buffer.from(String(v)).toString('base64');
      delete o.stringData;
    }
  } else if (resource === 'namespaces') {
    o.spec ??= { finalizers: ['kubernetes'] };
    o.metadata.labels = { ...(o.metadata.labels || {}), 'kubernetes.io/metadata.name': o.metadata.name };
  }
}

function qosClass(spec) {
  const cs = spec.containers || [];
  let any = false; let guaranteed = cs.length > 0;
  for (const c of cs) {
    const l = c.resources?.limits || {}; const r = c.resources?.requests || {};
    for (const k of ['cpu', 'memory']) {
      if (l[k] !== undefined || r[k] !== undefined) any = true;
      if (l[k] === undefined || (r[k] !== undefined && r[k] !== l[k])) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

// The admission plugins of a default cluster that change a new pod.
export function admitPod(o) {
  const s = o.spec;
  s.serviceAccountName ??= 'default';
  s.serviceAccount = s.serviceAccountName;
  if (s.automountServiceAccountToken !== false) {
    const vol = `kube-api-access-${randSuffix(5)}`;
    s.volumes = [...(s.volumes || []), {
      name: vol,
      projected: {
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
        defaultMode: 420,
      },
    }];
    for (const c of s.containers) {
      c.volumeMounts = [...(c.volumeMounts || []), { name: vol, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }];
    }
  }
  const tol = s.tolerations || [];
  for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
    if (!tol.some((t) => t.key === key)) tol.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
  }
  s.tolerations = tol;
  s.priority ??= 0;
  s.enableServiceLinks ??= true;
  s.preemptionPolicy ??= 'PreemptLowerPriority';
  o.status = { phase: 'Pending', qosClass: qosClass(s) };
}

// ---- managedFields -------------------------------------------------------
const MERGE_KEYS = {
  containers: ['name'], initContainers: ['name'], env: ['name'], volumes: ['name'], volumeMounts: ['mountPath'],
  imagePullSecrets: ['name'], conditions: ['type'], ownerReferences: ['uid'], podIPs: ['ip'], addresses: ['type'],
};
const ATOMIC = new Set(['args', 'command', 'selector', 'tolerations', 'finalizers', 'clusterIPs', 'ipFamilies', 'externalIPs', 'nodeSelectorTerms']);
// Struct fields every zero-valued object already has (Go writes them even when empty).
const ALWAYS = new Set(['metadata', 'spec', 'status', 'template', 'containers']);
const STRIP_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink', 'deletionTimestamp', 'deletionGracePeriodSeconds']);

function keyOf(field, item, parentField) {
  let keys = MERGE_KEYS[field];
  if (field === 'ports') keys = parentField === 'service' ? ['port', 'protocol'] : ['containerPort', 'protocol'];
  if (!keys) return null;
  const k = {};
  for (const n of [...keys].sort()) if (item[n] !== undefined) k[n] = item[n];
  return `k:${JSON.stringify(k)}`;
}

// The FieldsV1 set of obj as structured-merge-diff writes it: "apply" marks
// only list items with "."; an update (create) marks every node it added.
export function fieldsV1(resource, obj, { apply = false } = {}) {
  const walk = (v, name, ctx, depth) => {
    if (v === null || typeof v !== 'object' || ATOMIC.has(name)) return {};
    if (Array.isArray(v)) {
      const out = {};
      let keyed = false;
      for (const it of v) {
        const k = it && typeof it === 'object' ? keyOf(name, it, ctx) : null;
        if (!k) return {}; // atomic list
        keyed = true;
        // ownerReferences items are written without their fields
        out[k] = name === 'ownerReferences' ? {} : { '.': {}, ...walk(it, '', ctx, depth + 1) };
        if (Object.keys(out[k]).length === 1 && !Object.keys(it).length) out[k] = {};
      }
      if (!keyed) return {};
      return (!apply && !ALWAYS.has(name)) ? { '.': {}, ...out } : out;
    }
    const keys = Object.keys(v).sort();
    if (keys.length === 0) return {};
    const out = {};
    for (const k of keys) {
      if (depth === 0 && (k === 'kind' || k === 'apiVersion' || k === 'status')) continue;
      if (depth === 1 && name === 'metadata' && STRIP_META.has(k)) continue;
      if (v[k] === undefined || v[k] === null) continue;
      const sub = walk(v[k], k, resource === 'services' && k === 'spec' ? 'service' : ctx, depth + 1);
      if (k === 'metadata' && depth > 0 && (!sub || Object.keys(sub).length === 0)) continue;
      out[`f:${k}`] = sub;
    }
    if (Object.keys(out).length === 0) return name === 'metadata' ? null : {};
    return (!apply && depth > 0 && !ALWAYS.has(name) && name !== '') ? { '.': {}, ...out } : out;
  };
  const out = walk(obj, '', null, 0);
  for (const k of Object.keys(out)) if (out[k] === null || (k === 'f:metadata' && !Object.keys(out[k]).length)) delete out[k];
  return out;
}

export function managedEntry(manager, operation, apiVersion, fields, subresource) {
  const e = { manager, operation, apiVersion, time: now(), fieldsType: 'FieldsV1', fieldsV1: fields };
  if (subresource) e.subresource = subresource;
  return e;
}
