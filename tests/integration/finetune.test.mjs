// Fine-tuning jobs through LLaMA-Factory's command line (tests/shims/
// llamafactory-cli runs aimaas-sim train): validation, the config aimaas
// writes, GPUs reserved and queued for, live progress, stop with a save,
// resume from the checkpoint, failure reasons, the result registered as a
// model, and a kill -9 of aimaas in the middle of training.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, startServer, tempDir, assertError } from './lib.mjs';
import { makeModel } from '../fixtures/make-models.mjs';

const SHIMS = resolve(ROOT, 'tests/shims');
const GPUS = '2x24GiB:NVIDIA GeForce RTX 4090';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let dir, srv, T;

function start(env = {}) {
  return startServer({ dataDir: dir, args: ['--sim-gpus', GPUS, '--stop-engines-on-exit'],
    env: { PATH: `${SHIMS}:${process.env.PATH}`, AIMAAS_SIM: resolve(ROOT, process.env.AIMAAS_SIM_BIN || 'build/aimaas-sim'),
      AIMAAS_SIM_STEP_MS: '15', AIMAAS_SIM_ITL_MS: '15', AIMAAS_SIM_LORA_LOAD_MS: '300', AIMAAS_SIM_OUTPUT_LEN: '150', ...env } });
}

async function waitJob(id, pred, what, ms = 20000) {
  const t0 = Date.now();
  let j;
  while (Date.now() - t0 < ms) {
    try {
      j = (await srv.api('GET', `/api/v1/finetune/jobs/${id}`, { token: T })).json;
    } catch (e) {
      throw new Error(`${e.message}; aimaas said:\n${srv.log().slice(-3000)}`);
    }
    if (pred(j)) return j;
    await sleep(40);
  }
  throw new Error(`job ${id} never ${what}: ${JSON.stringify(j)}\n${srv.log().slice(-3000)}`);
}

const job = (body) => srv.api('POST', '/api/v1/finetune/jobs', { token: T, body });
const QA = JSON.stringify(Array.from({ length: 64 }, (_, i) => ({ instruction: `Question ${i}?`, input: '', output: `Answer ${i}.` })));

before(async () => {
  dir = tempDir();
  const models = join(dir, 'models');
  mkdirSync(models);
  for (const m of ['Qwen2.5-7B-Instruct', 'Qwen3-32B', 'bge-large-zh-v1.5']) makeModel(m, models);
  srv = await start();
  T = await srv.login();
  for (const m of ['Qwen2.5-7B-Instruct', 'Qwen3-32B', 'bge-large-zh-v1.5']) {
    const r = await srv.api('POST', '/api/v1/models', { token: T, body: { path: join(models, m) } });
    assert.equal(r.status, 201, r.text);
  }
  const up = (name, body, file) => srv.api('POST', `/api/v1/datasets?name=${name}&file_name=${file}`,
    { token: T, raw: body, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal((await up('qa', QA, 'qa.json')).status, 201);
  const chat = Array.from({ length: 20 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `hi ${i}` },
    { role: 'assistant', content: 'hello' }] })).join('\n');
  assert.equal((await up('chat', chat, 'chat.jsonl')).status, 201);
  assert.equal((await up('broken', '[{"instruction":"x"}]', 'b.json')).json.state, 'invalid');
});

after(async () => {
  await srv.stop();
  srv.cleanup();
});

test('bad jobs are refused with the field and the reason', async () => {
  const base = { base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'] };
  assertError(await job({ datasets: ['qa'] }), 400, 'invalid_field', 'base_model');
  assertError(await job({ ...base, base_model: 'nope' }), 400, 'invalid_field', 'base_model');
  assertError(await job({ ...base, base_model: 'bge-large-zh-v1.5' }), 400, 'invalid_field', 'base_model');
  assertError(await job({ ...base, datasets: [] }), 400, 'invalid_field', 'datasets');
  assertError(await job({ ...base, datasets: ['nope'] }), 400, 'invalid_field', 'datasets[0]');
  const inv = await job({ ...base, datasets: ['broken'] });
  assertError(inv, 400, 'invalid_field', 'datasets');
  assert.match(inv.json.error.message, /invalid/);
  assertError(await job({ ...base, method: 'dora' }), 400, 'invalid_field', 'method');
  const q = await job({ ...base, method: 'lora', quantization_bit: 4 });
  assertError(q, 400, 'invalid_field', 'quantization_bit');
  assert.match(q.json.error.message, /only works with LoRA/);
  assertError(await job({ ...base, method: 'qlora', quantization_bit: 3 }), 400, 'invalid_field', 'quantization_bit');
  assertError(await job({ ...base, template: 'chatml-ish' }), 400, 'invalid_field', 'template');
  assertError(await job({ ...base, hyper: { learning_rate: 'fast' } }), 400, 'invalid_field', 'hyper.learning_rate');
  assertError(await job({ ...base, hyper: { learning_rate: 5 } }), 400, 'invalid_field', 'hyper.learning_rate');
  // typed wrong, never silently dropped for LLaMA-Factory's default: a console's NaN arrives as null
  for (const [hyper, field, msg] of [[{ learning_rate: 'abc' }, 'hyper.learning_rate', "'hyper.learning_rate' must be a number, got 'abc'"],
    [{ learning_rate: null }, 'hyper.learning_rate', "'hyper.learning_rate' is null: give a value, or leave it out for the default"],
    [{ learning_rate: '1e-4x' }, 'hyper.learning_rate', "'hyper.learning_rate' must be a number, got '1e-4x'"],
    [{ learning_rate: '5' }, 'hyper.learning_rate', "'hyper.learning_rate' must be 1e-09 to 1"],
    [{ lora_rank: '16.5' }, 'hyper.lora_rank', "'hyper.lora_rank' must be an integer, got '16.5'"],
    [{ num_train_epochs: 'NaN' }, 'hyper.num_train_epochs', "'hyper.num_train_epochs' must be a number, got 'NaN'"],
    [{ lr_scheduler_type: 'sine' }, 'hyper.lr_scheduler_type', undefined],
    [{ pure_bf16: 'yes' }, 'hyper.pure_bf16', undefined]]) {
    const r = await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: T, body: { ...base, hyper } });
    assertError(r, 400, 'invalid_field', field);
    if (msg) assert.equal(r.json.error.message, msg);
  }
  const typed = await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: T, body: { ...base, hyper: { learning_rate: '2e-4', lora_rank: '16' } } });
  assert.equal(typed.status, 200, typed.text);
  assert.deepEqual([typed.json.params.learning_rate, typed.json.params.lora_rank], [2e-4, 16], 'a number as typed is read as one');
  assertError(await job({ ...base, hyper: { no_such: 1 } }), 400, 'invalid_field', 'hyper.no_such');
  assertError(await job({ ...base, hyper: { lora_target: 'all; rm -rf /' } }), 400, 'invalid_field', 'hyper.lora_target');
  assertError(await job({ ...base, method: 'full', hyper: { lora_rank: 8 } }), 400, 'invalid_field', 'hyper.lora_rank');
  assertError(await job({ ...base, gpus: 3 }), 400, 'invalid_field', 'gpus');
  assertError(await job({ ...base, gpus: ['GPU-nope'] }), 400, 'invalid_field', 'gpus');
  assertError(await job({ ...base, deepspeed: 1 }), 400, 'invalid_field', 'deepspeed');
  // a 32B full fine-tune cannot fit 24 GiB cards by LLaMA-Factory's table (18 GB per billion: 590 GB, 549.2 GiB)
  const big = await job({ base_model: 'Qwen3-32B', datasets: ['qa'], method: 'full' });
  assertError(big, 400, 'invalid_field', 'method');
  assert.match(big.json.error.message, /needs about 549.2 GiB on each of 1 GPU .* the largest GPU has 24.0 GiB/);
  assertError(await job({ ...base, extra: 1 }), 400, 'invalid_field', 'extra');
  const dpo = await job({ ...base, stage: 'dpo' });
  assertError(dpo, 400, 'invalid_field', 'datasets');
  assert.match(dpo.json.error.message, /holds sft data; stage 'dpo' trains on preference data/);
  assertError(await job({ ...base, stage: 'pt' }), 400, 'invalid_field', 'datasets');
  // a dry run (the console's wizard) answers the resolved settings and the memory estimate, and keeps nothing
  const dry = await srv.api('POST', '/api/v1/finetune/jobs?dry_run=true', { token: T, body: { ...base, hyper: { lora_rank: 16 } } });
  assert.equal(dry.status, 200, dry.text);
  assert.equal(dry.json.dry_run, true);
  assert.equal(dry.json.template, 'qwen');
  assert.equal(dry.json.params.lora_rank, 16);
  assert.equal(dry.json.params.learning_rate, 1e-4);
  assert.ok(dry.json.memory_per_gpu_bytes > 14e9 && dry.json.memory_per_gpu_bytes < 30e9, dry.text); // 7.6B LoRA: ~2 GB/B
  assert.equal(dry.json.largest_gpu_bytes, 24 * 2 ** 30);
  assertError(await srv.api('POST', '/api/v1/finetune/jobs?dry_run=1', { token: T, body: { ...base, method: 'dora' } }), 400,
    'invalid_field', 'method');
  assert.equal((await srv.api('GET', '/api/v1/finetune/jobs', { token: T })).json.items.length, 0);
  assert.equal((await srv.api('GET', '/api/v1/tasks?kind=finetune.create&limit=500', { token: T })).json.items
    .filter((t) => t.state !== 'failed').length, 0, 'a dry run leaves no task');
});

test('a LoRA job runs to the end: config, progress, loss series, result registered', async () => {
  const r = await job({ name: 'qa-lora', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa', 'chat'],
    hyper: { num_train_epochs: 2, per_device_train_batch_size: 4, gradient_accumulation_steps: 1, logging_steps: 2, save_steps: 10 } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.state, 'queued');
  assert.equal(r.json.template, 'qwen'); // from Qwen2ForCausalLM
  assert.equal(r.json.params.lora_rank, 8);
  assert.equal(r.json.params.lora_alpha, 16);
  assert.equal(r.json.params.learning_rate, 1e-4);
  const id = r.json.id;
  const run = await waitJob(id, (j) => j.state === 'running' && j.progress?.step > 0, 'ran');
  assert.equal(run.gpus.length, 1);
  assert.equal(run.precision, 'bf16'); // an RTX 4090 has bf16
  assert.ok(run.mem_per_gpu > 15e9 && run.mem_per_gpu < 16e9, `LoRA on 7.6B: 2 GB per billion, got ${run.mem_per_gpu}`);
  // the dataset is in use: it cannot be deleted
  assertError(await srv.api('DELETE', '/api/v1/datasets/qa', { token: T }), 409, 'conflict');

  const done = await waitJob(id, (j) => j.state === 'succeeded', 'succeeded');
  // (64 + 20 records) / 4 per step = 21 steps per epoch, 2 epochs
  assert.equal(done.progress.total, 42);
  assert.equal(done.progress.step, 42);
  assert.equal(done.progress.percentage, 100);
  assert.ok(done.finished_at >= done.started_at);

  const cfg = JSON.parse(readFileSync(join(dir, 'finetune', String(id), 'train.json'), 'utf8'));
  assert.equal(cfg.finetuning_type, 'lora');
  assert.equal(cfg.stage, 'sft');
  assert.equal(cfg.template, 'qwen');
  assert.equal(cfg.dataset, 'ds1,ds2');
  assert.equal(cfg.bf16, true);
  assert.equal(cfg.do_train, true);
  assert.equal(cfg.overwrite_output_dir, true);
  assert.equal(cfg.model_name_or_path, join(dir, 'models', 'Qwen2.5-7B-Instruct'));
  const info = JSON.parse(readFileSync(join(dir, 'finetune', String(id), 'data', 'dataset_info.json'), 'utf8'));
  assert.deepEqual(info.ds1, { file_name: 'ds1.json', formatting: 'alpaca' });
  assert.equal(info.ds2.formatting, 'sharegpt');
  assert.equal(info.ds2.tags.role_tag, 'role');

  const m = await srv.api('GET', `/api/v1/finetune/jobs/${id}/metrics`, { token: T });
  assert.equal(m.status, 200);
  const s = m.json.series;
  assert.equal(s.length, 21); // every 2 steps
  assert.ok(s[s.length - 1].loss < s[0].loss, 'the loss falls');
  assert.ok(s.every((p, i) => i === 0 || p.step > s[i - 1].step));
  assert.equal((await srv.api('GET', `/api/v1/finetune/jobs/${id}/metrics?max=5`, { token: T })).json.series.length, 5);
  const logs = await srv.api('GET', `/api/v1/finetune/jobs/${id}/logs?tail=5`, { token: T });
  assert.equal(logs.status, 200);
  assert.equal(logs.text.trimEnd().split('\n').length, 5);
  assertError(await srv.api('GET', `/api/v1/finetune/jobs/${id}/logs?tail=x`, { token: T }), 400, 'invalid_field', 'tail');

  // the adapter is a model linked to its base
  assert.ok(done.result_model_id);
  const model = (await srv.api('GET', `/api/v1/models/${done.result_model_id}`, { token: T })).json;
  assert.equal(model.name, 'qa-lora');
  assert.equal(model.facts.adapter?.rank ?? model.facts.rank ?? 8, 8);
  assert.ok(existsSync(join(model.path, 'adapter_model.safetensors')));
  const tasks = (await srv.api('GET', '/api/v1/tasks', { token: T })).json.items;
  assert.ok(tasks.some((t) => t.kind === 'finetune.create' && t.target === `finetune:${id}` && t.state === 'succeeded'),
    JSON.stringify(tasks.slice(0, 3)));
  // the GPUs are free again and the finished job can be deleted only after its model
  const g = (await srv.api('GET', '/api/v1/gpus', { token: T })).json;
  assert.ok(JSON.stringify(g).indexOf('a training job') < 0);
  assertError(await srv.api('DELETE', `/api/v1/finetune/jobs/${id}`, { token: T }), 409, 'conflict');
});

test('DPO on preference data: ranking pairs reach LLaMA-Factory', async () => {
  const pairs = Array.from({ length: 16 }, (_, i) => JSON.stringify({ instruction: `Q${i}?`, input: '', chosen: 'good', rejected: 'bad' })).join('\n');
  const up = await srv.api('POST', '/api/v1/datasets?name=prefs&file_name=prefs.jsonl',
    { token: T, raw: pairs, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(up.status, 201, up.text);
  assert.equal(up.json.report.purpose, 'preference');
  assertError(await job({ base_model: 'Qwen2.5-7B-Instruct', datasets: ['prefs'] }), 400, 'invalid_field', 'datasets');
  const r = await job({ name: 'dpo-1', base_model: 'Qwen2.5-7B-Instruct', datasets: ['prefs'], stage: 'dpo',
    hyper: { num_train_epochs: 1, per_device_train_batch_size: 4, gradient_accumulation_steps: 1, logging_steps: 1, pref_beta: 0.2 } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.params.pref_beta, 0.2);
  const done = await waitJob(r.json.id, (j) => ['succeeded', 'failed'].includes(j.state), 'ended');
  assert.equal(done.state, 'succeeded', done.reason);
  const folder = join(dir, 'finetune', String(r.json.id));
  const info = JSON.parse(readFileSync(join(folder, 'data', 'dataset_info.json'), 'utf8'));
  const name = Object.keys(info)[0];
  assert.equal(info[name].ranking, true);
  assert.deepEqual(info[name].columns, { prompt: 'instruction', query: 'input', chosen: 'chosen', rejected: 'rejected' });
  const cfg = JSON.parse(readFileSync(join(folder, 'train.json'), 'utf8'));
  assert.equal(cfg.stage, 'dpo');
  assert.equal(cfg.pref_beta, 0.2);
});

test('queued for GPUs, stop saves, resume continues from the checkpoint', async () => {
  const long = { base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'],
    hyper: { num_train_epochs: 20, per_device_train_batch_size: 4, gradient_accumulation_steps: 1, logging_steps: 1, save_steps: 5 } };
  const a = await job({ ...long, name: 'wide', gpus: 2 });
  assert.equal(a.status, 201, a.text);
  await waitJob(a.json.id, (j) => j.state === 'running', 'ran');
  const b = await job({ ...long, name: 'waiter', hyper: { ...long.hyper, num_train_epochs: 1 } });
  assert.equal(b.status, 201, b.text);
  const queued = await waitJob(b.json.id, (j) => /waiting for GPUs/.test(j.reason), 'said it waits');
  assert.equal(queued.state, 'queued');
  // a queued job stopped before it started: finished at once, its task cancelled
  const c = await job({ ...long, name: 'early' });
  assert.equal(c.status, 201, c.text);
  const cs = await srv.api('POST', `/api/v1/finetune/jobs/${c.json.id}/stop`, { token: T, body: {} });
  assert.equal(cs.status, 200, cs.text);
  assert.equal(cs.json.state, 'stopped');
  assert.equal(cs.json.reason, 'stopped before it started');
  const ct = (await srv.api('GET', `/api/v1/tasks/${c.json.task_id}`, { token: T })).json;
  assert.equal(ct.kind, 'finetune.create');
  assert.equal(ct.state, 'cancelled');
  assert.equal(ct.message, 'stopped before it started');
  assert.equal((await srv.api('DELETE', `/api/v1/finetune/jobs/${c.json.id}`, { token: T })).status, 200);
  const wide = (await srv.api('GET', `/api/v1/finetune/jobs/${a.json.id}`, { token: T })).json;
  assert.equal(wide.gpus.length, 2);
  assert.equal(wide.gpu_indices, '0,1');
  // the config, key by key, as contracts/llamafactory.md describes it
  const folder = join(dir, 'finetune', String(a.json.id));
  assert.deepEqual(JSON.parse(readFileSync(join(folder, 'train.json'), 'utf8')), {
    model_name_or_path: join(dir, 'models', 'Qwen2.5-7B-Instruct'), trust_remote_code: true, stage: 'sft', do_train: true,
    finetuning_type: 'lora', lora_rank: 8, lora_alpha: 16, lora_dropout: 0, lora_target: 'all', dataset: 'ds1',
    dataset_dir: join(folder, 'data'), template: 'qwen', cutoff_len: 2048, output_dir: join(folder, 'out'), logging_steps: 1,
    save_steps: 5, plot_loss: true, overwrite_output_dir: true, report_to: 'none', per_device_train_batch_size: 4,
    gradient_accumulation_steps: 1, learning_rate: 1e-4, num_train_epochs: 20, lr_scheduler_type: 'cosine', warmup_ratio: 0.1,
    bf16: true, ddp_timeout: 180000000 });
  // the trainer's environment: both GPUs, torchrun, LlamaBoard's stop-and-save
  const env = Object.fromEntries(readFileSync(`/proc/${wide.pid}/environ`, 'utf8').split('\0').filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  assert.equal(env.CUDA_VISIBLE_DEVICES, '0,1');
  assert.equal(env.FORCE_TORCHRUN, '1');
  assert.equal(env.LLAMABOARD_ENABLED, '1');
  assert.equal(env.LLAMABOARD_WORKDIR, join(folder, 'out'));
  assert.equal(env.AIMAAS_ADMIN_PASSWORD, undefined, 'no secret reaches the trainer');
  assert.match(readFileSync(join(folder, 'train.log'), 'utf8'), /Initializing 2 distributed tasks/);

  // the log, followed live over SSE
  const live = await fetch(`${srv.url}/api/v1/finetune/jobs/${a.json.id}/logs?follow=true&tail=1`,
    { headers: { authorization: `Bearer ${T}` } });
  assert.match(live.headers.get('content-type'), /text\/event-stream/);
  const reader = live.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  while (!buf.includes(': following')) buf += dec.decode((await reader.read()).value);
  const after = buf.length;
  while (buf.slice(after).split('data: ').length < 3) buf += dec.decode((await reader.read()).value);
  await reader.cancel();
  await waitJob(a.json.id, (j) => j.progress?.step >= 12, 'made progress');
  const st = await srv.api('POST', `/api/v1/finetune/jobs/${a.json.id}/stop`, { token: T, body: {} });
  assert.equal(st.status, 200, st.text);
  assert.equal(st.json.state, 'stopping');
  const stopped = await waitJob(a.json.id, (j) => j.state === 'stopped', 'stopped');
  assert.match(stopped.reason, /stopped at step \d+ of 160/);
  const out = join(dir, 'finetune', String(a.json.id), 'out');
  assert.ok(readdirSync(out).some((f) => /^checkpoint-\d+$/.test(f)), 'a checkpoint was saved');
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')), 'stopping saved the adapter');
  // its GPUs go to the waiting job, which starts by itself
  await waitJob(b.json.id, (j) => ['running', 'succeeded'].includes(j.state), 'started after the GPUs freed');
  await waitJob(b.json.id, (j) => j.state === 'succeeded', 'succeeded');
  assertError(await srv.api('POST', `/api/v1/finetune/jobs/${b.json.id}/stop`, { token: T, body: {} }), 409, 'conflict');

  const stepAtStop = stopped.progress.step;
  const res = await srv.api('POST', `/api/v1/finetune/jobs/${a.json.id}/resume`, { token: T, body: {} });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.state, 'queued');
  const again = await waitJob(a.json.id, (j) => j.state === 'running' && j.progress?.step > stepAtStop, 'resumed');
  const cfg = JSON.parse(readFileSync(join(dir, 'finetune', String(a.json.id), 'train.json'), 'utf8'));
  assert.equal(cfg.overwrite_output_dir, false); // LLaMA-Factory resumes from the last checkpoint
  assert.ok(again.progress.step > stepAtStop);
  await srv.api('POST', `/api/v1/finetune/jobs/${a.json.id}/stop`, { token: T, body: {} });
  await waitJob(a.json.id, (j) => j.state === 'stopped', 'stopped again');
  const del = await srv.api('DELETE', `/api/v1/finetune/jobs/${a.json.id}`, { token: T });
  assert.equal(del.status, 200, del.text);
  assert.ok(!existsSync(join(dir, 'finetune', String(a.json.id))));
});

test('a failed run says why, from its exit status and last error line', async () => {
  const d = srv.dir;
  await srv.stop();
  srv = await start({ AIMAAS_SIM_FAIL_AT_STEP: '3', AIMAAS_SIM_FAIL_MESSAGE: 'torch.OutOfMemoryError: CUDA out of memory.' });
  T = await srv.login();
  assert.equal(srv.dir, d);
  const r = await job({ name: 'doomed', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'], method: 'qlora' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.quantization_bit, 4);
  const f = await waitJob(r.json.id, (j) => j.state === 'failed', 'failed');
  assert.match(f.reason, /exit 1/);
  assert.match(f.reason, /OutOfMemoryError/);
  const cfg = JSON.parse(readFileSync(join(dir, 'finetune', String(r.json.id), 'train.json'), 'utf8'));
  assert.equal(cfg.finetuning_type, 'lora');
  assert.equal(cfg.quantization_bit, 4);
  assert.equal(cfg.quantization_method, 'bnb');
  // the program set on the Engines page is the one a job runs; a missing one fails the job, saying where to set it
  const lf = '/nonexistent/llamafactory-cli';
  assert.equal((await srv.api('PATCH', '/api/v1/engines/llamafactory', { token: T, body: { binary: lf } })).status, 200);
  const m = await job({ name: 'noprog', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'] });
  assert.equal(m.status, 201, m.text);
  const mf = await waitJob(m.json.id, (j) => j.state === 'failed', 'failed', 5000);
  assert.equal(mf.reason, `engine program '${lf}' not found or not executable, set it on the Engines page`);
  assert.equal((await srv.api('PATCH', '/api/v1/engines/llamafactory', { token: T, body: { binary: '' } })).status, 200);
});

test('kill -9 of aimaas mid-training: the trainer keeps going and is re-adopted', async () => {
  await srv.stop();
  srv = await start({ AIMAAS_SIM_STEP_MS: '25' });
  T = await srv.login();
  const r = await job({ name: 'survivor', base_model: 'Qwen2.5-7B-Instruct', datasets: ['qa'], output_name: 'survivor-adapter',
    hyper: { num_train_epochs: 3, per_device_train_batch_size: 4, gradient_accumulation_steps: 1, logging_steps: 1 } });
  assert.equal(r.status, 201, r.text);
  await waitJob(r.json.id, (j) => j.state === 'running' && j.progress?.step >= 3, 'ran');
  await srv.kill9();
  await sleep(300);
  srv = await start();
  T = await srv.login();
  assert.match(srv.log(), /re-adopting trainer/);
  const done = await waitJob(r.json.id, (j) => j.state === 'succeeded', 'succeeded after the restart');
  assert.equal(done.progress.step, 48);
  const model = (await srv.api('GET', `/api/v1/models/${done.result_model_id}`, { token: T })).json;
  assert.equal(model.name, 'survivor-adapter');
});

test('the trained adapter is served on its base through vLLM and the gateway', async () => {
  const adapter = (await srv.api('GET', '/api/v1/models/survivor-adapter', { token: T })).json;
  assert.equal(adapter.kind, 'adapter');
  const dep = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'qwen-tuned', model: 'Qwen2.5-7B-Instruct',
    engine: 'vllm', lora_modules: [{ name: 'survivor', model: 'survivor-adapter' }] } });
  assert.equal(dep.status, 201, dep.text);
  const t0 = Date.now();
  let d;
  while (Date.now() - t0 < 20000) {
    d = (await srv.api('GET', '/api/v1/deployments/qwen-tuned', { token: T })).json;
    if (d.state === 'running') break;
    await sleep(50);
  }
  assert.equal(d.state, 'running', JSON.stringify(d));
  const k = await srv.api('POST', '/api/v1/keys', { token: T, body: { name: 'compare' } });
  assert.equal(k.status, 201, k.text);
  const ask = (model) => fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${k.json.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Question 3?' }], max_tokens: 8 }) });
  // the base and the tuned adapter side by side, on one engine
  for (const model of ['qwen-tuned', 'survivor']) {
    const r = await ask(model);
    assert.equal(r.status, 200, await r.clone().text());
    const body = await r.json();
    assert.equal(body.model, model);
    assert.ok(body.choices[0].message.content.length > 0);
  }
  // the playground's compare: one prompt, both models, answers side by side
  const cmp = await srv.api('POST', '/api/v1/playground/compare', { token: T, body: { models: ['qwen-tuned', 'survivor'],
    messages: [{ role: 'user', content: 'Question 3?' }], max_tokens: 6, temperature: 0, seed: 7 } });
  assert.equal(cmp.status, 200, cmp.text);
  assert.deepEqual(cmp.json.results.map((x) => x.model), ['qwen-tuned', 'survivor']);
  for (const x of cmp.json.results) {
    assert.equal(x.status, 200, JSON.stringify(x));
    assert.ok(x.content.length > 0);
    assert.equal(x.usage.completion_tokens, 6);
    assert.ok(x.latency_ms > 0);
  }
  const bad = (body) => srv.api('POST', '/api/v1/playground/compare', { token: T, body });
  const msgs = [{ role: 'user', content: 'hi' }];
  assertError(await bad({ models: ['qwen-tuned'], messages: msgs }), 400, 'invalid_field', 'models');
  assertError(await bad({ models: ['qwen-tuned', 'nope'], messages: msgs }), 400, 'invalid_field', 'models');
  assertError(await bad({ models: ['qwen-tuned', 'survivor'], messages: [] }), 400, 'invalid_field', 'messages');
  assertError(await bad({ models: ['qwen-tuned', 'survivor'], messages: [{ content: 'x' }] }), 400, 'invalid_field', 'messages');
  assertError(await bad({ models: ['qwen-tuned', 'survivor'], messages: msgs, temperature: 3 }), 400, 'invalid_field', 'temperature');
  assertError(await srv.api('POST', '/api/v1/playground/compare', { body: { models: [], messages: [] } }), 401, 'unauthorized');
  // adapters added to a running base later (the console's "deploy the adapter"): checked, then the engine restarts with them
  const patch = (lora_modules) => srv.api('PATCH', '/api/v1/deployments/qwen-tuned', { token: T, body: { lora_modules } });
  assertError(await patch([{ name: 'qwen-tuned', model: 'survivor-adapter' }]), 400, 'invalid_field', 'lora_modules');
  assertError(await patch([{ name: 'x', model: 'Qwen2.5-7B-Instruct' }]), 400, 'invalid_field', 'lora_modules');
  assertError(await patch('all'), 400, 'invalid_field', 'lora_modules');
  // the base started with LoRA: a second adapter is loaded at runtime (vLLM's /v1/load_lora_adapter), no
  // restart, while a stream from the base runs through it; then it is unloaded the same way
  const before = (await srv.api('GET', '/api/v1/deployments/qwen-tuned', { token: T })).json.instances[0];
  const stream = fetch(`${srv.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${k.json.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen-tuned', stream: true, max_tokens: 150, messages: [{ role: 'user', content: 'A long answer, please.' }] }) })
    .then(async (r) => ({ status: r.status, text: await r.text(), at: Date.now() }));
  const p = await patch([{ name: 'survivor', model: 'survivor-adapter' }, { name: 'survivor-v2', model: 'survivor-adapter' }]);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.restarting, false, 'loaded at runtime');
  // once the gateway knows the name, a request for it is held until the engine has it loaded:
  // never sent to an engine that would answer "does not exist"
  let listed = false;
  for (let i = 0; i < 400 && !listed; i++) {
    const m = await (await fetch(`${srv.url}/v1/models`, { headers: { authorization: `Bearer ${k.json.key}` } })).json();
    listed = m.data.some((x) => x.id === 'survivor-v2');
    if (!listed) await sleep(10);
  }
  assert.ok(listed, 'the new adapter is listed');
  const first = await ask('survivor-v2');
  assert.equal(first.status, 200, `the first request for the new adapter: ${await first.text()}`);
  const loadedAt = Date.now();
  const q = await patch([{ name: 'survivor', model: 'survivor-adapter' }]);
  assert.equal(q.json.restarting, false);
  let gone = 0;
  for (let i = 0; i < 400 && !gone; i++) {
    const r = await ask('survivor-v2');
    if (r.status === 404 || r.status === 400) gone = 1;
    else await sleep(50);
  }
  assert.ok(gone, 'the removed adapter no longer answers');
  // a swap: the engine unloads its only adapter first (none loaded for a moment), then loads the new
  // one; the new name is held meanwhile, never sent to the engine
  assert.equal((await patch([{ name: 'survivor-v2', model: 'survivor-adapter' }])).status, 200);
  let swapped = false;
  for (let i = 0; i < 400 && !swapped; i++) {
    const m = await (await fetch(`${srv.url}/v1/models`, { headers: { authorization: `Bearer ${k.json.key}` } })).json();
    swapped = m.data.some((x) => x.id === 'survivor-v2') && !m.data.some((x) => x.id === 'survivor');
    if (!swapped) await sleep(10);
  }
  assert.ok(swapped);
  const sw = await ask('survivor-v2');
  assert.equal(sw.status, 200, `after a swap: ${await sw.clone().text()}`);
  assert.equal((await patch([{ name: 'survivor', model: 'survivor-adapter' }])).status, 200);
  let back = false;
  for (let i = 0; i < 400 && !back; i++) {
    back = (await ask('survivor')).status === 200;
    if (!back) await sleep(25);
  }
  assert.ok(back, 'the first adapter is back');
  const s1 = await stream;
  assert.equal(s1.status, 200);
  assert.match(s1.text, /data: \[DONE\]/);
  assert.doesNotMatch(s1.text, /"error"/, 'the base kept serving throughout');
  assert.ok(s1.at > loadedAt, `the stream was still running when the adapter was loaded (${s1.at - loadedAt} ms; ${s1.text.length} bytes)`);
  const after = (await srv.api('GET', '/api/v1/deployments/qwen-tuned', { token: T })).json.instances[0];
  assert.equal(after.id, before.id, 'the same engine');
  assert.equal(after.restarts, before.restarts);
  assert.equal(after.started_at, before.started_at);
  assert.equal((await ask('survivor')).status, 200);
  const log = await srv.api('GET', '/api/v1/deployments/qwen-tuned/logs?tail=400', { token: T });
  assert.match(log.text, /Loaded new LoRA adapter: name 'survivor-v2'/);
  // an adapter a deployment serves is not deleted under it, as a served base is not
  const delA = await srv.api('DELETE', '/api/v1/models/survivor-adapter', { token: T });
  assertError(delA, 409, 'conflict');
  assert.equal(delA.json.error.message, "adapter 'survivor-adapter' is served by deployment 'qwen-tuned'; remove it from its lora_modules first");
  assert.equal((await srv.api('GET', '/api/v1/models/survivor-adapter', { token: T })).status, 200);
  const del = await srv.api('DELETE', '/api/v1/deployments/qwen-tuned', { token: T });
  assert.ok(del.status === 200 || del.status === 202, del.text);
});

test('an adapter added to a base started without LoRA restarts it with them, and says so', async () => {
  const dep = await srv.api('POST', '/api/v1/deployments', { token: T, body: { name: 'qwen-plain', model: 'Qwen2.5-7B-Instruct', engine: 'vllm' } });
  assert.equal(dep.status, 201, dep.text);
  const running = async () => {
    for (let i = 0; i < 400; i++) {
      const d = (await srv.api('GET', '/api/v1/deployments/qwen-plain', { token: T })).json;
      if (d.state === 'running') return d;
      await sleep(50);
    }
    assert.fail('qwen-plain never ran');
  };
  const first = (await running()).instances[0];
  const p = await srv.api('PATCH', '/api/v1/deployments/qwen-plain', { token: T, body: { lora_modules: [{ name: 'plain-lora', model: 'survivor-adapter' }] } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.restarting, true, 'vLLM was started without --enable-lora');
  let d;
  for (let i = 0; i < 400; i++) {
    d = (await srv.api('GET', '/api/v1/deployments/qwen-plain', { token: T })).json;
    if (d.state === 'running' && d.instances[0]?.id !== first.id) break;
    await sleep(50);
  }
  assert.notEqual(d.instances[0].id, first.id, 'a new engine');
  const cmd = await srv.api('GET', '/api/v1/deployments/qwen-plain/command', { token: T });
  assert.match(JSON.stringify(cmd.json), /--enable-lora/);
  assert.match(JSON.stringify(cmd.json), /"--max-lora-rank","16"/, 'from the adapter\'s rank (8), with room for the usual ones');
  await srv.api('DELETE', '/api/v1/deployments/qwen-plain', { token: T });
});

test('merging the adapter into its base registers a full model', async () => {
  const jobs = (await srv.api('GET', '/api/v1/finetune/jobs', { token: T })).json.items;
  const done = jobs.find((j) => j.name === 'survivor');
  const failed = jobs.find((j) => j.name === 'doomed');
  assertError(await srv.api('POST', `/api/v1/finetune/jobs/${failed.id}/export`, { token: T, body: {} }), 409, 'conflict');
  assertError(await srv.api('POST', `/api/v1/finetune/jobs/${done.id}/export`, { token: T, body: { name: 'a b' } }), 400,
    'invalid_field', 'name');
  assertError(await srv.api('POST', `/api/v1/finetune/jobs/${done.id}/export`, { token: T, body: { name: 'Qwen3-32B' } }), 409,
    'conflict', 'name');
  const r = await srv.api('POST', `/api/v1/finetune/jobs/${done.id}/export`, { token: T, body: {} });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.export_state, 'queued');
  assert.equal(r.json.export_name, 'survivor-adapter-merged');
  const j = await waitJob(done.id, (x) => x.export_state === 'succeeded' || x.export_state === 'failed', 'merged');
  assert.equal(j.export_state, 'succeeded', j.export_reason);
  const m = (await srv.api('GET', `/api/v1/models/${j.export_model_id}`, { token: T })).json;
  assert.equal(m.name, 'survivor-adapter-merged');
  assert.equal(m.kind, 'llm');
  assert.equal(m.architecture, 'Qwen2ForCausalLM');
  const cfg = JSON.parse(readFileSync(join(dir, 'finetune', String(done.id), 'export.json'), 'utf8'));
  assert.equal(cfg.finetuning_type, 'lora');
  assert.equal(cfg.export_device, 'cpu');
  assert.equal(cfg.adapter_name_or_path, join(dir, 'finetune', String(done.id), 'out'));
  assertError(await srv.api('POST', `/api/v1/finetune/jobs/${done.id}/export`, { token: T, body: { name: 'again' } }), 409, 'conflict');
  assertError(await srv.api('DELETE', `/api/v1/finetune/jobs/${done.id}`, { token: T }), 409, 'conflict');
});
