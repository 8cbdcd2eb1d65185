// meta.k8s.io/v1 Table answers (server-side printing, what `kubectl get`
// asks for): the pod, node and service printers of kube-apiserver v1.26,
// and the default Name / Created At table for the other kinds.
const NAME_DESC = 'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: http://kubernetes.io/docs/user-guide/identifiers#names';
const AGE_DESC = 'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata';
const col = (name, description, priority = 0, type = 'string', format = '') => ({ name, type, format, description, priority });

// duration.HumanDuration, simplified
export function age(ts) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  return d < 8 && h % 24 ? `${d}d${h % 24}h` : `${d}d`;
}

function podRow(p) {
  const cs = p.status.containerStatuses || [];
  let reason = p.status.reason || p.status.phase;
  let restarts = 0; let lastRestart = null;
  for (const c of cs) {
    restarts += c.restartCount;
    const f = c.lastState?.terminated?.finishedAt;
    if (f && (!lastRestart || f > lastRestart)) lastRestart = f;
    if (c.state.waiting?.reason) reason = c.state.waiting.reason;
    else if (c.state.terminated) reason = c.state.terminated.reason || (c.state.terminated.signal ? `Signal:${c.state.terminated.signal}` : `ExitCode:${c.state.terminated.exitCode}`);
  }
  if (p.metadata.deletionTimestamp) reason = 'Terminating';
  const ready = cs.filter((c) => c.ready && c.state.running).length;
  return [p.metadata.name, `${ready}/${p.spec.containers.length}`, reason, lastRestart ? `${restarts} (${age(lastRestart)} ago)` : String(restarts), age(p.metadata.creationTimestamp),
    p.status.podIP || '<none>', p.spec.nodeName || '<none>', p.status.nominatedNodeName || '<none>', '<none>'];
}
function nodeRow(n) {
  const ready = n.status.conditions.find((c) => c.type === 'Ready');
  let st = ready?.status === 'True' ? 'Ready' : ready?.status === 'False' ? 'NotReady' : 'Unknown';
  if (n.spec.unschedulable) st += ',SchedulingDisabled';
  const roles = Object.keys(n.metadata.labels || {}).filter((l) => l.startsWith('node-role.kubernetes.io/')).map((l) => l.split('/')[1]);
  const addr = (t) => n.status.addresses.find((a) => a.type === t)?.address || '<none>';
  const i = n.status.nodeInfo;
  return [n.metadata.name, st, roles.length ? roles.join(',') : '<none>', age(n.metadata.creationTimestamp), i.kubeletVersion, addr('InternalIP'), addr('ExternalIP'), i.osImage, i.kernelVersion, i.containerRuntimeVersion];
}
function svcRow(s) {
  const ports = (s.spec.ports || []).map((p) => (p.nodePort ? `${p.port}:${p.nodePort}/${p.protocol}` : `${p.port}/${p.protocol}`)).join(',') || '<none>';
  const sel = Object.entries(s.spec.selector || {}).map(([k, v]) => `${k}=${v}`).join(',') || '<none>';
  return [s.metadata.name, s.spec.type, s.spec.clusterIP || '<none>', s.spec.type === 'LoadBalancer' ? '<pending>' : '<none>', ports, age(s.metadata.creationTimestamp), sel];
}

const TABLES = {
  pods: [[col('Name', NAME_DESC, 0, 'string', 'name'), col('Ready', 'The aggregate readiness state of this pod for accepting traffic.'),
    col('Status', 'The aggregate status of the containers in this pod.'), col('Restarts', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
    col('Age', AGE_DESC), col('IP', 'IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.', 1),
    col('Node', 'NodeName is a request to schedule this pod onto a specific node. If it is non-empty, the scheduler simply schedules this pod onto that node, assuming that it fits resource requirements.', 1),
    col('Nominated Node', 'nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.', 1),
    col('Readiness Gates', 'If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to "True" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates', 1)], podRow],
  nodes: [[col('Name', NAME_DESC, 0, 'string', 'name'), col('Status', 'The status of the node'), col('Roles', 'The roles of the node'), col('Age', AGE_DESC),
    col('Version', 'Kubelet Version reported by the node.'), col('Internal-IP', 'List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/concepts/nodes/node/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node\'s address in its own status or consumers of the downward API (status.hostIP).', 1),
    col('External-IP', 'List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/concepts/nodes/node/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node\'s address in its own status or consumers of the downward API (status.hostIP).', 1),
    col('OS-Image', 'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).', 1), col('Kernel-Version', "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
    col('Container-Runtime', 'ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).', 1)], nodeRow],
  services: [[col('Name', NAME_DESC, 0, 'string', 'name'), col('Type', 'type determines how the Service is exposed.'), col('Cluster-IP', 'clusterIP is the IP address of the service and is usually assigned randomly.'),
    col('External-IP', 'List of IP addresses for which nodes in the cluster will also accept traffic for this service.'), col('Port(s)', 'The ports that are exposed by this service.'), col('Age', AGE_DESC),
    col('Selector', 'Route service traffic to pods with label keys and values matching this selector.', 1)], svcRow],
};
const DEFAULT = [[col('Name', NAME_DESC, 0, 'string', 'name'), col('Created At', AGE_DESC, 0, 'date')], (o) => [o.metadata.name, o.metadata.creationTimestamp]];

// true when the client asked for server-side printing
export const wantsTable = (accept) => /as=Table/.test(accept || '');
export const TABLE_CONTENT_TYPE = 'application/json;as=Table;v=v1;g=meta.k8s.io';

// A Table of objs; headers=false leaves the column definitions out (watch events after the first).
export function toTable(resource, objs, { rv, headers = true, includeObject = 'Metadata', apiVersion, kind } = {}) {
  const [cols, row] = TABLES[resource] || DEFAULT;
  const t = { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: rv ? { resourceVersion: String(rv) } : {}, columnDefinitions: headers ? cols : null, rows: [] };
  for (const o of objs) {
    const r = { cells: row(o) };
    if (includeObject === 'Object') r.object = { kind, apiVersion, ...o };
    else if (includeObject !== 'None') r.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
    t.rows.push(r);
  }
  return t;
}
