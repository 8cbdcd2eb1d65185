// aimaas-sim serve against shared/contracts/engines.md, driven by the
// official openai npm client where a client would be used.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { SIM_BIN, startSim, tempDir } from './lib.mjs';

const KEY = 'sim-key-1';
let chat, embed, rerank, dir;

function modelDir(name, config) {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'config.json'), JSON.stringify(config));
  return d;
}

before(async () => {
  dir = tempDir('aimaas-sim-');
  const qwen = modelDir('Qwen2.5-7B-Instruct', { architectures: ['Qwen2ForCausalLM'], num_attention_heads: 28,
    num_key_value_heads: 4, hidden_size: 3584, max_position_embeddings: 32768 });
  const bge = modelDir('bge-large-zh-v1.5', { architectures: ['BertModel'], hidden_size: 1024, num_attention_heads: 16,
    max_position_embeddings: 512 });
  const rr = modelDir('bge-reranker-v2-m3', { architectures: ['XLMRobertaForSequenceClassification'], hidden_size: 1024,
    num_attention_heads: 16, max_position_embeddings: 8194 });
  chat = await startSim(qwen, ['--served-model-name', 'qwen2.5-7b', 'qwen', '--api-key', KEY, '--max-model-len', '2048',
    '--enable-lora', '--lora-modules', 'sql-lora=/adapters/sql', '{"name":"faq-lora","path":"/adapters/faq","base_model_name":"qwen2.5-7b"}'],
  { env: { VLLM_ALLOW_RUNTIME_LORA_UPDATING: 'True' } });
  embed = await startSim(bge, ['--served-model-name', 'bge-large', '--runner', 'pooling', '--convert', 'embed']);
  rerank = await startSim(rr, ['--served-model-name', 'bge-reranker']);
});

after(async () => {
  await chat.stop();
  await embed.stop();
  await rerank.stop();
});

const client = () => new OpenAI({ apiKey: KEY, baseURL: `${chat.url}/v1`, maxRetries: 0 });

test('flags: vLLM spellings accepted, unknown ones refused with usage', () => {
  const bad = spawnSync(SIM_BIN, ['serve', '/m', '--no-such-flag'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /usage: vllm serve/);
  assert.match(bad.stderr, /unrecognized arguments: --no-such-flag/);
  const badChoice = spawnSync(SIM_BIN, ['serve', '/m', '--dtype', 'int3'], { encoding: 'utf8' });
  assert.equal(badChoice.status, 2);
  const badRank = spawnSync(SIM_BIN, ['serve', '/m', '--max-lora-rank', '7'], { encoding: 'utf8' });
  assert.equal(badRank.status, 2);
  const noModel = spawnSync(SIM_BIN, ['serve'], { encoding: 'utf8' });
  assert.equal(noModel.status, 2);
  const help = spawnSync(SIM_BIN, ['serve', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stderr, /--sim-ttft-ms/);
});

test('every flag aimaas emits starts a server', async () => {
  const s = await startSim('/models/x', ['--served-model-name', 'x', '--tensor-parallel-size', '2', '-pp', '1',
    '--data-parallel-size=1', '--gpu-memory-utilization', '0.45', '--max-model-len', '8192', '--max-num-seqs', '64',
    '--dtype', 'half', '--quantization', 'awq', '--trust-remote-code', '--enable-lora', '--max-loras', '2',
    '--max-lora-rank', '64', '--lora-modules', 'a=/p/a', '--api-key', 'k', '--runner', 'generate', '--convert', 'none',
    '--chat-template', '/t.jinja', '--enable-prefix-caching', '--enforce-eager', '--seed', '7',
    '--distributed-executor-backend', 'mp', '--disable-uvicorn-access-log'], { env: { CUDA_VISIBLE_DEVICES: '2,3' } });
  const m = await fetch(`${s.url}/v1/models`, { headers: { authorization: 'Bearer k' } }).then((r) => r.json());
  assert.equal(m.data[0].max_model_len, 8192);
  await s.stop();
});

test('start-up: the port answers at once, /health is 503 until ready, vLLM-like log lines', async () => {
  const s = await startSim('/models/slow', ['--sim-startup-ms', '400'], { waitReady: false });
  let first = 0;
  for (let i = 0; i < 40 && !first; i++) {
    first = await s.health();
    if (!first) await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(first, 503);
  const early = await fetch(`${s.url}/v1/models`);
  assert.equal(early.status, 503);
  for (let i = 0; i < 100 && await s.health() !== 200; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await s.health(), 200);
  for (const line of ['Available KV cache memory:', 'GPU KV cache size:', 'Maximum concurrency for', 'Application startup complete.'])
    assert.ok(s.log().includes(line), line);
  assert.equal((await fetch(`${s.url}/ping`)).status, 200);
  assert.deepEqual(await fetch(`${s.url}/version`).then((r) => r.json()), { version: '0.11.0' });
  await s.stop();
});

test('fatal start-ups: TP that does not divide the heads, too few GPUs, an injected cause', async () => {
  const bad = async (args, env, pattern) => {
    const s = await startSim(join(dir, 'Qwen2.5-7B-Instruct'), args, { env, waitReady: false });
    const r = await s.exited;
    assert.equal(r.code, 1, s.log());
    assert.match(s.log(), pattern);
    assert.match(s.log(), /Engine core initialization failed/);
  };
  await bad(['-tp', '3'], {}, /Total number of attention heads \(28\) must be divisible by tensor parallel size \(3\)/);
  await bad(['-tp', '4'], { CUDA_VISIBLE_DEVICES: '0,1' }, /World size \(4\) is larger than the number of available GPUs \(2\)/);
  await bad(['--sim-startup-error', 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB'], {}, /CUDA out of memory/);
});

test('models: the served name, LoRA adapters with their parent', async () => {
  const list = await client().models.list();
  const ids = list.data.map((m) => m.id);
  assert.deepEqual(ids, ['qwen2.5-7b', 'sql-lora', 'faq-lora']);
  assert.equal(list.data[0].owned_by, 'vllm');
  assert.equal(list.data[0].max_model_len, 2048);
  assert.equal(list.data[1].parent, 'qwen2.5-7b');
  assert.equal(list.data[1].root, '/adapters/sql');
  assert.equal(list.data[2].parent, 'qwen2.5-7b');
});

test('chat: plain and streamed with include_usage agree', async () => {
  const messages = [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: 'What does aimaas do?' }];
  const plain = await client().chat.completions.create({ model: 'qwen2.5-7b', messages, max_tokens: 12 });
  assert.equal(plain.object, 'chat.completion');
  assert.equal(plain.model, 'qwen2.5-7b');
  assert.equal(plain.choices[0].message.role, 'assistant');
  assert.equal(plain.choices[0].finish_reason, 'length');
  assert.equal(plain.usage.completion_tokens, 12);
  assert.ok(plain.usage.prompt_tokens > 5);
  assert.equal(plain.usage.total_tokens, plain.usage.prompt_tokens + 12);

  const stream = await client().chat.completions.create({ model: 'qwen2.5-7b', messages, max_tokens: 12, stream: true,
    stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null), 'every chunk carries "usage": null');
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.deepEqual([last.usage.prompt_tokens, last.usage.completion_tokens], [plain.usage.prompt_tokens, 12]);
  const finishing = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(finishing.length, 1);
  assert.equal(finishing[0].choices[0].finish_reason, 'length');
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, plain.choices[0].message.content, 'same prompt, same text');
  assert.equal(chunks.filter((c) => c.choices[0]?.delta?.content).length, 12, 'one chunk per token');

  const noUsage = await client().chat.completions.create({ model: 'qwen', messages, max_tokens: 3, stream: true });
  const c2 = [];
  for await (const c of noUsage) c2.push(c);
  assert.ok(c2.every((c) => c.choices.length === 1 && !('usage' in c)));
});

test('chat: stop strings, default length, a LoRA adapter by name, the same seed twice', async () => {
  const r = await client().chat.completions.create({ model: 'sql-lora', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.model, 'sql-lora');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.completion_tokens, 16, '--sim-output-tokens default');
  const words = r.choices[0].message.content.split(' ');
  const stop = ` ${words[2]}`;
  const cut = await client().chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }], stop: [stop] });
  assert.equal(cut.choices[0].finish_reason, 'stop');
  assert.ok(!cut.choices[0].message.content.includes(stop));
  assert.ok(r.choices[0].message.content.startsWith(cut.choices[0].message.content));
});

test('chat: tools give a tool call, plain and streamed', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] }, days: { type: 'integer' } },
      required: ['city'] } } }];
  const r = await client().chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'Weather in Beijing?' }], tools });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Beijing', unit: 'c', days: 1 });
  const s = await client().chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'Weather?' }], tools, stream: true });
  let name = '';
  let args = '';
  let finish;
  for await (const c of s) {
    const tc = c.choices[0]?.delta?.tool_calls?.[0];
    if (tc?.function?.name) name = tc.function.name;
    if (tc?.function?.arguments) args += tc.function.arguments;
    finish = c.choices[0]?.finish_reason || finish;
  }
  assert.equal(name, 'get_weather');
  assert.deepEqual(JSON.parse(args), { city: 'Beijing', unit: 'c', days: 1 });
  assert.equal(finish, 'tool_calls');
  const none = await client().chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }], tools, tool_choice: 'none' });
  assert.equal(none.choices[0].finish_reason, 'stop');
});

test('completions: plain and streamed; echo mode returns the prompt', async () => {
  const r = await client().completions.create({ model: 'qwen', prompt: 'Once upon a time', max_tokens: 5 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage.completion_tokens, 5);
  const s = await client().completions.create({ model: 'qwen', prompt: 'Once upon a time', max_tokens: 5, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
  const echo = await startSim('/models/echo', ['--sim-mode', 'echo']);
  const e = await fetch(`${echo.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: '你好，世界 🙂 hello' }] }) }).then((x) => x.json());
  assert.equal(e.choices[0].message.content, '你好，世界 🙂 hello');
  assert.equal(e.model, '/models/echo', 'without --served-model-name the model path is the name');
  await echo.stop();
});

test('embeddings: float and base64 (the SDK default), deterministic, dimensions', async () => {
  const c = new OpenAI({ apiKey: 'none', baseURL: `${embed.url}/v1`, maxRetries: 0 });
  const b64 = await c.embeddings.create({ model: 'bge-large', input: ['hello world', 'second'] });
  assert.equal(b64.data.length, 2);
  assert.equal(b64.data[0].embedding.length, 1024, 'the SDK decoded base64 into floats');
  const norm = Math.hypot(...b64.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-4, `unit length, got ${norm}`);
  const fl = await c.embeddings.create({ model: 'bge-large', input: 'hello world', encoding_format: 'float' });
  assert.equal(fl.data[0].embedding.length, 1024);
  fl.data[0].embedding.forEach((v, i) => assert.ok(Math.abs(v - b64.data[0].embedding[i]) < 1e-6));
  assert.ok(fl.usage.prompt_tokens > 0 && fl.usage.total_tokens === fl.usage.prompt_tokens);
  const small = await c.embeddings.create({ model: 'bge-large', input: 'hello world', encoding_format: 'float', dimensions: 256 });
  assert.equal(small.data[0].embedding.length, 256);
  const raw = await fetch(`${embed.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bge-large', input: 'x', encoding_format: 'base64' }) }).then((r) => r.json());
  assert.equal(Buffer.from(raw.data[0].embedding, 'base64').length, 4096);
  const wrong = await fetch(`${embed.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bge-large', messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(wrong.status, 400);
  assert.match((await wrong.json()).error.message, /does not support Chat Completions/);
});

test('rerank on /rerank, /v1/rerank, /v2/rerank; score', async () => {
  const body = { model: 'bge-reranker', query: 'What is a GPU?', documents: ['Cats sleep a lot.', 'A GPU is a graphics processor.', 'GPU memory holds the model.'] };
  for (const path of ['/rerank', '/v1/rerank', '/v2/rerank']) {
    const r = await fetch(rerank.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((x) => x.json());
    assert.equal(r.results.length, 3, path);
    assert.equal(r.results[0].index, 1);
    assert.equal(r.results[0].document.text, 'A GPU is a graphics processor.');
    assert.equal(r.results.at(-1).index, 0);
    assert.ok(r.results[0].relevance_score > r.results[1].relevance_score);
    assert.ok(r.usage.total_tokens > 0);
  }
  const top = await fetch(`${rerank.url}/v1/rerank`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, top_n: 1 }) }).then((x) => x.json());
  assert.equal(top.results.length, 1);
  const sc = await fetch(`${rerank.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bge-reranker', text_1: 'What is a GPU?', text_2: ['A GPU is a processor.', 'Cats.'] }) }).then((x) => x.json());
  assert.equal(sc.object, 'list');
  assert.equal(sc.data.length, 2);
  assert.ok(sc.data[0].score > sc.data[1].score);
  assert.equal(sc.data[0].object, 'score');
});

test('errors in vLLM shape: API key on /v1 only, unknown model, context length, bad JSON', async () => {
  assert.equal((await fetch(`${chat.url}/v1/models`)).status, 401);
  assert.deepEqual(await fetch(`${chat.url}/v1/models`).then((r) => r.json()), { error: 'Unauthorized' });
  assert.equal((await fetch(`${chat.url}/health`)).status, 200);
  assert.equal((await fetch(`${chat.url}/metrics`)).status, 200);
  const tok = await fetch(`${chat.url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Hello, world' }) });
  assert.equal(tok.status, 200, '/tokenize stays open');
  await assert.rejects(client().chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 404 && /The model `nope` does not exist/.test(e.message) && e.error?.type === 'NotFoundError');
  await assert.rejects(client().chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'x' }], max_tokens: 5000 }),
    (e) => e.status === 400 && /maximum context length is 2048 tokens/.test(e.message));
  const h = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
  const bad = await fetch(`${chat.url}/v1/chat/completions`, { method: 'POST', headers: h, body: '{"model":' });
  assert.equal(bad.status, 400);
  const e = await bad.json();
  assert.deepEqual(Object.keys(e.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(e.error.code, 400);
  const noMsgs = await fetch(`${chat.url}/v1/chat/completions`, { method: 'POST', headers: h, body: '{"model":"qwen"}' });
  assert.equal(noMsgs.status, 400);
  const forced = await fetch(`${chat.url}/v1/chat/completions`, { method: 'POST', headers: { ...h, 'x-sim-error': '503' }, body: '{}' });
  assert.equal(forced.status, 503);
});

test('the API key may come from VLLM_API_KEY, as in vLLM', async () => {
  const s = await startSim('/models/envkey', [], { env: { VLLM_API_KEY: 'from-env' } });
  assert.equal((await fetch(`${s.url}/v1/models`)).status, 401);
  assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: 'Bearer from-env' } })).status, 200);
  await s.stop();
});

test('tokenize and detokenize round-trip', async () => {
  const h = { 'content-type': 'application/json' };
  const t = await fetch(`${chat.url}/tokenize`, { method: 'POST', headers: h, body: JSON.stringify({ prompt: 'Héllo, 世界 🙂!' }) }).then((r) => r.json());
  assert.equal(t.count, t.tokens.length);
  assert.equal(t.max_model_len, 2048);
  const d = await fetch(`${chat.url}/detokenize`, { method: 'POST', headers: h, body: JSON.stringify({ tokens: t.tokens }) }).then((r) => r.json());
  assert.equal(d.prompt, 'Héllo, 世界 🙂!');
  const bad = await fetch(`${chat.url}/detokenize`, { method: 'POST', headers: h, body: JSON.stringify({ tokens: [0] }) });
  assert.equal(bad.status, 400);
});

test('runtime LoRA loading and unloading', async () => {
  const h = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
  const load = (b) => fetch(`${chat.url}/v1/load_lora_adapter`, { method: 'POST', headers: h, body: JSON.stringify(b) });
  const r = await load({ lora_name: 'new-lora', lora_path: '/adapters/new' });
  assert.equal(r.status, 200);
  assert.match(await r.text(), /added successfully/);
  assert.equal((await load({ lora_name: 'new-lora', lora_path: '/adapters/new' })).status, 400);
  assert.ok((await client().models.list()).data.some((m) => m.id === 'new-lora' && m.parent === 'qwen2.5-7b'));
  const un = (b) => fetch(`${chat.url}/v1/unload_lora_adapter`, { method: 'POST', headers: h, body: JSON.stringify(b) });
  assert.equal((await un({ lora_name: 'new-lora' })).status, 200);
  assert.equal((await un({ lora_name: 'new-lora' })).status, 404);
  const off = await fetch(`${embed.url}/v1/load_lora_adapter`, { method: 'POST', headers: h, body: '{}' });
  assert.equal(off.status, 404, 'without VLLM_ALLOW_RUNTIME_LORA_UPDATING the endpoint does not exist');
});

test('concurrency: --max-num-seqs run, the rest wait, a full queue gets 429; metrics see it', async () => {
  const s = await startSim('/models/busy', ['--max-num-seqs', '2', '--sim-max-waiting', '2', '--sim-ttft-ms', '400', '--served-model-name', 'busy']);
  const fire = () => fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'x', max_tokens: 2 }) });
  const all = Array.from({ length: 6 }, fire);
  await new Promise((r) => setTimeout(r, 150));
  const m = await fetch(`${s.url}/metrics`).then((r) => r.text());
  assert.match(m, /vllm:num_requests_running\{engine="0",model_name="busy"\} 2\n/);
  assert.match(m, /vllm:num_requests_waiting\{engine="0",model_name="busy"\} 2\n/);
  const statuses = (await Promise.all(all)).map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
  const after = await fetch(`${s.url}/metrics`).then((r) => r.text());
  assert.match(after, /vllm:request_success_total\{engine="0",model_name="busy",finished_reason="length"\} 4\n/);
  assert.match(after, /vllm:request_queue_time_seconds_count\{engine="0",model_name="busy"\} 4\n/);
  await s.stop();
});

test('streaming: chunks arrive spaced by the inter-token latency', async () => {
  const s = await startSim('/models/slowtok', ['--sim-itl-ms', '60', '--sim-ttft-ms', '100']);
  const t0 = Date.now();
  const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'x', max_tokens: 6, stream: true }) });
  const times = [];
  const dec = new TextDecoder();
  let buf = '';
  for await (const part of r.body) {
    buf += dec.decode(part);
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (ev.startsWith('data: {')) times.push(Date.now() - t0);
    }
  }
  assert.equal(times.length, 6);
  assert.ok(times[0] >= 90, `first token after the TTFT (${times[0]} ms)`);
  for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 45, `gap ${i}: ${times[i] - times[i - 1]} ms`);
  const m = await fetch(`${s.url}/metrics`).then((x) => x.text());
  assert.match(m, /vllm:inter_token_latency_seconds_count\{[^}]*\} 5\n/);
  await s.stop();
});

test('metrics carry the contract names with real counts', async () => {
  const m = await fetch(`${chat.url}/metrics`).then((r) => r.text());
  for (const name of ['vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:kv_cache_usage_perc',
    'vllm:prompt_tokens_total', 'vllm:generation_tokens_total', 'vllm:request_success_total', 'vllm:num_preemptions_total',
    'vllm:prefix_cache_queries_total', 'vllm:prefix_cache_hits_total', 'vllm:time_to_first_token_seconds_bucket',
    'vllm:inter_token_latency_seconds_bucket', 'vllm:e2e_request_latency_seconds_bucket', 'vllm:request_queue_time_seconds_bucket'])
    assert.ok(m.includes(name), name);
  const gen = Number(m.match(/vllm:generation_tokens_total\{engine="0",model_name="qwen2.5-7b"\} (\d+)/)[1]);
  assert.ok(gen > 30);
  const hits = Number(m.match(/vllm:prefix_cache_hits_total\{[^}]*\} (\d+)/)[1]);
  assert.ok(hits > 0, 'repeated prompts hit the prefix cache');
  assert.doesNotMatch(m, /gpu_cache_usage_perc|time_per_output_token/, 'names removed in vLLM 0.12/0.13 are gone');
});
