// GPU discovery end to end: NVML loaded with dlopen (a stand-in library
// answering with real H100 readings), the nvidia-smi fallback, and both
// mixed with simulated cards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { ROOT, startServer } from './lib.mjs';

const FAKE_NVML = resolve(ROOT, 'build/fake-nvml/libnvidia-ml.so.1');
const FAKE_SMI = resolve(ROOT, 'tests/fixtures/fake-nvidia-smi');
const H100_UUID = 'GPU-3931de48-4998-5a83-a45c-ef6d245cfef1';

async function gpusWhenSampled(srv, token, want) {
  for (let i = 0; i < 50; i++) {
    const r = await srv.api('GET', '/api/v1/gpus', { token });
    if (r.json.items.length >= want && r.json.items.some((g) => !g.simulated)) return r.json.items;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`GPUs never appeared:\n${srv.log()}`);
}

test('NVML through dlopen: the H100, its process, simulated cards after it', async () => {
  const srv = await startServer({ env: { AIMAAS_NVML_LIB: FAKE_NVML }, args: ['--sim-gpus', '2x11GiB:NVIDIA GeForce RTX 2080 Ti'] });
  try {
    const token = await srv.login();
    const gpus = await gpusWhenSampled(srv, token, 3);
    assert.equal(gpus.length, 3);
    const h = gpus[0];
    assert.equal(h.id, H100_UUID);
    assert.equal(h.index, 0);
    assert.equal(h.name, 'NVIDIA H100 80GB HBM3');
    assert.equal(h.simulated, false);
    assert.equal(h.compute_capability, '9.0');
    assert.equal(h.bf16, true);
    assert.equal(h.memory.total, 85520809984);
    assert.equal(h.memory.used, 7594639360);
    assert.equal(h.memory.free, 77926170624);
    assert.equal(h.memory.reserved, 0);
    assert.equal(h.temperature, 49);
    assert.deepEqual(h.utilization, { gpu: 0, memory: 0 });
    assert.deepEqual(h.processes.map((p) => [p.pid, p.used_bytes]), [[446, 7082082304]]);
    assert.deepEqual(gpus.slice(1).map((g) => [g.index, g.simulated]), [[1, true], [2, true]]);
    const node = await srv.api('GET', '/api/v1/nodes/local', { token });
    assert.equal(node.json.gpu_source, 'nvml');
    assert.equal(node.json.gpu_count, 3);
    assert.equal(node.json.simulated_gpu_count, 2);
    const m = await srv.api('GET', '/metrics', { token });
    assert.match(m.text, new RegExp(`aimaas_gpu_memory_bytes\\{node="local",gpu="0",uuid="${H100_UUID}",state="used"\\} 7594639360`));
    assert.match(srv.log(), /GPUs read through NVML \(driver 580\.159\.04\)/);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('without NVML, nvidia-smi is parsed instead', async () => {
  const srv = await startServer({ env: { AIMAAS_NVML_LIB: '/nonexistent/libnvidia-ml.so.1', AIMAAS_NVIDIA_SMI: FAKE_SMI } });
  try {
    const token = await srv.login();
    const [h] = await gpusWhenSampled(srv, token, 1);
    assert.equal(h.id, H100_UUID);
    assert.equal(h.pci_bus_id, '00000000:00:06.0');
    assert.equal(h.memory.total, 81559 * 1024 * 1024);
    assert.equal(h.memory.free, 81079 * 1024 * 1024);
    assert.equal(h.compute_capability, '9.0');
    assert.deepEqual(h.processes, [{ pid: 446, used_bytes: 6754 * 1024 * 1024, name: 'python3', aimaas_instance: null }]);
    const node = await srv.api('GET', '/api/v1/nodes/local', { token });
    assert.equal(node.json.gpu_source, 'nvidia-smi');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('no driver at all: only simulated cards, clearly marked', async () => {
  const srv = await startServer({ env: { AIMAAS_NVML_LIB: '/nonexistent/libnvidia-ml.so.1', AIMAAS_NVIDIA_SMI: '/nonexistent/nvidia-smi' },
    args: ['--sim-gpus', '1x16GiB:Tesla V100-SXM2-16GB'] });
  try {
    const token = await srv.login();
    const r = await srv.api('GET', '/api/v1/gpus', { token });
    assert.equal(r.json.items.length, 1);
    assert.equal(r.json.items[0].simulated, true);
    assert.equal(r.json.items[0].compute_capability, '7.0');
    assert.equal(r.json.items[0].bf16, false);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
