/* sim_metrics: the simulated server's /metrics, in the Prometheus text and
 * with the names of the engine it plays (sim_opts.flavor): vLLM's
 * (vllm:num_requests_running, ...), SGLang's (sglang:num_running_reqs,
 * ...), llama-server's (llamacpp:requests_processing, ...). aimaas reads
 * each by its engine's names (src/engine/am_engine.c). */
#ifndef SIM_METRICS_H
#define SIM_METRICS_H

#include "base/am_buf.h"
#include "sim_state.h"

/* Appends s's counters and gauges to out; kv: the KV cache's use (0-1). */
void sim_metrics_render(const struct sim *s, double kv, struct am_buf *out);

#endif
