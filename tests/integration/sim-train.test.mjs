// aimaas-sim train/export against shared/contracts/llamafactory.md.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { SIM_BIN, tempDir } from './lib.mjs';

let dir, data, base;

before(() => {
  dir = tempDir('aimaas-train-');
  data = join(dir, 'data');
  mkdirSync(data);
  writeFileSync(join(data, 'qa.json'), JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ instruction: `Q${i}?`, input: '', output: `A${i}.` }))));
  writeFileSync(join(data, 'chat.jsonl'), Array.from({ length: 30 }, (_, i) => JSON.stringify({ messages: [
    { role: 'user', content: `hi ${i}` }, { role: 'assistant', content: 'hello' }] })).join('\n') + '\n');
  writeFileSync(join(data, 'broken.json'), '[{"instruction": "x", ');
  writeFileSync(join(data, 'dataset_info.json'), JSON.stringify({
    qa: { file_name: 'qa.json', formatting: 'alpaca' },
    chat: { file_name: 'chat.jsonl', formatting: 'sharegpt', columns: { messages: 'messages' },
      tags: { role_tag: 'role', content_tag: 'content', user_tag: 'user', assistant_tag: 'assistant' } },
    broken: { file_name: 'broken.json', formatting: 'alpaca' },
  }));
  base = join(dir, 'Qwen2.5-0.5B');
  mkdirSync(base);
  writeFileSync(join(base, 'config.json'), JSON.stringify({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2',
    hidden_size: 896, intermediate_size: 4864, num_attention_heads: 14, num_key_value_heads: 2, num_hidden_layers: 24,
    vocab_size: 151936, torch_dtype: 'bfloat16' }));
});

function config(name, extra = {}) {
  return { model_name_or_path: base, stage: 'sft', do_train: true, finetuning_type: 'lora', lora_rank: 8, lora_target: 'all',
    dataset: 'qa', dataset_dir: data, template: 'qwen', cutoff_len: 1024, output_dir: join(dir, name), logging_steps: 2,
    save_steps: 5, overwrite_output_dir: true, per_device_train_batch_size: 4, gradient_accumulation_steps: 2,
    learning_rate: 1e-4, num_train_epochs: 2.0, lr_scheduler_type: 'cosine', warmup_ratio: 0.1, bf16: true,
    report_to: 'none', plot_loss: true, ddp_timeout: 180000000, ...extra };
}

function writeConfig(name, cfg) {
  const p = join(dir, `${name}.json`);
  writeFileSync(p, JSON.stringify(cfg));
  return p;
}

function train(cfgPath, env = {}, verb = 'train') {
  return spawnSync(SIM_BIN, [verb, cfgPath], { encoding: 'utf8', env: { ...process.env, AIMAAS_SIM_STEP_MS: '2', ...env } });
}

function safetensorsHeader(path) {
  const fd = openSync(path, 'r');
  const len = Buffer.alloc(8);
  readSync(fd, len, 0, 8, 0);
  const n = Number(len.readBigUInt64LE());
  const h = Buffer.alloc(n);
  readSync(fd, h, 0, n, 8);
  closeSync(fd);
  return JSON.parse(h.toString());
}

const TIMEDELTA = /^(\d+ days?, )?\d+:\d\d:\d\d$/;

test('LoRA on 2 GPUs: steps from the data, trainer_log.jsonl by the contract, checkpoints, outputs', () => {
  const r = train(writeConfig('lora', config('lora')), { CUDA_VISIBLE_DEVICES: '0,1' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /Initializing 2 distributed tasks/);
  // 100 records, 4 per device x 2 GPUs = 13 batches, / 2 accumulation = 6 steps/epoch, 2 epochs
  assert.match(r.stdout, /Total optimization steps = 12/);
  assert.match(r.stdout, /\{'loss': [\d.]+, 'grad_norm': [\d.]+, 'learning_rate': [\d.e-]+, 'epoch': [\d.]+\}/);
  assert.match(r.stdout, /\d+%\|.*\| \d+\/12 \[/);
  const out = join(dir, 'lora');
  const lines = readFileSync(join(out, 'trainer_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.current_steps), [2, 4, 6, 8, 10, 12]);
  for (const l of lines) {
    assert.deepEqual(Object.keys(l), ['current_steps', 'total_steps', 'loss', 'lr', 'epoch', 'percentage', 'elapsed_time', 'remaining_time']);
    assert.equal(l.total_steps, 12);
    assert.equal(typeof l.loss, 'number');
    assert.match(l.elapsed_time, TIMEDELTA);
    assert.match(l.remaining_time, TIMEDELTA);
    assert.equal(l.percentage, Math.round((10000 * l.current_steps) / 12) / 100);
  }
  assert.ok(lines[0].loss > lines.at(-1).loss + 0.3, 'the loss falls');
  assert.ok(lines[0].lr > 0 && lines.at(-1).lr < lines[1].lr, 'cosine decay after warm-up');
  assert.equal(lines.at(-1).epoch, 2);
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'train_results.json', 'all_results.json', 'trainer_state.json', 'README.md'])
    assert.ok(existsSync(join(out, f)), f);
  assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('checkpoint-')).sort(), ['checkpoint-10', 'checkpoint-5']);
  const ac = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(ac.peft_type, 'LORA');
  assert.equal(ac.r, 8);
  assert.equal(ac.lora_alpha, 16);
  assert.equal(ac.base_model_name_or_path, base);
  const h = safetensorsHeader(join(out, 'adapter_model.safetensors'));
  assert.deepEqual(h['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'].shape, [8, 896]);
  assert.deepEqual(h['base_model.model.model.layers.23.mlp.down_proj.lora_B.weight'].shape, [896, 8]);
  const res = JSON.parse(readFileSync(join(out, 'train_results.json'), 'utf8'));
  for (const k of ['epoch', 'train_loss', 'train_runtime', 'train_samples_per_second']) assert.ok(k in res, k);
  const st = JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8'));
  assert.equal(st.global_step, 12);
  assert.ok(st.log_history.length >= 6);
  assert.match(r.stdout, /Error/, 'a harmless line with the word in it: exit status decides');
});

test('YAML configs, sharegpt/OpenAI data, val_size evaluations, one GPU', () => {
  const yaml = join(dir, 'chat.yaml');
  const c = config('chat', { dataset: 'chat', val_size: 0.1, eval_strategy: 'steps', eval_steps: 2, per_device_eval_batch_size: 1,
    num_train_epochs: 1.0, per_device_train_batch_size: 2, gradient_accumulation_steps: 1 });
  writeFileSync(yaml, '# from the examples\n' + Object.entries(c).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n');
  const r = train(yaml, { CUDA_VISIBLE_DEVICES: '3' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /distributed tasks/);
  // 30 records - 3 for evaluation = 27, 2 per step on 1 GPU = 14 steps
  assert.match(r.stdout, /Total optimization steps = 14/);
  const lines = readFileSync(join(dir, 'chat', 'trainer_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const evals = lines.filter((l) => 'eval_loss' in l);
  assert.ok(evals.length >= 6);
  assert.ok(evals.every((l) => !('loss' in l) && l.current_steps % 2 === 0));
});

test('refusals like LLaMA-Factory: unknown key, missing keys, quantization without LoRA, val_size with eval_dataset, bad data', () => {
  const cases = [
    [config('x1', { no_such_key: 1 }), /Some keys are not used by the HfArgumentParser: \['no_such_key'\]/],
    [config('x2', { dataset: 'missing' }), /Undefined dataset missing in dataset_info.json/],
    [config('x3', { finetuning_type: 'full', quantization_bit: 4 }), /Quantization is only compatible with the LoRA method/],
    [config('x4', { val_size: 0.1, eval_dataset: 'qa' }), /Cannot specify `val_size` if `eval_dataset` is not None/],
    [config('x5', { dataset: 'broken' }), /An error occurred while generating the dataset/],
    [{ ...config('x6'), model_name_or_path: undefined }, /model_name_or_path/],
    [{ ...config('x7'), dataset: undefined }, /dataset/],
  ];
  for (const [cfg, pattern] of cases) {
    const r = train(writeConfig('bad', cfg));
    assert.equal(r.status, 1, JSON.stringify(cfg));
    assert.match(r.stderr + r.stdout, pattern);
  }
  const ok = spawnSync(SIM_BIN, ['train', writeConfig('extra', config('x8', { no_such_key: 1 }))], {
    encoding: 'utf8', env: { ...process.env, AIMAAS_SIM_STEP_MS: '1', ALLOW_EXTRA_ARGS: '1' } });
  assert.equal(ok.status, 0, 'ALLOW_EXTRA_ARGS=1 lets unknown keys pass');
  const empty = train(writeConfig('nogpu', config('x9')), { CUDA_VISIBLE_DEVICES: '' });
  assert.equal(empty.status, 1);
});

function runAsync(cfgPath, env) {
  const p = spawn(SIM_BIN, ['train', cfgPath], { env: { ...process.env, ...env } });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  const done = new Promise((res) => p.on('exit', (code, signal) => res({ code, signal })));
  return { p, done, out: () => out };
}

test('SIGABRT under LlamaBoard stops at the next step and still saves; without it the run dies', async () => {
  const work = join(dir, 'board');
  const a = runAsync(writeConfig('abort', config('board', { num_train_epochs: 50.0 })),
    { AIMAAS_SIM_STEP_MS: '20', LLAMABOARD_ENABLED: '1', LLAMABOARD_WORKDIR: work });
  await new Promise((r) => setTimeout(r, 300));
  a.p.kill('SIGABRT');
  const r = await a.done;
  assert.equal(r.code, 0, a.out());
  assert.match(a.out(), /stopped early at step \d+ of 600/, '100 records / (4 x 1 GPU) / 2 = 12 steps x 50 epochs');
  assert.ok(existsSync(join(work, 'adapter_model.safetensors')));
  assert.ok(existsSync(join(work, 'train_results.json')));
  assert.match(readFileSync(join(work, 'running_log.txt'), 'utf8'), /Running training/);
  const b = runAsync(writeConfig('abort2', config('plain', { num_train_epochs: 50.0 })), { AIMAAS_SIM_STEP_MS: '20' });
  await new Promise((res) => setTimeout(res, 200));
  b.p.kill('SIGABRT');
  const rb = await b.done;
  assert.equal(rb.signal, 'SIGABRT');
  assert.ok(!existsSync(join(dir, 'plain', 'adapter_model.safetensors')));
});

test('failure injection, then a resume from the last checkpoint', () => {
  const cfg = writeConfig('resume', config('resume', { overwrite_output_dir: false }));
  const fail = train(cfg, { AIMAAS_SIM_FAIL_AT_STEP: '8' });
  assert.equal(fail.status, 1);
  assert.match(fail.stderr, /torch.OutOfMemoryError: CUDA out of memory/);
  const out = join(dir, 'resume');
  assert.ok(existsSync(join(out, 'checkpoint-5')));
  assert.ok(!existsSync(join(out, 'adapter_model.safetensors')));
  const again = train(cfg);
  assert.equal(again.status, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /Resuming training from checkpoint-5/);
  const steps = readFileSync(join(out, 'trainer_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).current_steps);
  // one GPU: 25 batches / 2 = 12 steps per epoch, 24 in all; the failed run
  // logged 2-6, the resumed one (from checkpoint-5) 6-24, appended
  assert.deepEqual(steps, [2, 4, 6, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]);
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
});

test('full fine-tuning writes a model; export merges an adapter into a full model folder', () => {
  const r = train(writeConfig('full', config('full', { finetuning_type: 'full', num_train_epochs: 1.0, learning_rate: 1e-5 })));
  assert.equal(r.status, 0, r.stderr);
  const out = join(dir, 'full');
  assert.ok(existsSync(join(out, 'config.json')));
  const h = safetensorsHeader(join(out, 'model.safetensors'));
  assert.deepEqual(h['model.embed_tokens.weight'].shape, [151936, 896]);
  assert.equal(h['model.layers.0.mlp.gate_proj.weight'].dtype, 'BF16');
  const ex = writeConfig('export', { model_name_or_path: base, adapter_name_or_path: join(dir, 'lora'), template: 'qwen',
    finetuning_type: 'lora', export_dir: join(dir, 'merged'), export_size: 5, export_device: 'cpu', export_legacy_format: false });
  const e = train(ex, {}, 'export');
  assert.equal(e.status, 0, e.stderr + e.stdout);
  assert.equal(JSON.parse(readFileSync(join(dir, 'merged', 'config.json'), 'utf8')).hidden_size, 896);
  assert.ok(existsSync(join(dir, 'merged', 'model.safetensors')));
  const noAdapter = train(writeConfig('export2', { model_name_or_path: base, adapter_name_or_path: join(dir, 'nowhere'),
    template: 'qwen', finetuning_type: 'lora', export_dir: join(dir, 'm2') }), {}, 'export');
  assert.equal(noAdapter.status, 1);
});

test('the shims run aimaas-sim under the real command names', () => {
  const shim = new URL('../shims/', import.meta.url).pathname;
  const v = spawnSync(join(shim, 'vllm'), ['serve', '/m', '--bogus'], { encoding: 'utf8' });
  assert.equal(v.status, 2);
  assert.match(v.stderr, /usage: vllm serve/);
  // SGLang's and llama-server's command lines, refused as those engines refuse
  const env = { ...process.env, AIMAAS_SIM: SIM_BIN };
  const sg = spawnSync(join(shim, 'sglang'), ['--model-path', '/m'], { encoding: 'utf8', env });
  assert.equal(sg.status, 2);
  assert.match(sg.stderr, /launch_server\.py: error: expected '-m sglang\.launch_server'/);
  const ls = spawnSync(join(shim, 'llama-server'), ['-m', '/m.gguf', '--bogus'], { encoding: 'utf8', env });
  assert.equal(ls.status, 2);
  assert.match(ls.stderr, /llama-server: error: unrecognized arguments: --bogus/);
  const l = spawnSync(join(shim, 'llamafactory-cli'), ['train', writeConfig('shim', config('shim', { num_train_epochs: 1.0 }))],
    { encoding: 'utf8', env: { ...process.env, AIMAAS_SIM_STEP_MS: '1', AIMAAS_SIM: SIM_BIN } });
  assert.equal(l.status, 0, l.stderr);
});
