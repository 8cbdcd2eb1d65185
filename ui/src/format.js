// Small formatters shared by the pages.
export const gib = (b) => (b == null ? '—' : `${(b / 2 ** 30).toFixed(1)} GiB`);
export const billions = (n) => (n ? `${(n / 1e9).toFixed(n >= 1e10 ? 0 : 1)}B` : '—');
export const tagType = (s) => ({ running: 'success', succeeded: 'success', ready: 'success', failed: 'danger',
  stopped: 'info', queued: 'warning', starting: 'warning', pending: 'warning', waiting: 'warning', backoff: 'danger', idle: 'info', loading: 'warning' }[s] || 'info');
export const items = (r) => (Array.isArray(r) ? r : r?.items ?? []);
// Bytes as MiB below a GiB, else GiB; seconds as "42s", "3m 5s", "2h 10m".
export const size = (b) => (b == null ? '—' : b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);
export const duration = (s) => (s == null ? '—' : s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s`
  : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`);
// A hub download's progress (GET /models/{id}/download): percent, bar colour, words.
export const dlPct = (d) => (d.bytes_total ? Math.min(100, Math.floor((100 * d.bytes_done) / d.bytes_total)) : 0);
export const dlStatus = (d) => (d.state === 'failed' ? 'exception' : d.state === 'succeeded' ? 'success' : d.state === 'paused' ? 'warning' : '');
export function dlText(t, d) {
  if (d.state === 'failed') return t('models.dl_failed', { why: d.error });
  if (d.state === 'running') return t('models.dl_running', { done: size(d.bytes_done), total: size(d.bytes_total),
    speed: size(d.bytes_per_second || 0), eta: duration(d.eta_s) });
  return t(`models.dl_${d.state}`);
}
