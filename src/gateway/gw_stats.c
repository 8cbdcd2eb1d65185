/* gw_stats: the gateway's per-model series (requests by status, tokens,
 * requests in flight, time to first token and duration histograms) and
 * refusals by reason. Each worker counts its own under its smu; /metrics
 * sums them on the control plane's loop. */
#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "gw_internal.h"

static const double bounds[GW_NB] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120 };


struct gw_mstats *gw_stats(struct gw_worker *w, const char *model)
{
	for (int i = 0; i < w->nstats; i++)
		if (!strcmp(w->stats[i].model, model))
			return &w->stats[i];
	if (w->nstats >= 512)
		return &w->stats[w->nstats - 1]; /* bounded: names beyond go to the last series */
	w->stats = am_realloc(w->stats, (size_t)(w->nstats + 1) * sizeof *w->stats);
	struct gw_mstats *m = &w->stats[w->nstats++];
	memset(m, 0, sizeof *m);
	am_strlcpy(m->model, model, sizeof m->model);
	return m;
}

void gw_stats_observe(uint64_t *buckets, double v)
{
	int i = 0;
	while (i < GW_NB && v > bounds[i])
		i++;
	buckets[i]++;
}

static void merge(struct gw_mstats *into, const struct gw_mstats *m)
{
	for (int i = 0; i < m->nst; i++) {
		int k;
		for (k = 0; k < into->nst; k++)
			if (into->st[k].status == m->st[i].status)
				break;
		if (k == into->nst && into->nst < 12)
			into->st[into->nst++].status = m->st[i].status;
		if (k < into->nst)
			into->st[k].n += m->st[i].n;
	}
	into->prompt += m->prompt;
	into->completion += m->completion;
	for (int b = 0; b <= GW_NB; b++) {
		into->ttft[b] += m->ttft[b];
		into->dur[b] += m->dur[b];
	}
	into->ttft_n += m->ttft_n;
	into->dur_n += m->dur_n;
	into->ttft_sum += m->ttft_sum;
	into->dur_sum += m->dur_sum;
	into->inflight += m->inflight;
}

static void hist(struct am_buf *o, const char *name, const char *model, const uint64_t *b, uint64_t n, double sum)
{
	uint64_t cum = 0;
	for (int i = 0; i <= GW_NB; i++) {
		cum += b[i];
		if (i < GW_NB)
			am_buf_printf(o, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, model, bounds[i], (unsigned long long)cum);
		else
			am_buf_printf(o, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", name, model, (unsigned long long)cum);
	}
	am_buf_printf(o, "%s_sum{model=\"%s\"} %.6f\n%s_count{model=\"%s\"} %llu\n", name, model, sum, name, model,
		      (unsigned long long)n);
}

void gw_stats_render(struct am_gateway *g, struct am_buf *o)
{
	struct gw_mstats *all = NULL;
	int n = 0;
	for (int w = 0; w < g->nworkers; w++) {
		struct gw_worker *wk = &g->workers[w];
		pthread_mutex_lock(&wk->smu);
		for (int i = 0; i < wk->nstats; i++) {
			int k;
			for (k = 0; k < n; k++)
				if (!strcmp(all[k].model, wk->stats[i].model))
					break;
			if (k == n) {
				all = am_realloc(all, (size_t)(n + 1) * sizeof *all);
				memset(&all[n], 0, sizeof all[n]);
				am_strlcpy(all[n].model, wk->stats[i].model, sizeof all[n].model);
				n++;
			}
			merge(&all[k], &wk->stats[i]);
		}
		pthread_mutex_unlock(&wk->smu);
	}
	am_buf_adds(o, "# HELP aimaas_gateway_requests_total Gateway requests by model and status.\n"
		       "# TYPE aimaas_gateway_requests_total counter\n");
	for (int i = 0; i < n; i++)
		for (int k = 0; k < all[i].nst; k++)
			am_buf_printf(o, "aimaas_gateway_requests_total{model=\"%s\",status=\"%d\"} %llu\n", all[i].model,
				      all[i].st[k].status, (unsigned long long)all[i].st[k].n);
	static const char *const reasons[GW_REJECT_N] = {
		[GW_REJECT_INVALID] = "invalid",           [GW_REJECT_UNAUTHORIZED] = "unauthorized",
		[GW_REJECT_FORBIDDEN] = "forbidden",       [GW_REJECT_UNKNOWN_MODEL] = "unknown_model",
		[GW_REJECT_NOT_FOUND] = "not_found",       [GW_REJECT_METHOD] = "method_not_allowed",
		[GW_REJECT_TOO_LARGE] = "too_large",       [GW_REJECT_RATE_LIMITED] = "rate_limited",
		[GW_REJECT_QUOTA] = "quota_exceeded",      [GW_REJECT_UNAVAILABLE] = "unavailable",
		[GW_REJECT_OTHER] = "other",
	};
	static const int statuses[GW_REJECT_N] = {
		[GW_REJECT_INVALID] = 400,   [GW_REJECT_UNAUTHORIZED] = 401, [GW_REJECT_FORBIDDEN] = 403,
		[GW_REJECT_UNKNOWN_MODEL] = 404, [GW_REJECT_NOT_FOUND] = 404, [GW_REJECT_METHOD] = 405,
		[GW_REJECT_TOO_LARGE] = 413, [GW_REJECT_RATE_LIMITED] = 429, [GW_REJECT_QUOTA] = 429,
		[GW_REJECT_UNAVAILABLE] = 503, [GW_REJECT_OTHER] = 0,
	};
	am_buf_adds(o, "# HELP aimaas_gateway_rejected_total Gateway requests refused before an engine saw them, by reason.\n"
		       "# TYPE aimaas_gateway_rejected_total counter\n");
	for (int r = 0; r < GW_REJECT_N; r++) {
		uint64_t sum = 0;
		for (int w = 0; w < g->nworkers; w++)
			sum += atomic_load(&g->workers[w].rejected[r]);
		if (statuses[r])
			am_buf_printf(o, "aimaas_gateway_rejected_total{reason=\"%s\",status=\"%d\"} %llu\n", reasons[r],
				      statuses[r], (unsigned long long)sum);
		else
			am_buf_printf(o, "aimaas_gateway_rejected_total{reason=\"%s\"} %llu\n", reasons[r],
				      (unsigned long long)sum);
	}
	long long held = 0;
	for (int w = 0; w < g->nworkers; w++)
		held += atomic_load(&g->workers[w].nheld);
	am_buf_printf(o, "# HELP aimaas_gateway_held_requests Requests waiting for a deployment scaled to zero to start.\n"
			 "# TYPE aimaas_gateway_held_requests gauge\naimaas_gateway_held_requests %lld\n", held);
	am_buf_adds(o, "# HELP aimaas_gateway_prompt_tokens_total Prompt tokens by model.\n"
		       "# TYPE aimaas_gateway_prompt_tokens_total counter\n");
	for (int i = 0; i < n; i++)
		am_buf_printf(o, "aimaas_gateway_prompt_tokens_total{model=\"%s\"} %llu\n", all[i].model,
			      (unsigned long long)all[i].prompt);
	am_buf_adds(o, "# HELP aimaas_gateway_completion_tokens_total Completion tokens by model.\n"
		       "# TYPE aimaas_gateway_completion_tokens_total counter\n");
	for (int i = 0; i < n; i++)
		am_buf_printf(o, "aimaas_gateway_completion_tokens_total{model=\"%s\"} %llu\n", all[i].model,
			      (unsigned long long)all[i].completion);
	am_buf_adds(o, "# HELP aimaas_gateway_requests_in_flight Requests being answered.\n"
		       "# TYPE aimaas_gateway_requests_in_flight gauge\n");
	for (int i = 0; i < n; i++)
		am_buf_printf(o, "aimaas_gateway_requests_in_flight{model=\"%s\"} %lld\n", all[i].model, all[i].inflight);
	am_buf_adds(o, "# HELP aimaas_gateway_time_to_first_token_seconds Time to the first streamed token.\n"
		       "# TYPE aimaas_gateway_time_to_first_token_seconds histogram\n");
	for (int i = 0; i < n; i++)
		hist(o, "aimaas_gateway_time_to_first_token_seconds", all[i].model, all[i].ttft, all[i].ttft_n, all[i].ttft_sum);
	am_buf_adds(o, "# HELP aimaas_gateway_request_duration_seconds Whole request time.\n"
		       "# TYPE aimaas_gateway_request_duration_seconds histogram\n");
	for (int i = 0; i < n; i++)
		hist(o, "aimaas_gateway_request_duration_seconds", all[i].model, all[i].dur, all[i].dur_n, all[i].dur_sum);
	free(all);
}
