/* hub_verdict: see hub_verdict.h. */
#include "hub_verdict.h"

#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"

#define IMAGINED 16 /* the most cards one replica is imagined on (two 8-GPU servers' worth) */

int hub_quant_min_cc(const char *m)
{
	if (!m)
		return 0;
	if (!strcmp(m, "awq") || !strcmp(m, "awq_marlin"))
		return 75;
	if (!strcmp(m, "gptq") || !strcmp(m, "gptq_marlin"))
		return 60;
	if (!strcmp(m, "fp8") || !strcmp(m, "compressed-tensors"))
		return 80;
	if (!strcmp(m, "bitsandbytes"))
		return 70;
	return 0;
}

/* "NVIDIA GeForce RTX 2080 Ti" -> "RTX 2080 Ti" */
static void short_name(const char *name, char *out, size_t size)
{
	const char *s = name && *name ? name : "GPU";
	if (!strncmp(s, "NVIDIA ", 7))
		s += 7;
	if (!strncmp(s, "GeForce ", 8))
		s += 8;
	am_strlcpy(out, s, size);
}

/* The first plan over g[0..n) for tp = 1, 2, 3, … (up to max_tp; the
 * planner refuses the sizes that do not divide the heads) at the given
 * context (0: the model's own), into *p with its tp; 1 when one fits. */
static int first_fit(const struct am_plan_gpu *g, int n, json_t *facts, const char *name, int ctx, int max_tp,
		     struct am_plan *p, int *tp)
{
	for (int t = 1; t <= max_tp && t <= AM_PLAN_MAX; t++) {
		struct am_plan_req rq;
		memset(&rq, 0, sizeof rq);
		rq.facts = facts;
		rq.model = name;
		rq.tp = t;
		rq.replicas = 1;
		rq.max_model_len = ctx;
		am_planner_plan(g, n, &rq, p);
		if (p->ok) {
			*tp = t;
			return 1;
		}
		if (!p->capacity && strcmp(p->field, "gpus_per_replica") && strcmp(p->field, "gpus"))
			return 0; /* bad facts or context: no size helps */
	}
	return 0;
}

/* Tries the model's context, then 8K when that is shorter. */
static int fit_any_ctx(const struct am_plan_gpu *g, int n, json_t *facts, const char *name, int max_tp,
		       struct am_plan *p, int *tp)
{
	json_int_t ctx = json_integer_value(json_object_get(facts, "max_context"));
	if (first_fit(g, n, facts, name, 0, max_tp, p, tp))
		return 1;
	return (ctx <= 0 || ctx > 8192) && first_fit(g, n, facts, name, 8192, max_tp, p, tp);
}

static json_t *answer(const char *state, int gpus, const char *gpu_name, uint64_t mem, const char *node,
		      const struct am_plan *p, const char *text)
{
	return json_pack("{s:s,s:i,s:s,s:I,s:s,s:i,s:I,s:s}", "state", state, "gpus", gpus, "gpu_name", gpu_name,
			 "gpu_memory", (json_int_t)mem, "node", node, "max_model_len", p ? p->max_model_len : 0,
			 "need_bytes_per_gpu", (json_int_t)(p ? p->need : 0), "text", text);
}

/* With the model's own context on tp cards: would an 8K context need fewer?
 * Adds {gpus, max_model_len} as "shorter" to v and to its text. */
static void shorter(const struct am_plan_gpu *g, int n, json_t *facts, const char *name, int tp, json_t *v)
{
	json_int_t ctx = json_integer_value(json_object_get(facts, "max_context"));
	int max_len = (int)json_integer_value(json_object_get(v, "max_model_len"));
	struct am_plan *p = am_calloc(1, sizeof *p);
	int t2 = 0;
	if (tp > 1 && max_len > 8192 && (ctx <= 0 || ctx > 8192) && first_fit(g, n, facts, name, 8192, tp / 2, p, &t2)) {
		json_object_set_new(v, "shorter", json_pack("{s:i,s:i}", "gpus", t2, "max_model_len", 8192));
		char text[600];
		am_fmt(text, sizeof text, "%s; or %d with an 8K context", json_string_value(json_object_get(v, "text")), t2);
		json_object_set_new(v, "text", json_string(text));
	}
	free(p);
}

/* The verdict of plan p (tp cards of g), on free cards now or once freed. */
static json_t *fitting(const struct am_plan_gpu *g, int n, const struct am_plan *p, int tp, json_t *facts,
		       const char *name, int now)
{
	const struct am_plan_gpu *at = &g[p->choice[0]];
	char sn[96], text[512];
	short_name(at->name, sn, sizeof sn);
	am_fmt(text, sizeof text, "fits %son %d × %s%s%s", now ? "now " : "", tp, sn,
	       p->max_model_len == 8192 ? " with an 8K context" : "", now ? "" : " once they are free");
	json_t *out = answer(now ? "fits_now" : "fits", tp, at->name, at->total, at->node, p, text);
	shorter(g, n, facts, name, tp, out);
	return out;
}

json_t *hub_verdict(const struct am_capacity *c, json_t *facts, const char *name)
{
	char text[512], sn[96];
	struct am_plan *p = am_calloc(1, sizeof *p);
	json_t *out = NULL;
	const char *qm = json_string_value(json_object_get(json_object_get(facts, "quantization"), "method"));
	int min_cc = hub_quant_min_cc(qm);
	/* the cards this build runs on */
	struct am_plan_gpu *g = am_malloc(sizeof *g * (size_t)(c->n ? c->n : 1));
	int n = 0, best_cc = 0;
	for (int i = 0; i < c->n; i++) {
		int cc = c->gpus[i].cc_major * 10 + c->gpus[i].cc_minor;
		if (cc > best_cc)
			best_cc = cc;
		if (cc >= min_cc || !c->gpus[i].cc_major)
			g[n++] = c->gpus[i];
	}
	if (c->n && !n) {
		am_fmt(text, sizeof text, "%s needs compute capability %d.%d or newer; the newest card here is %d.%d",
		       qm ? qm : "this build", min_cc / 10, min_cc % 10, best_cc / 10, best_cc % 10);
		out = answer("unsupported", 0, "", 0, "", NULL, text);
		goto done;
	}
	int widest = 0, tp = 0;
	{
		struct am_capacity v = { .gpus = g, .n = n, .cap = n };
		const char *wn;
		widest = am_capacity_widest(&v, &wn);
	}
	/* 1. now, on what is free */
	if (n && fit_any_ctx(g, n, facts, name, widest, p, &tp)) {
		out = fitting(g, n, p, tp, facts, name, 1);
		goto done;
	}
	if (n && !p->capacity && strcmp(p->field, "gpus_per_replica") && strcmp(p->field, "gpus")) {
		out = answer("invalid", 0, "", 0, "", p, p->reason);
		goto done;
	}
	/* 2. the same cards, once what holds them is stopped */
	for (int i = 0; i < n; i++) {
		g[i].reserved = 0;
		g[i].used_other = 0;
		g[i].holders[0] = '\0';
	}
	if (n && fit_any_ctx(g, n, facts, name, widest, p, &tp)) {
		out = fitting(g, n, p, tp, facts, name, 0);
		goto done;
	}
	/* 3. how many cards of the pool's largest size (80 GiB when there are none) */
	uint64_t big = 0;
	const struct am_plan_gpu *model = NULL;
	for (int i = 0; i < n; i++)
		if (g[i].total > big) {
			big = g[i].total;
			model = &g[i];
		}
	struct am_plan_gpu *v = am_calloc(IMAGINED, sizeof *v);
	for (int i = 0; i < IMAGINED; i++) {
		if (model)
			am_strlcpy(v[i].name, model->name, sizeof v[i].name);
		else
			am_strlcpy(v[i].name, "80 GiB GPU", sizeof v[i].name);
		am_strlcpy(v[i].node, "imagined", sizeof v[i].node);
		am_fmt(v[i].id, sizeof v[i].id, "imagined-%d", i);
		v[i].index = i;
		v[i].total = model ? model->total : 80ull << 30;
		v[i].cc_major = model ? model->cc_major : 9;
		v[i].cc_minor = model ? model->cc_minor : 0;
	}
	short_name(v[0].name, sn, sizeof sn);
	if (fit_any_ctx(v, IMAGINED, facts, name, IMAGINED, p, &tp)) {
		if (n)
			am_fmt(text, sizeof text, "needs %d GPUs of %.0f GiB (%s) on one node; the largest node here has %d", tp,
			       (double)v[0].total / GIB, sn, widest);
		else
			am_fmt(text, sizeof text, "needs %d GPUs of %.0f GiB; this pool has no GPUs", tp, (double)v[0].total / GIB);
		out = answer("needs", tp, v[0].name, v[0].total, "", p, text);
		json_object_set_new(out, "widest", json_integer(widest)); /* the most cards (of this build's kind) a node has */
		shorter(v, IMAGINED, facts, name, tp, out);
	} else {
		am_fmt(text, sizeof text, "too large for %d GPUs of %.0f GiB (%s)", IMAGINED, (double)v[0].total / GIB, sn);
		out = answer("too_large", 0, v[0].name, v[0].total, "", NULL, text);
	}
	free(v);
done:
	free(g);
	free(p);
	return out;
}
