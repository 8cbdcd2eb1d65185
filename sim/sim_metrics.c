/* sim_metrics: /metrics as vLLM, SGLang or llama-server write it. */
#include "sim_metrics.h"

#include <string.h>

static void hist_render(struct am_buf *b, const char *name, const struct sim_hist *h, const char *labels)
{
	const char *bare = strchr(name, ':') ? strchr(name, ':') + 1 : name;
	am_buf_printf(b, "# HELP %s Histogram of %s.\n# TYPE %s histogram\n", name, bare, name);
	uint64_t cum = 0;
	for (int i = 0; i <= h->nb; i++) {
		cum += h->counts[i];
		if (i < h->nb)
			am_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, h->bounds[i], (unsigned long long)cum);
		else
			am_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
	}
	am_buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
		      (unsigned long long)h->count);
}

/* vllm/v1/metrics/loggers.py (PrometheusStatLogger) */
static void vllm(const struct sim *s, double kv, struct am_buf *b)
{
	char labels[400];
	am_fmt(labels, sizeof labels, "engine=\"0\",model_name=\"%s\"", s->name_json);
	am_buf_printf(b,
		      "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
		      "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{%s} %d\n"
		      "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
		      "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{%s} %d\n"
		      "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
		      "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{%s} %.6f\n"
		      "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
		      "# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{%s} %llu\n"
		      "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
		      "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{%s} %llu\n"
		      "# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.\n"
		      "# TYPE vllm:num_preemptions_total counter\nvllm:num_preemptions_total{%s} 0\n"
		      "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
		      "# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{%s} %llu\n"
		      "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.\n"
		      "# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{%s} %llu\n"
		      "# HELP vllm:request_success_total Count of successfully processed requests.\n"
		      "# TYPE vllm:request_success_total counter\n"
		      "vllm:request_success_total{%s,finished_reason=\"stop\"} %llu\n"
		      "vllm:request_success_total{%s,finished_reason=\"length\"} %llu\n"
		      "vllm:request_success_total{%s,finished_reason=\"abort\"} %llu\n",
		      labels, s->nrunning, labels, s->nwaiting, labels, kv, labels, (unsigned long long)s->prompt_tokens,
		      labels, (unsigned long long)s->gen_tokens, labels, labels, (unsigned long long)s->prefix_queries,
		      labels, (unsigned long long)s->prefix_hits, labels, (unsigned long long)s->success_stop, labels,
		      (unsigned long long)s->success_length, labels, (unsigned long long)s->success_abort);
	hist_render(b, "vllm:time_to_first_token_seconds", &s->ttft, labels);
	hist_render(b, "vllm:inter_token_latency_seconds", &s->itl, labels);
	hist_render(b, "vllm:e2e_request_latency_seconds", &s->e2e, labels);
	hist_render(b, "vllm:request_queue_time_seconds", &s->queue, labels);
}

/* python/sglang/srt/metrics/collector.py: the scheduler's gauges and the
 * tokenizer manager's counters and histograms (prometheus_client writes
 * every value as a float) */
static void sglang(const struct sim *s, double kv, struct am_buf *b)
{
	char labels[400];
	am_fmt(labels, sizeof labels, "model_name=\"%s\"", s->name_json);
	uint64_t used = (uint64_t)(kv * (double)s->kv_capacity);
	am_buf_printf(b,
		      "# HELP sglang:num_running_reqs The number of running requests.\n"
		      "# TYPE sglang:num_running_reqs gauge\nsglang:num_running_reqs{%s} %.1f\n"
		      "# HELP sglang:num_used_tokens The number of used tokens.\n"
		      "# TYPE sglang:num_used_tokens gauge\nsglang:num_used_tokens{%s} %.1f\n"
		      "# HELP sglang:token_usage The token usage.\n"
		      "# TYPE sglang:token_usage gauge\nsglang:token_usage{%s} %.6f\n"
		      "# HELP sglang:num_queue_reqs The number of requests in the waiting queue.\n"
		      "# TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs{%s} %.1f\n"
		      "# HELP sglang:prompt_tokens_total Number of prefill tokens processed.\n"
		      "# TYPE sglang:prompt_tokens_total counter\nsglang:prompt_tokens_total{%s} %.1f\n"
		      "# HELP sglang:generation_tokens_total Number of generation tokens processed.\n"
		      "# TYPE sglang:generation_tokens_total counter\nsglang:generation_tokens_total{%s} %.1f\n"
		      "# HELP sglang:num_requests_total Number of requests processed.\n"
		      "# TYPE sglang:num_requests_total counter\nsglang:num_requests_total{%s} %.1f\n",
		      labels, (double)s->nrunning, labels, (double)used, labels, kv, labels, (double)s->nwaiting, labels,
		      (double)s->prompt_tokens, labels, (double)s->gen_tokens, labels,
		      (double)(s->success_stop + s->success_length + s->success_abort));
	hist_render(b, "sglang:time_to_first_token_seconds", &s->ttft, labels);
	hist_render(b, "sglang:inter_token_latency_seconds", &s->itl, labels);
	hist_render(b, "sglang:e2e_request_latency_seconds", &s->e2e, labels);
}

/* tools/server/server-context.cpp, the /metrics handler of a current
 * llama-server: no labels, and no KV-cache gauge (older servers had
 * llamacpp:kv_cache_usage_ratio; aimaas reads its absence as 0) */
static void llamacpp(const struct sim *s, struct am_buf *b)
{
	double prompt_s = s->ttft.sum, gen_s = s->itl.sum;
	am_buf_printf(b,
		      "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
		      "# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total %llu\n"
		      "# HELP llamacpp:prompt_seconds_total Prompt process time\n"
		      "# TYPE llamacpp:prompt_seconds_total counter\nllamacpp:prompt_seconds_total %.3f\n"
		      "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
		      "# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total %llu\n"
		      "# HELP llamacpp:tokens_predicted_seconds_total Predict process time\n"
		      "# TYPE llamacpp:tokens_predicted_seconds_total counter\nllamacpp:tokens_predicted_seconds_total %.3f\n"
		      "# HELP llamacpp:n_decode_total Total number of llama_decode() calls\n"
		      "# TYPE llamacpp:n_decode_total counter\nllamacpp:n_decode_total %llu\n"
		      "# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.\n"
		      "# TYPE llamacpp:prompt_tokens_seconds gauge\nllamacpp:prompt_tokens_seconds %g\n"
		      "# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.\n"
		      "# TYPE llamacpp:predicted_tokens_seconds gauge\nllamacpp:predicted_tokens_seconds %g\n"
		      "# HELP llamacpp:requests_processing Number of requests processing.\n"
		      "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing %d\n"
		      "# HELP llamacpp:requests_deferred Number of requests deferred.\n"
		      "# TYPE llamacpp:requests_deferred gauge\nllamacpp:requests_deferred %d\n",
		      (unsigned long long)s->prompt_tokens, prompt_s, (unsigned long long)s->gen_tokens, gen_s,
		      (unsigned long long)s->gen_tokens, prompt_s > 0 ? (double)s->prompt_tokens / prompt_s : 0,
		      gen_s > 0 ? (double)s->gen_tokens / gen_s : 0, s->nrunning, s->nwaiting);
}

void sim_metrics_render(const struct sim *s, double kv, struct am_buf *out)
{
	switch (s->o.flavor) {
	case SIM_FLAVOR_SGLANG:
		sglang(s, kv, out);
		break;
	case SIM_FLAVOR_LLAMACPP:
		llamacpp(s, out);
		break;
	default:
		vllm(s, kv, out);
	}
}
