// Small formatters shared by the pages.
export const gib = (b) => (b == null ? '—' : `${(b / 2 ** 30).toFixed(1)} GiB`);
export const billions = (n) => (n ? `${(n / 1e9).toFixed(n >= 1e10 ? 0 : 1)}B` : '—');
export const tagType = (s) => ({ running: 'success', succeeded: 'success', ready: 'success', failed: 'danger',
  stopped: 'info', queued: 'warning', starting: 'warning', pending: 'warning', waiting: 'warning', backoff: 'danger' }[s] || 'info');
export const items = (r) => (Array.isArray(r) ? r : r?.items ?? []);
