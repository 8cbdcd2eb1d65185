// The console talks to /api/v1 with the session cookie aimaas sets at login;
// writes carry the CSRF token from the aimaas_csrf cookie. Errors keep the
// server's message and field.
import { reactive } from 'vue';
import { ElMessage } from 'element-plus';
import { useI18n } from 'vue-i18n';
import { i18n } from './i18n/index.js';

// Every request says the console's language: the server answers its error
// messages in it (zh-CN or en).
const lang = () => i18n.global.locale.value;

export function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)aimaas_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : '';
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.field = body?.error?.field || null;
    this.code = body?.error?.code || null;
  }
}

// One JSON request with the session: the body as JSON, the CSRF header on
// writes; the answer parsed, or an ApiError with the server's message.
async function request(url, method, body, signal) {
  const headers = { 'accept-language': lang() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf();
  const r = await fetch(url, { method, headers, signal, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

export const api = (method, path, body) => request(`/api/v1${path}`, method, body);

// Runs a page's (often polled) load: a failure is shown once until the next
// success, and a 401 not at all (the session ended; the router takes over).
export function loader(fn) {
  let last = '';
  return async () => {
    try {
      await fn();
      last = '';
    } catch (e) {
      if (e.status !== 401 && e.message !== last) ElMessage.error(e.message);
      last = e.message;
    }
  };
}

export const session = reactive({
  user: null,
  async load() {
    try { this.user = await api('GET', '/auth/me'); } catch { this.user = null; }
  },
  async login(username, password) {
    await api('POST', '/auth/login', { username, password });
    await this.load();
  },
  async logout() {
    try { await api('POST', '/auth/logout', {}); } finally { this.user = null; }
  },
});

// The OpenAI-compatible endpoint, called with the console's session (the
// gateway takes the cookie with the CSRF header, so no key is needed here).
export const v1 = (path, body, signal) => request(`/v1${path}`, body === undefined ? 'GET' : 'POST', body, signal);

// A streamed chat completion, with the reasoning kept apart: engines that
// parse reasoning (vLLM's --reasoning-parser, SGLang) send it as
// `reasoning_content` in the deltas, beside `content`. onDelta({ content,
// reasoning }) for each piece; resolves with { text, reasoning, usage,
// finish, ttft_ms, ms } when the stream ends.
export async function streamChat(body, onDelta, signal) {
  const t0 = performance.now();
  const r = await fetch('/v1/chat/completions', { method: 'POST', signal, credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf(), 'accept-language': lang() },
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

// Copies text to the clipboard and says so (or says to copy it by hand:
// browsers refuse the clipboard outside https and localhost).
export function useCopy() {
  const { t } = useI18n();
  return async (text) => {
    try { await navigator.clipboard.writeText(text); ElMessage.success(t('keys.copied')); } catch { ElMessage.warning(t('keys.copy_failed')); }
  };
}
