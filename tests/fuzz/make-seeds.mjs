// Seeds for the model readers' fuzz targets (make fuzz): the real configs of
// tests/fixtures/models, and generated GGUF and safetensors headers.
// Usage: node tests/fuzz/make-seeds.mjs <out-dir>
import fs from 'node:fs';
import path from 'node:path';

const out = process.argv[2] || 'build/fuzz';
const dir = (n) => { const d = path.join(out, n); fs.mkdirSync(d, { recursive: true }); return d; };
const cfgDir = dir('corpus-config'), ggufDir = dir('corpus-gguf'), stDir = dir('corpus-safetensors');

const models = 'tests/fixtures/models';
for (const m of fs.readdirSync(models)) {
  const p = path.join(models, m, 'config.json');
  if (fs.existsSync(p)) fs.copyFileSync(p, path.join(cfgDir, `${m}.json`));
}
fs.writeFileSync(path.join(cfgDir, 'hostile.json'),
  '{"hidden_size": -9223372036854775808, "num_attention_heads": -1, "text_config": {"num_hidden_layers": 2}}');
fs.writeFileSync(path.join(cfgDir, 'moe.json'), JSON.stringify({
  architectures: ['MixtralForCausalLM'], hidden_size: 4096, num_attention_heads: 32, num_key_value_heads: 8,
  num_hidden_layers: 32, num_local_experts: 8, max_position_embeddings: 32768, vocab_size: 32000,
  quantization_config: { quant_method: 'awq', bits: 4 }, vision_config: {}, auto_map: {},
}));

// GGUF v3: little-endian; strings are u64 length + bytes
class W {
  constructor() { this.parts = []; }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.parts.push(b); return this; }
  u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v))); this.parts.push(b); return this; }
  str(s) { const b = Buffer.from(s); this.u64(b.length); this.parts.push(b); return this; }
  buf() { return Buffer.concat(this.parts); }
}
function gguf({ arch = 'llama', kv = [], tensors = [] }) {
  const w = new W();
  w.parts.push(Buffer.from('GGUF'));
  w.u32(3).u64(tensors.length).u64(kv.length + 1);
  w.str('general.architecture').u32(8).str(arch);
  for (const [k, t, v] of kv) {
    w.str(k).u32(t);
    if (t === 8) w.str(v);
    else if (t === 9) { w.u32(v.type).u64(v.items.length); for (const x of v.items) v.type === 8 ? w.str(x) : w.u32(x); }
    else if (t === 10 || t === 11) w.u64(v);
    else w.u32(v);
  }
  for (const { name, dims, type } of tensors) {
    w.str(name).u32(dims.length);
    for (const d of dims) w.u64(d);
    w.u32(type).u64(0);
  }
  return w.buf();
}
fs.writeFileSync(path.join(ggufDir, 'llama.gguf'), gguf({
  kv: [['general.name', 8, 'tiny'], ['llama.context_length', 4, 4096], ['llama.block_count', 4, 2],
    ['llama.embedding_length', 4, 256], ['llama.attention.head_count', 4, 8], ['llama.attention.head_count_kv', 4, 2],
    ['general.file_type', 4, 15], ['tokenizer.chat_template', 8, '{{ messages }}'],
    ['tokenizer.ggml.tokens', 9, { type: 8, items: ['a', 'b', '<s>'] }],
    ['tokenizer.ggml.token_type', 9, { type: 4, items: [1, 1, 3] }]],
  tensors: [{ name: 'tok_embd.weight', dims: [256, 3], type: 0 }, { name: 'blk.0.attn_q.weight', dims: [256, 256], type: 12 },
    { name: 'blk.0.ffn_up.weight', dims: [256, 512], type: 8 }],
}));
fs.writeFileSync(path.join(ggufDir, 'hostile.gguf'), gguf({
  kv: [['llama.embedding_length', 11, -(2n ** 63n)], ['llama.attention.head_count', 5, -1]],
  tensors: [{ name: 'w', dims: [2 ** 32, 2 ** 32], type: 1 }],
}));
fs.writeFileSync(path.join(ggufDir, 'bert.gguf'), gguf({
  arch: 'bert', kv: [['bert.context_length', 10, 512], ['bert.embedding_length', 10, 1024], ['bert.attention.head_count', 10, 16]],
  tensors: [{ name: 'w', dims: [1024, 1024], type: 30 }],
}));

// safetensors: 8 bytes of data size (the fuzz target's framing), then the JSON header
function st(room, header) {
  const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(room));
  return Buffer.concat([b, Buffer.from(JSON.stringify(header))]);
}
fs.writeFileSync(path.join(stDir, 'good'), st(11, {
  __metadata__: { format: 'pt' }, a: { dtype: 'F4', shape: [3, 2], data_offsets: [0, 3] },
  b: { dtype: 'BF16', shape: [2, 2], data_offsets: [3, 11] },
}));
fs.writeFileSync(path.join(stDir, 'dtypes'), st(1 << 20, Object.fromEntries(
  ['F64', 'I64', 'U64', 'F32', 'I32', 'U32', 'F16', 'BF16', 'I16', 'U16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0']
    .map((d, i) => [`t${i}`, { dtype: d, shape: [4, 4], data_offsets: [0, 16 * ({ F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2 }[d] || 1)] }]))));
fs.writeFileSync(path.join(stDir, 'hostile'), Buffer.concat([Buffer.alloc(8),
  Buffer.from('{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[-9223372036854775808,0]}}')]));

// datasets: the first byte picks the type (0 JSON, 1 JSONL, 2 CSV; +4 a CSV mapping; +8 sharegpt, +16 openai)
const dsDir = dir('corpus-dataset');
const seed = (name, b, text) => fs.writeFileSync(path.join(dsDir, name), Buffer.concat([Buffer.from([b]), Buffer.from(text)]));
seed('alpaca.json', 0, JSON.stringify([{ instruction: 'a', input: '', output: 'b', history: [['q', 'r']] }, { instruction: '', output: 1 }]));
seed('chat.jsonl', 1 + 16, '{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}\n\nnot json\n');
seed('share.jsonl', 1 + 8, '{"conversations":[{"from":"human","value":"h"},{"from":"gpt","value":"g"}],"chosen":{"value":"c"},"rejected":{"value":"r"}}\n');
seed('qa.csv', 2 + 4, 'x,q,a\r\n1,"he said ""hi""","two\nlines"\r\n\r\n,,\n');
seed('plain.csv', 2, 'instruction,output,input,system\na,b,c,d\n');
