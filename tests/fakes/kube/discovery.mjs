// Discovery documents of the fake kube-apiserver: /version, the legacy
// /api and /apis lists, APIResourceLists, and a minimal OpenAPI v3.
import { RESOURCES, VERBS } from './objects.mjs';

export const VERSION = {
  major: '1', minor: '26', gitVersion: 'v1.26.1', gitCommit: '8f94681cd294aa8cfd3407b8191f6c70214973a4',
  gitTreeState: 'dirty', buildDate: '2026-12-02T16:08:48Z', goVersion: 'go1.19.8', compiler: 'gc', platform: 'linux/amd64',
};

// ---- discovery -----------------------------------------------------------
export function resourceList(group, version) {
  const out = [];
  for (const [name, r] of Object.entries(RESOURCES)) {
    if (r.group !== group || r.version !== version) continue;
    const e = { name, singularName: r.kind.toLowerCase(), namespaced: r.namespaced, kind: r.kind, verbs: VERBS };
    if (r.short.length) e.shortNames = r.short;
    if (['pods', 'services', 'deployments', 'replicasets', 'jobs'].includes(name)) e.categories = ['all'];
    out.push(e);
    if (name === 'pods') {
      out.push({ name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] });
      out.push({ name: 'pods/status', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get', 'patch', 'update'] });
    }
  }
  if (group === 'authorization.k8s.io') {
    out.push({ name: 'selfsubjectaccessreviews', singularName: '', namespaced: false, kind: 'SelfSubjectAccessReview', verbs: ['create'] });
    out.push({ name: 'selfsubjectrulesreviews', singularName: '', namespaced: false, kind: 'SelfSubjectRulesReview', verbs: ['create'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources: out };
}
export const GROUPS = ['apps', 'batch', 'authorization.k8s.io'];
export const groupDoc = (g) => ({ name: g, versions: [{ groupVersion: `${g}/v1`, version: 'v1' }], preferredVersion: { groupVersion: `${g}/v1`, version: 'v1' } });

// A minimal OpenAPI v3 document per group-version: only the write operations
// and their query parameters (kubectl reads it to learn that the server
// validates fields itself, ?fieldValidation=Strict). No schemas.
export function openapiDoc(group) {
  const paths = {};
  const params = ['dryRun', 'fieldManager', 'fieldValidation'].map((name) => ({ name, in: 'query', schema: { type: 'string', uniqueItems: true } }));
  for (const [name, r] of Object.entries(RESOURCES)) {
    if (r.group !== group) continue;
    const gvk = { group: r.group, version: r.version, kind: r.kind };
    const op = (action) => ({ parameters: params, responses: {}, 'x-kubernetes-action': action, 'x-kubernetes-group-version-kind': gvk });
    const base = `/${group ? `apis/${group}` : 'api'}/v1${r.namespaced ? '/namespaces/{namespace}' : ''}/${name}`;
    paths[base] = { post: op('post') };
    paths[`${base}/{name}`] = { put: op('put'), patch: op('patch') };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: VERSION.gitVersion }, paths, components: { schemas: {} } };
}

