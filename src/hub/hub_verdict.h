/* hub_verdict: whether a model (its facts, as inspected or as fetched from
 * a hub) can be served on this pool's GPUs, by the one planner: on the cards
 * as they are now, on the same cards once freed, or how many cards of the
 * pool's largest size it would need. The catalog's and the hub search's
 * verdicts. Pure: no I/O. */
#ifndef HUB_VERDICT_H
#define HUB_VERDICT_H

#include <jansson.h>

#include "../sched/am_capacity.h"

/* The verdict as JSON:
 *   {state, gpus, gpu_name, gpu_memory, node, max_model_len,
 *    need_bytes_per_gpu, text}
 * state: "fits_now" (free room now), "fits" (on this pool's cards once what
 * holds them is stopped), "needs" (gpus cards of gpu_memory bytes: more than
 * a node here has), "too_large" (no split over 64 cards of the pool's size),
 * "unsupported" (the quantization needs newer cards than any here), or
 * "invalid" (facts the planner refuses). A shorter context (8K) is tried
 * when the model's own does not fit; max_model_len says which ("shorter":
 * {gpus, max_model_len} when 8K would take fewer cards). A "needs" verdict
 * also says the most cards a node here has that can run it (widest). text is
 * English, for logs and API users; the console words it from the fields. */
json_t *hub_verdict(const struct am_capacity *c, json_t *facts, const char *name);

/* The oldest compute capability (major*10+minor) a quantization method
 * runs on in vLLM: awq 75, gptq 60, fp8 80 (weight-only below 89), 0: any. */
int hub_quant_min_cc(const char *method);

#endif
