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

test('answers in the question\'s language: Chinese for Chinese, streamed a character a token, with a Markdown list', async () => {
  const long = await startSim('/models/qwen', ['--served-model-name', 'qwen', '--sim-output-tokens', '160']);
  try {
    const c = new OpenAI({ apiKey: 'none', baseURL: `${long.url}/v1`, maxRetries: 0 });
    const messages = [{ role: 'user', content: '北京今天的天气怎么样？' }];
    const r = await c.chat.completions.create({ model: 'qwen', messages, seed: 3 });
    const text = r.choices[0].message.content;
    assert.equal(r.usage.completion_tokens, 160);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.match(text, /^(关于|你问到了|针对)「北京今天的天气怎么样」/, text);
    assert.match(text, /模拟器/);
    assert.match(text, /\n- \*\*问题\*\*：北京今天的天气怎么样\n- \*\*/, 'a Markdown list the console renders');
    assert.ok(!/[A-Za-z]{4,}/.test(text.replace(/aimaas-sim|vLLM|Markdown|max_tokens|GPU/g, '')), `no English: ${text}`);
    const again = await c.chat.completions.create({ model: 'qwen', messages, seed: 3 });
    assert.equal(again.choices[0].message.content, text, 'the same prompt and seed, the same answer');
    const other = await c.chat.completions.create({ model: 'qwen', messages, seed: 4 });
    assert.notEqual(other.choices[0].message.content, text, 'another seed, another answer');

    const s = await c.chat.completions.create({ model: 'qwen', messages, seed: 3, max_tokens: 20, stream: true,
      stream_options: { include_usage: true } });
    const chunks = [];
    for await (const x of s) chunks.push(x);
    const deltas = chunks.map((x) => x.choices[0]?.delta?.content).filter(Boolean);
    assert.equal(deltas.length, 20, 'one chunk per token');
    assert.ok(deltas.every((d) => [...d].length <= 2), `a Chinese token is one or two characters: ${JSON.stringify(deltas)}`);
    assert.ok(text.startsWith(deltas.join('')), 'the start of the full answer');
    assert.equal(chunks.at(-1).usage.completion_tokens, 20);
    assert.equal(chunks.find((x) => x.choices[0]?.finish_reason)?.choices[0].finish_reason, 'length');

    const en = await c.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'How do I deploy a model?' }] });
    assert.match(en.choices[0].message.content, /"How do I deploy a model"/);
    assert.match(en.choices[0].message.content, /simulator/);
    assert.ok(!/[\u4e00-\u9fff]/.test(en.choices[0].message.content), 'no Chinese in an English answer');
  } finally {
    await long.stop();
  }
});

test('rerank and embeddings understand Chinese: character pairs, not whole runs', async () => {
  const body = { model: 'bge-reranker', query: '北京的天气', documents: ['上海股票市场今日收盘上涨。', '北京天气预报：今天晴，最高气温 30 度。', '天津的美食小吃很多。'] };
  const r = await fetch(`${rerank.url}/v1/rerank`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    .then((x) => x.json());
  assert.equal(r.results[0].index, 1, JSON.stringify(r.results));
  assert.equal(r.results.at(-1).index, 0, 'the stock market shares nothing with the weather in Beijing');
  assert.ok(r.results[0].relevance_score > r.results[1].relevance_score + 0.1);
  const c = new OpenAI({ apiKey: 'none', baseURL: `${embed.url}/v1`, maxRetries: 0 });
  const e = await c.embeddings.create({ model: 'bge-large', input: ['北京的天气', '北京今天天气晴朗', '上海股票上涨'], encoding_format: 'float' });
  const cos = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
  const [q, near, far] = e.data.map((x) => x.embedding);
  assert.ok(cos(q, near) > cos(q, far) + 0.2, `${cos(q, near)} vs ${cos(q, far)}`);
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

// ---- structured outputs, the Responses API, images for a text-only model ----

// A small JSON Schema validator: enough of draft 2020-12 for the schemas
// clients send (pydantic, zod-to-json-schema). Returns the first error.
function schemaError(schema, v, root = schema, path = '$') {
  if (schema === true) return null;
  if (schema === false) return `${path}: false schema`;
  if (schema.$ref) {
    const target = schema.$ref.slice(2).split('/').reduce((o, k) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], root);
    return target ? schemaError(target, v, root, path) : `${path}: unresolved ${schema.$ref}`;
  }
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(v)) return `${path}: not the const`;
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) return `${path}: not in enum`;
  if (schema.anyOf && schema.anyOf.every((s) => schemaError(s, v, root, path))) return `${path}: no anyOf branch`;
  if (schema.oneOf && schema.oneOf.filter((s) => !schemaError(s, v, root, path)).length !== 1) return `${path}: not exactly one oneOf`;
  for (const s of schema.allOf ?? []) { const e = schemaError(s, v, root, path); if (e) return e; }
  const typeOf = (x) => (x === null ? 'null' : Array.isArray(x) ? 'array' : Number.isInteger(x) ? 'integer' : typeof x);
  if (schema.type) {
    const types = [].concat(schema.type);
    const t = typeOf(v);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) return `${path}: ${t} is not ${types}`;
  }
  if (typeof v === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) return `${path}: below minimum`;
    if (schema.maximum !== undefined && v > schema.maximum) return `${path}: above maximum`;
    if (typeof schema.exclusiveMinimum === 'number' && v <= schema.exclusiveMinimum) return `${path}: not above exclusiveMinimum`;
    if (schema.multipleOf && Math.abs(v / schema.multipleOf - Math.round(v / schema.multipleOf)) > 1e-9) return `${path}: not a multiple`;
  }
  if (typeof v === 'string') {
    if (schema.minLength !== undefined && [...v].length < schema.minLength) return `${path}: shorter than minLength`;
    if (schema.maxLength !== undefined && [...v].length > schema.maxLength) return `${path}: longer than maxLength`;
    if (schema.format === 'date-time' && Number.isNaN(Date.parse(v))) return `${path}: not a date-time`;
    if (schema.format === 'email' && !/^[^@\s]+@[^@\s]+$/.test(v)) return `${path}: not an email`;
  }
  if (Array.isArray(v)) {
    if (schema.minItems !== undefined && v.length < schema.minItems) return `${path}: fewer than minItems`;
    if (schema.maxItems !== undefined && v.length > schema.maxItems) return `${path}: more than maxItems`;
    if (schema.uniqueItems && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) return `${path}: items not unique`;
    for (let i = 0; i < v.length; i++) {
      const e = schemaError(schema.prefixItems?.[i] ?? schema.items ?? true, v[i], root, `${path}[${i}]`);
      if (e) return e;
    }
  }
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const k of schema.required ?? []) if (!(k in v)) return `${path}: missing required ${k}`;
    for (const [k, x] of Object.entries(v)) {
      const sub = schema.properties?.[k] ?? schema.additionalProperties ?? true;
      if (sub === false) return `${path}: ${k} not allowed`;
      const e = schemaError(sub, x, root, `${path}.${k}`);
      if (e) return e;
    }
  }
  return null;
}

// What LangChain / the AI SDK send for a pydantic- or zod-shaped answer.
const PERSON = {
  type: 'object', additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1 }, age: { type: 'integer', minimum: 18, maximum: 99 },
    score: { type: 'number', exclusiveMinimum: 0, maximum: 1 }, email: { type: 'string', format: 'email' },
    born: { type: 'string', format: 'date-time' }, role: { type: 'string', enum: ['admin', 'user'] },
    kind: { const: 'person' }, active: { type: 'boolean' }, nickname: { anyOf: [{ type: 'string', maxLength: 8 }, { type: 'null' }] },
    tags: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 3, uniqueItems: true },
    address: { $ref: '#/$defs/Address' }, friends: { type: 'array', items: { $ref: '#/$defs/Friend' } },
    meta: { allOf: [{ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] }, { properties: { b: { type: ['string', 'null'] } }, required: ['b'] }] },
  },
  required: ['name', 'age', 'score', 'email', 'born', 'role', 'kind', 'active', 'nickname', 'tags', 'address', 'friends', 'meta'],
  $defs: {
    Address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string', maxLength: 6 } }, required: ['city', 'zip'] },
    Friend: { type: 'object', properties: { name: { type: 'string' }, since: { type: 'integer', minimum: 2000 } }, required: ['name', 'since'] },
  },
};

test('response_format json_schema: a document the schema accepts, plain and streamed; max_tokens cuts it as vLLM does', async () => {
  const response_format = { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } };
  const messages = [{ role: 'user', content: 'Describe a person.' }];
  const r = await client().chat.completions.create({ model: 'qwen', messages, response_format });
  assert.equal(r.choices[0].finish_reason, 'stop');
  const doc = JSON.parse(r.choices[0].message.content);
  assert.equal(schemaError(PERSON, doc), null, r.choices[0].message.content);
  assert.equal(doc.address.city, 'Beijing');
  assert.ok(doc.friends.length >= 1 && doc.tags.length >= 2);
  const s = await client().chat.completions.create({ model: 'qwen', messages, response_format, stream: true });
  let text = '';
  let chunks = 0;
  for await (const c of s) { text += c.choices[0]?.delta?.content ?? ''; chunks++; }
  assert.ok(chunks > 10, 'the document comes token by token');
  assert.equal(schemaError(PERSON, JSON.parse(text)), null, text);
  assert.equal(text, r.choices[0].message.content, 'the same request gives the same document');
  const cut = await client().chat.completions.create({ model: 'qwen', messages, response_format, max_tokens: 7 });
  assert.equal(cut.choices[0].finish_reason, 'length');
  assert.equal(cut.usage.completion_tokens, 7);
  assert.throws(() => JSON.parse(cut.choices[0].message.content), SyntaxError, 'truncated JSON is invalid, as vLLM returns it');
  assert.ok(r.choices[0].message.content.startsWith(cut.choices[0].message.content));
  // a schema given as vLLM's structured_outputs (and the older guided_json), and one the output cannot satisfy
  const so = await fetch(`${chat.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen', messages, structured_outputs: { json: PERSON } }) }).then((x) => x.json());
  assert.equal(schemaError(PERSON, JSON.parse(so.choices[0].message.content)), null);
  const gj = await fetch(`${chat.url}/v1/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen', prompt: 'x', guided_json: JSON.stringify({ type: 'array', items: { type: 'integer' }, minItems: 3 }) }) }).then((x) => x.json());
  assert.deepEqual(JSON.parse(gj.choices[0].text), [1, 2, 3]);
  for (const [bad, re] of [[{ type: 'json_schema' }, /response_format\.json_schema is required/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'integer', minimum: 5, maximum: 1 } } }, /cannot be satisfied/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/$defs/Nope' } } }, /does not resolve/],
    [{ type: 'xml' }, /response_format\.type must be one of/]]) {
    const e = await client().chat.completions.create({ model: 'qwen', messages, response_format: bad }).catch((x) => x);
    assert.equal(e.status, 400, JSON.stringify(bad));
    assert.match(e.error.message, re);
  }
});

test('response_format json_object: a JSON object, plain and streamed (Dify JSON mode)', async () => {
  const messages = [{ role: 'system', content: 'Answer in JSON.' }, { role: 'user', content: 'What is a GPU?' }];
  const r = await client().chat.completions.create({ model: 'qwen', messages, response_format: { type: 'json_object' } });
  const doc = JSON.parse(r.choices[0].message.content);
  assert.equal(typeof doc, 'object');
  assert.ok(doc && !Array.isArray(doc));
  const s = await client().chat.completions.create({ model: 'qwen', messages, response_format: { type: 'json_object' }, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
  assert.deepEqual(JSON.parse(text), doc);
  // in echo mode a JSON object the user wrote comes back as the answer
  const echo = await startSim('/models/echo-json', ['--sim-mode', 'echo']);
  const e = await fetch(`${echo.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: '{"city": "Paris", "n": 2}' }], response_format: { type: 'json_object' } }) }).then((x) => x.json());
  assert.deepEqual(JSON.parse(e.choices[0].message.content), { city: 'Paris', n: 2 });
  await echo.stop();
});

test('tools: tool_choice "required" and a named function give arguments the parameters schema accepts', async () => {
  const params = { type: 'object', properties: { person: { $ref: '#/$defs/P' }, items: { type: 'array', minItems: 1, items: { type: 'object',
    properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } }, required: ['sku', 'qty'] } } }, required: ['person', 'items'],
  $defs: { P: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] } } };
  const tools = [{ type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {} } } },
    { type: 'function', function: { name: 'extract', description: 'Extract the order', parameters: params } }];
  const messages = [{ role: 'user', content: 'Order two apples for Ann.' }];
  const named = await client().chat.completions.create({ model: 'qwen', messages, tools, tool_choice: { type: 'function', function: { name: 'extract' } } });
  const call = named.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, 'extract');
  assert.equal(schemaError(params, JSON.parse(call.function.arguments)), null, call.function.arguments);
  const req = await client().chat.completions.create({ model: 'qwen', messages, tools, tool_choice: 'required' });
  assert.equal(req.choices[0].message.tool_calls.length, 1);
  assert.equal(req.choices[0].finish_reason, 'tool_calls');
  const unknown = await client().chat.completions.create({ model: 'qwen', messages, tools, tool_choice: { type: 'function', function: { name: 'nope' } } }).catch((x) => x);
  assert.equal(unknown.status, 400);
});

test('responses: create and stream with the openai client, events in vLLM order', async () => {
  const r = await client().responses.create({ model: 'qwen', instructions: 'Be brief.', input: 'Say something.', max_output_tokens: 9, temperature: 0.2 });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_[0-9a-f]{32}$/);
  assert.equal(r.status, 'completed');
  assert.equal(r.model, 'qwen2.5-7b', 'vLLM names the served model');
  assert.equal(r.instructions, 'Be brief.');
  assert.equal(r.temperature, 0.2);
  assert.equal(r.max_output_tokens, 9);
  assert.equal(r.output.length, 1);
  const msg = r.output[0];
  assert.deepEqual([msg.type, msg.role, msg.status, msg.content[0].type], ['message', 'assistant', 'completed', 'output_text']);
  assert.match(msg.id, /^msg_/);
  assert.deepEqual(msg.content[0].annotations, []);
  assert.ok(r.output_text.length > 0);
  assert.equal(r.output_text, msg.content[0].text);
  assert.equal(r.usage.output_tokens, 9);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + 9);
  assert.equal(r.usage.input_tokens_details.cached_tokens, 0);
  assert.equal(r.usage.output_tokens_details.reasoning_tokens, 0);

  const input = [{ role: 'user', content: [{ type: 'input_text', text: 'Say something.' }] }];
  const stream = client().responses.stream({ model: 'qwen', instructions: 'Be brief.', input, max_output_tokens: 9, temperature: 0.2 });
  const events = [];
  for await (const ev of stream) events.push(ev);
  const final = await stream.finalResponse();
  assert.deepEqual(events.map((e) => e.type).filter((t, i, a) => t !== a[i - 1]), ['response.created', 'response.in_progress',
    'response.output_item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done', 'response.completed']);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i), 'sequence_number counts from 0');
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  assert.equal(deltas.length, 9, 'one delta per token');
  const joined = deltas.map((e) => e.delta).join('');
  assert.equal(joined, events.find((e) => e.type === 'response.output_text.done').text);
  assert.equal(joined, r.output_text, 'the same input gives the same text, streamed or not');
  assert.equal(final.output_text, joined);
  assert.equal(final.status, 'completed');
  assert.equal(events[0].response.status, 'in_progress');
  assert.deepEqual(events[0].response.output, []);
  const itemId = events.find((e) => e.type === 'response.output_item.added').item.id;
  assert.ok(deltas.every((e) => e.item_id === itemId && e.output_index === 0 && e.content_index === 0));

  // the wire: `event:` names its data's type, and no [DONE]
  const raw = await fetch(`${chat.url}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen', input: 'hi', max_output_tokens: 3, stream: true }) });
  assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
  const body = await raw.text();
  assert.doesNotMatch(body, /\[DONE\]/);
  const blocks = body.trim().split('\n\n');
  for (const b of blocks) {
    const [ev, data] = b.split('\n');
    assert.equal(ev.slice('event: '.length), JSON.parse(data.slice('data: '.length)).type);
  }
  // text.format json_schema under the Responses API; a previous response the server never stored
  const js = await client().responses.create({ model: 'qwen', input: 'A person', text: { format: { type: 'json_schema', name: 'person', schema: PERSON, strict: true } } });
  assert.equal(schemaError(PERSON, JSON.parse(js.output_text)), null);
  const prev = await client().responses.create({ model: 'qwen', input: 'x', previous_response_id: 'resp_gone' }).catch((x) => x);
  assert.equal(prev.status, 404);
  assert.deepEqual(prev.error, { message: "Response with id 'resp_gone' not found.", type: 'invalid_request_error', param: 'response_id', code: 404 });
  const got = await client().responses.retrieve(r.id).catch((x) => x);
  assert.equal(got.status, 404, 'nothing is stored (vLLM without VLLM_ENABLE_RESPONSES_API_STORE)');
  assert.equal(got.error.message, `Response with id '${r.id}' not found.`);
  const noInput = await client().responses.create({ model: 'qwen' }).catch((x) => x);
  assert.equal(noInput.status, 400);
  assert.match(noInput.error.message, /'input' is required/);
  const wrong = await fetch(`${embed.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bge-large', input: 'x' }) });
  assert.equal(wrong.status, 400);
  assert.match((await wrong.json()).error.message, /does not support Responses API/);
});

test('an image for a text-only model: vLLM\'s 400 "… is not a multimodal model"; a vision model takes it', async () => {
  const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } };
  const messages = [{ role: 'user', content: [{ type: 'text', text: 'What is in this picture?' }, image] }];
  const e = await client().chat.completions.create({ model: 'qwen', messages }).catch((x) => x);
  assert.equal(e.status, 400);
  const qwenPath = join(dir, 'Qwen2.5-7B-Instruct');
  assert.deepEqual(e.error, { message: `${qwenPath} is not a multimodal model`, type: 'BadRequestError', param: null, code: 400 });
  const raw = await fetch(`${chat.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen', messages, stream: true }) });
  assert.equal(raw.status, 400, 'refused before the stream starts');
  assert.deepEqual(Object.keys(await raw.json()), ['error']);
  const ri = await client().responses.create({ model: 'qwen', input: [{ role: 'user', content: [{ type: 'input_text', text: 'x' },
    { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=' }] }] }).catch((x) => x);
  assert.equal(ri.status, 400);
  assert.match(ri.error.message, /is not a multimodal model$/);
  const vl = await startSim(modelDir('Qwen2.5-VL-7B-Instruct', { architectures: ['Qwen2_5_VLForConditionalGeneration'], num_attention_heads: 28,
    hidden_size: 3584, max_position_embeddings: 32768, vision_config: { depth: 32 } }), ['--served-model-name', 'qwen-vl']);
  const ok = await fetch(`${vl.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen-vl', messages }) }).then((x) => x.json());
  assert.equal(ok.choices[0].finish_reason, 'stop');
  await vl.stop();
});

test('hostile input: an error message cut mid-character, absurd numbers in config.json', async () => {
  // 'a' + 'é'… makes the 1024-byte message end inside a character
  const name = `a${'é'.repeat(700)}`;
  const r = await fetch(`${chat.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: name, messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(r.status, 404);
  const e = await r.json();
  assert.equal(e.error.param, 'model');
  assert.ok(e.error.message.startsWith('The model `aé'));
  assert.equal(await chat.health(), 200, 'still serving');
  const wildDir = modelDir('wild-numbers', {});
  writeFileSync(join(wildDir, 'config.json'), '{"architectures":["BertModel"],"hidden_size":3000000000,' +
    '"num_attention_heads":-9223372036854775808,"max_position_embeddings":1000000000000}'); // exact int64, not a JS double
  const wild = await startSim(wildDir, ['--served-model-name', 'wild']);
  const emb = await fetch(`${wild.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'wild', input: 'hello' }) }).then((x) => x.json());
  assert.equal(emb.data[0].embedding.length, 1024, 'an out-of-range hidden_size is unknown: the default size');
  const tok = await fetch(`${wild.url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'hi' }) }).then((x) => x.json());
  assert.equal(tok.max_model_len, 4096, 'an out-of-range max_position_embeddings is unknown: the default context');
  await wild.stop();
});

test('answers carry the first served name (or the adapter), not the alias asked for, as vLLM', async () => {
  const r = await client().chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  assert.equal(r.model, 'qwen2.5-7b');
  const s = await client().chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true });
  for await (const c of s) assert.equal(c.model, 'qwen2.5-7b');
  const c = await client().completions.create({ model: 'faq-lora', prompt: 'x', max_tokens: 2 });
  assert.equal(c.model, 'faq-lora');
});
