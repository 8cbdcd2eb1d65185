// A streamed chat completion for the playground, with the reasoning kept
// apart: engines that parse reasoning (vLLM's --reasoning-parser, SGLang)
// send it as `reasoning_content` in the deltas, beside `content`.
// onDelta({ content, reasoning }) for each piece; resolves with
// { text, reasoning, usage, finish, ttft_ms, ms } when the stream ends.
// (api.js's streamChat passes only the content.)
import { ApiError, csrf } from './api.js';
import { i18n } from './i18n/index.js';

export async function streamChatParts(body, onDelta, signal) {
  const t0 = performance.now();
  const r = await fetch('/v1/chat/completions', { method: 'POST', signal, credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf(), 'accept-language': i18n.global.locale.value },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }) });
  if (!r.ok) {
    let json = null;
    try { json = await r.json(); } catch { json = null; }
    throw new ApiError(r.status, json);
  }
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '', text = '', reasoning = '', usage = null, ttft = null, finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue; // ": keepalive" comments
        const data = line.slice(5).trim();
        if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.error) throw new ApiError(500, j);
        if (j.usage) usage = j.usage;
        const c = j.choices?.[0];
        if (c?.finish_reason) finish = c.finish_reason;
        const content = c?.delta?.content || '';
        const think = c?.delta?.reasoning_content || c?.delta?.reasoning || '';
        if (content || think) {
          if (ttft === null) ttft = performance.now() - t0;
          text += content;
          reasoning += think;
          onDelta({ content, reasoning: think });
        }
      }
    }
  }
  return { text, reasoning, usage, finish, ttft_ms: ttft, ms: performance.now() - t0 };
}
