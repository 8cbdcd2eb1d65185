// Nodes of the fake kube-apiserver: a kubemark/kubelet-shaped Node object
// from a short spec, Ready/NotReady as the node lifecycle controller writes
// it, and the resource arithmetic the scheduler needs.
import { uid, managedEntry } from './objects.mjs';

export const GPU = 'nvidia.com/gpu';
export const TERMINAL = new Set(['Succeeded', 'Failed']);

// ---- quantities (enough for cpu, memory, counts) -------------------------
export function qty(v) {
  if (v === undefined || v === null) return 0;
  const s = String(v);
  const m = s.match(/^([0-9.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/);
  if (!m) return Number(s) || 0;
  const mult = { m: 1e-3, k: 1e3, Ki: 1024, M: 1e6, Mi: 1024 ** 2, G: 1e9, Gi: 1024 ** 3, T: 1e12, Ti: 1024 ** 4 }[m[2]] ?? 1;
  return Number(m[1]) * mult;
}

// ---- nodes ---------------------------------------------------------------
// spec: { name, gpus=4, gpuProduct, gpuMemory (MiB), labels, taints, unschedulable,
//         ready=true, address, cpu='64', memory='527952068Ki' (hollow: '1', '3840Mi'), pods='110', computeMajor, computeMinor }
export function makeNode(spec, t) {
  const gpus = spec.gpus ?? 4;
  const labels = {
    'beta.kubernetes.io/arch': 'amd64', 'beta.kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64',
    'kubernetes.io/hostname': spec.name, 'kubernetes.io/os': 'linux',
  };
  if (gpus > 0 && spec.gfd !== false) {
    labels['nvidia.com/gpu.count'] = String(gpus);
    if (spec.computeMajor !== undefined) labels['nvidia.com/gpu.compute.major'] = String(spec.computeMajor);
    if (spec.computeMinor !== undefined) labels['nvidia.com/gpu.compute.minor'] = String(spec.computeMinor);
    labels['nvidia.com/gpu.memory'] = String(spec.gpuMemory ?? 24564);
    labels['nvidia.com/gpu.present'] = 'true';
    labels['nvidia.com/gpu.product'] = spec.gpuProduct ?? 'NVIDIA-GeForce-RTX-4090';
  }
  Object.assign(labels, spec.labels || {});
  const sorted = Object.fromEntries(Object.keys(labels).sort().map((k) => [k, labels[k]]));
  // a kubemark hollow node (the transcripts) has 1 cpu and no hugepages; a real GPU server more
  const hollowNode = !!spec.providerID?.startsWith('kubemark://');
  const res = { cpu: spec.cpu ?? (hollowNode ? '1' : '64'), 'ephemeral-storage': spec.ephemeralStorage ?? (hollowNode ? '0' : '1055762868Ki') };
  if (!hollowNode) { res['hugepages-1Gi'] = '0'; res['hugepages-2Mi'] = '0'; }
  res.memory = spec.memory ?? (hollowNode ? '3840Mi' : '527952068Ki');
  if (gpus > 0) res[GPU] = String(gpus);
  res.pods = spec.pods ?? '110';
  const labelFields = { '.': {} };
  for (const k of Object.keys(sorted)) labelFields[`f:${k}`] = {};
  const cond = (type, status, reason, message) => ({ type, status, lastHeartbeatTime: t, lastTransitionTime: t, reason, message });
  const node = {
    kind: 'Node', apiVersion: 'v1',
    metadata: {
      name: spec.name, uid: uid(), resourceVersion: '0', creationTimestamp: t, labels: sorted,
      annotations: { 'node.alpha.kubernetes.io/ttl': '0' },
      managedFields: [
        managedEntry('kubelet', 'Update', 'v1', { 'f:metadata': { 'f:labels': labelFields }, ...(spec.providerID ? { 'f:spec': { 'f:providerID': {} } } : {}) }),
        managedEntry('kube-controller-manager', 'Update', 'v1', { 'f:metadata': { 'f:annotations': { '.': {}, 'f:node.alpha.kubernetes.io/ttl': {} } } }),
        managedEntry('kubelet', 'Update', 'v1', { 'f:status': { 'f:conditions': {
          'k:{"type":"DiskPressure"}': { 'f:lastHeartbeatTime': {} }, 'k:{"type":"MemoryPressure"}': { 'f:lastHeartbeatTime': {} },
          'k:{"type":"PIDPressure"}': { 'f:lastHeartbeatTime': {} },
          'k:{"type":"Ready"}': { 'f:lastHeartbeatTime': {}, 'f:lastTransitionTime': {}, 'f:message': {}, 'f:reason': {}, 'f:status': {} } }, 'f:images': {} } }, 'status'),
      ],
    },
    spec: {},
    status: {
      capacity: { ...res }, allocatable: { ...res },
      conditions: [
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      addresses: [{ type: 'InternalIP', address: spec.address ?? '10.200.0.1' }, { type: 'Hostname', address: spec.name }],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: '', systemUUID: '', bootID: '', kernelVersion: '5.15.0-91-generic', osImage: 'Ubuntu 22.04.3 LTS',
        containerRuntimeVersion: 'containerd://1.6.24', kubeletVersion: 'v1.26.1', kubeProxyVersion: 'v1.26.1',
        operatingSystem: 'linux', architecture: 'amd64',
      },
      images: (spec.images || []).map((n) => ({ names: [n] })),
    },
  };
  if (spec.providerID) node.spec.providerID = spec.providerID;
  if (spec.podCIDR) { node.spec.podCIDR = spec.podCIDR; node.spec.podCIDRs = [spec.podCIDR]; }
  if (spec.unschedulable) node.spec.unschedulable = true;
  if (spec.taints?.length) node.spec.taints = spec.taints.map((x) => ({ ...x }));
  if (spec.nodeInfo) Object.assign(node.status.nodeInfo, spec.nodeInfo);
  if (spec.kubeletPort) node.status.daemonEndpoints.kubeletEndpoint.Port = spec.kubeletPort;
  if (spec.kubeletManager) for (const m of node.metadata.managedFields) if (m.manager === 'kubelet') m.manager = spec.kubeletManager;
  if (spec.ready === false) setNodeCondition(node, false, t);
  return node;
}

export function setNodeCondition(node, ready, t) {
  const c = node.status.conditions.find((x) => x.type === 'Ready');
  const taints = (node.spec.taints || []).filter((x) => !x.key.startsWith('node.kubernetes.io/unreachable'));
  if (ready) {
    Object.assign(c, { status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: t, lastTransitionTime: t });
  } else {
    // what the node lifecycle controller writes when a kubelet stops posting
    Object.assign(c, { status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: t });
    for (const x of node.status.conditions) if (x.type !== 'Ready') Object.assign(x, { status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: t });
    taints.push({ key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule', timeAdded: t });
    taints.push({ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: t });
  }
  if (ready) for (const x of node.status.conditions) if (x.type !== 'Ready' && x.status === 'Unknown') {
    const orig = { MemoryPressure: ['KubeletHasSufficientMemory', 'kubelet has sufficient memory available'], DiskPressure: ['KubeletHasNoDiskPressure', 'kubelet has no disk pressure'], PIDPressure: ['KubeletHasSufficientPID', 'kubelet has sufficient PID available'] }[x.type];
    Object.assign(x, { status: 'False', reason: orig[0], message: orig[1], lastTransitionTime: t });
  }
  if (taints.length) node.spec.taints = taints; else delete node.spec.taints;
}

export const nodeReady = (n) => n.status.conditions.find((c) => c.type === 'Ready')?.status === 'True';
export const podGpus = (p) => (p.spec.containers || []).reduce((s, c) => s + qty(c.resources?.limits?.[GPU] ?? c.resources?.requests?.[GPU]), 0);
export const podRequests = (p) => {
  const r = {};
  for (const c of p.spec.containers || []) {
    for (const [k, v] of Object.entries({ ...(c.resources?.limits || {}), ...(c.resources?.requests || {}) })) r[k] = (r[k] || 0) + qty(v);
  }
  return r;
};

