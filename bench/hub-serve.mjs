// The fake hub for bench/hub.sh: one repository of FILES safetensors files of MB MiB each (random
// bytes: hashed for real), plus a config; prints the endpoint and the file URLs, then serves.
import { startHub } from '../tests/fakes/hub.mjs';
import { randomBytes } from 'node:crypto';

const n = Number(process.env.FILES || 4), mb = Number(process.env.MB || 128);
const files = { 'config.json': JSON.stringify({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 64,
  intermediate_size: 128, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 1, vocab_size: 256,
  max_position_embeddings: 2048, torch_dtype: 'bfloat16' }) };
for (let i = 0; i < n; i++) {
  // a valid safetensors header over random bytes: one U8 tensor filling the file
  const size = mb * 1024 * 1024;
  let hdr = JSON.stringify({ [`w${i}`]: { dtype: 'U8', shape: [size], data_offsets: [0, size] } });
  hdr += ' '.repeat((8 - (hdr.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hdr.length));
  files[`model-0000${i + 1}-of-0000${n}.safetensors`] = Buffer.concat([len, Buffer.from(hdr), randomBytes(size)]);
}
const hub = await startHub({ repos: { 'bench/big': { files } } });
const sha = (await (await fetch(`${hub.url}/api/models/bench/big/revision/main`)).json()).sha;
console.log(JSON.stringify({ url: hub.url, urls: Object.keys(files).filter((f) => f.endsWith('.safetensors'))
  .map((f) => `${hub.url}/bench/big/resolve/${sha}/${f}`) }));
process.on('SIGTERM', async () => { await hub.stop(); process.exit(0); });
