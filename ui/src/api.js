// The console talks to /api/v1 with the session cookie aimaas sets at login;
// writes carry the CSRF token from the aimaas_csrf cookie. Errors keep the
// server's message and field.
import { reactive } from 'vue';
import { ElMessage } from 'element-plus';

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

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf();
  const r = await fetch(`/api/v1${path}`, { method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

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
