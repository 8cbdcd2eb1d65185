/* am_planner: memory estimates and GPU placement. */
#include "am_planner.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"

static json_int_t fi(json_t *f, const char *k)
{
	json_t *v = json_object_get(f, k);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static int is_pooling(const char *kind)
{
	return kind && (!strcmp(kind, "embedding") || !strcmp(kind, "rerank"));
}

/* Facts are stored at registration; an old row, or one written by an older
 * aimaas, may hold any number. Each one the planner multiplies is checked
 * against the inspector's limits first, so no product below can overflow
 * except the ones checked explicitly. */
static const struct {
	const char *key;
	json_int_t max;
} fact_limits[] = {
	{ "layers", 10000 },         { "hidden_size", 1000000 }, { "attention_heads", 65536 }, { "kv_heads", 65536 },
	{ "head_dim", 65536 },       { "max_context", 100000000 }, { "weight_bytes", (json_int_t)1 << 62 },
};

/* 0, or -1 with the field that is out of range and its value. */
static int facts_ok(json_t *facts, const char **field, json_int_t *value)
{
	for (size_t i = 0; i < sizeof fact_limits / sizeof fact_limits[0]; i++) {
		json_t *v = json_object_get(facts, fact_limits[i].key);
		json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
		if (n < 0 || n > fact_limits[i].max) {
			*field = fact_limits[i].key;
			*value = n;
			return -1;
		}
	}
	json_t *by = json_object_get(facts, "bytes_by_dtype");
	const char *k;
	json_t *v;
	json_object_foreach(by, k, v) {
		json_int_t n = json_integer_value(v);
		if (n < 0 || n > (json_int_t)1 << 62) {
			*field = "bytes_by_dtype";
			*value = n;
			return -1;
		}
	}
	return 0;
}

/* Weight bytes in GPU memory: float32 checkpoints load as 16-bit ("auto").
 * Each term is below 2^62 (facts_ok); the sum saturates at UINT64_MAX. */
static uint64_t weight_bytes(json_t *facts)
{
	json_t *by = json_object_get(facts, "bytes_by_dtype");
	if (!json_is_object(by) || !json_object_size(by))
		return (uint64_t)fi(facts, "weight_bytes");
	uint64_t b = 0;
	const char *k;
	json_t *v;
	json_object_foreach(by, k, v) {
		uint64_t x = !strcmp(k, "F32") ? (uint64_t)json_integer_value(v) / 2 : (uint64_t)json_integer_value(v);
		if (__builtin_add_overflow(b, x, &b))
			return UINT64_MAX;
	}
	return b;
}

struct est {
	uint64_t weights, kv_tok, overhead;
};

static struct est estimate(json_t *facts, const char *kind, int tp)
{
	struct est e;
	e.weights = weight_bytes(facts) / (uint64_t)tp;
	uint64_t kvh = (uint64_t)fi(facts, "kv_heads"), hd = (uint64_t)fi(facts, "head_dim"), layers = (uint64_t)fi(facts, "layers");
	uint64_t per_gpu_heads = kvh ? (kvh + (uint64_t)tp - 1) / (uint64_t)tp : 0;
	/* K and V, 16-bit, per layer and head: at most 4 * 10^4 * 2^16 * 2^16 < 2^58 */
	e.kv_tok = is_pooling(kind) ? 0 : 2 * layers * per_gpu_heads * hd * 2;
	uint64_t hidden = (uint64_t)fi(facts, "hidden_size");
	/* CUDA context (0.52 GiB measured on an H100) plus the activations of the
	 * profiling batch vLLM runs before it sizes the KV cache (< 2^38) */
	uint64_t act = hidden * 8192 * 2 * 12 / (uint64_t)tp;
	if (act < (uint64_t)(0.25 * GIB))
		act = (uint64_t)(0.25 * GIB);
	e.overhead = (uint64_t)(0.55 * GIB) + act + (kind && !strcmp(kind, "vlm") ? (uint64_t)(0.5 * GIB) : 0);
	return e;
}

/* Memory per GPU of one replica for a context of len tokens; UINT64_MAX
 * when it does not fit 64 bits (it then fits no card). */
static uint64_t need_of(const struct est *e, uint64_t len, uint64_t *kv)
{
	uint64_t k, n;
	if (__builtin_mul_overflow(e->kv_tok, len, &k) || __builtin_add_overflow(e->weights, k, &n) ||
	    __builtin_add_overflow(n, e->overhead, &n)) {
		if (kv)
			*kv = UINT64_MAX;
		return UINT64_MAX;
	}
	if (kv)
		*kv = k;
	return n;
}

static int divides(int heads, int tp)
{
	return heads <= 0 || heads % tp == 0;
}

static void list_tp(int heads, char *out, size_t size)
{
	struct am_buf b;
	am_buf_init(&b, size);
	for (int t = 1; t <= 64 && t <= heads; t++)
		if (heads % t == 0)
			am_buf_printf(&b, "%s%d", b.len ? ", " : "", t);
	am_strlcpy(out, am_buf_str(&b), size);
	am_buf_free(&b);
}

static uint64_t free_of(const struct am_plan_gpu *g)
{
	if (g->whole && g->reserved)
		return 0; /* one workload a card */
	uint64_t taken = g->used_other + g->reserved;
	return taken >= g->total ? 0 : g->total - taken;
}

/* What this deployment would reserve on g, or 0 when it does not fit.
 * kind NULL with fraction 0: exactly need (a training job). */
static uint64_t reserve_on(const struct am_plan_gpu *g, uint64_t avail, uint64_t need, const char *kind, double fraction)
{
	if (g->whole && avail < free_of(g))
		return 0; /* this plan took it already */
	if (fraction > 0) {
		uint64_t r = (uint64_t)(fraction * (double)g->total);
		return r >= need && r <= avail ? r : 0;
	}
	if (need > avail)
		return 0;
	if (is_pooling(kind))
		return need;
	uint64_t cap = (uint64_t)(0.9 * (double)g->total);
	uint64_t r = avail < cap ? avail : cap;
	return r >= need ? r : 0;
}

/* fmt: a template of am_msg's table (p->reason_zh gets its Chinese form) */
static void refuse(struct am_plan *p, const char *field, int capacity, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void refuse(struct am_plan *p, const char *field, int capacity, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	vsnprintf(p->reason, sizeof p->reason, fmt, ap);
	if (!am_msg_vzh(p->reason_zh, sizeof p->reason_zh, fmt, ap2))
		am_strlcpy(p->reason_zh, p->reason, sizeof p->reason_zh);
	va_end(ap2);
	va_end(ap);
	am_strlcpy(p->field, field, sizeof p->field);
	p->capacity = capacity;
	p->ok = 0;
}

/* A refusal built piece by piece; frees b. */
static void refuse_buf(struct am_plan *p, const char *field, int capacity, struct am_msg_buf *b)
{
	am_strlcpy(p->reason, am_buf_str(&b->en), sizeof p->reason);
	am_strlcpy(p->reason_zh, am_buf_str(&b->zh), sizeof p->reason_zh);
	am_utf8_scrub(p->reason);
	am_utf8_scrub(p->reason_zh);
	am_msg_buf_free(b);
	am_strlcpy(p->field, field, sizeof p->field);
	p->capacity = capacity;
	p->ok = 0;
}

/* The nodes of a GPU list: node[i] numbers GPU i's node (in order of first
 * appearance), order[] lists the GPUs node by node, node k's GPUs being
 * order[start[k] .. start[k+1]). Free with nodes_free. */
struct nodes {
	int n;
	int *node, *order, *start, *first; /* first[k]: a GPU of node k, for its name */
};

static void nodes_init(struct nodes *ns, const struct am_plan_gpu *gpus, int n)
{
	ns->n = 0;
	ns->node = am_malloc(sizeof(int) * (size_t)(n + 1));
	ns->order = am_malloc(sizeof(int) * (size_t)(n + 1));
	ns->start = am_malloc(sizeof(int) * (size_t)(n + 2));
	ns->first = am_malloc(sizeof(int) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		int k = ns->n;
		/* GPUs come grouped by node: the previous GPU's node is checked first */
		if (i > 0 && !strcmp(gpus[i].node, gpus[i - 1].node))
			k = ns->node[i - 1];
		else
			for (k = 0; k < ns->n && strcmp(gpus[ns->first[k]].node, gpus[i].node); k++)
				;
		if (k == ns->n)
			ns->first[ns->n++] = i;
		ns->node[i] = k;
	}
	for (int k = 0; k <= ns->n; k++)
		ns->start[k] = 0;
	for (int i = 0; i < n; i++)
		ns->start[ns->node[i] + 1]++;
	for (int k = 0; k < ns->n; k++)
		ns->start[k + 1] += ns->start[k];
	int *fill = am_malloc(sizeof(int) * (size_t)(ns->n + 1));
	for (int k = 0; k < ns->n; k++)
		fill[k] = ns->start[k];
	for (int i = 0; i < n; i++)
		ns->order[fill[ns->node[i]]++] = i;
	free(fill);
}

/* Frees what nodes_init allocated. */
static void nodes_free(struct nodes *ns)
{
	free(ns->node);
	free(ns->order);
	free(ns->start);
	free(ns->first);
}

/* "GPU 3" on a single node, "GPU 3 of node-b" when there are several. */
static void add_gpu_name(struct am_msg_buf *b, const struct am_plan_gpu *g, int multi)
{
	if (multi)
		am_msg_buf_printf(b, "GPU %d of %s", g->index, g->node);
	else
		am_msg_buf_printf(b, "GPU %d", g->index);
}

/* Picks tp distinct cards with room on node k for the replica whose GPUs
 * start at pick[0]: bin-pack takes the fullest that fit, spread the
 * emptiest (ties: the card fewer replicas of this request use). 1 with
 * pick[] and *score (the chosen cards' free memory), or 0. */
static int pick_on_node(const struct am_plan_gpu *gpus, const struct nodes *ns, int k, const uint64_t *avail,
			const int *used, int tp, uint64_t need, const char *kind, double fraction, int spread, int *pick,
			uint64_t *score)
{
	*score = 0;
	for (int j = 0; j < tp; j++) {
		int best = -1;
		for (int o = ns->start[k]; o < ns->start[k + 1]; o++) {
			int i = ns->order[o], same = 0;
			for (int q = 0; q < j; q++)
				same |= pick[q] == i;
			if (same || gpus[i].avoid || !reserve_on(&gpus[i], avail[i], need, kind, fraction))
				continue;
			if (best < 0 || (spread ? avail[i] > avail[best] : avail[i] < avail[best]) ||
			    (avail[i] == avail[best] && used[i] < used[best]))
				best = i;
		}
		if (best < 0)
			return 0;
		pick[j] = best;
		*score += avail[best];
	}
	return 1;
}

void am_planner_plan(const struct am_plan_gpu *gpus, int n, const struct am_plan_req *r, struct am_plan *p)
{
	memset(p, 0, sizeof *p);
	/* a training job (fixed need) reserves exactly its need, like a pooling model */
	const char *kind = r->need ? "embedding" : json_string_value(json_object_get(r->facts, "kind"));
	int heads = r->need ? 0 : (int)fi(r->facts, "attention_heads"), kvh = r->need ? 0 : (int)fi(r->facts, "kv_heads");
	if (r->tp < 1 || r->replicas < 1 || r->tp > AM_PLAN_MAX || r->replicas > AM_PLAN_MAX ||
	    r->tp * r->replicas > AM_PLAN_MAX) {
		refuse(p, "gpus_per_replica", 0, "GPUs per replica times replicas must be between 1 and %d", AM_PLAN_MAX);
		return;
	}
	struct nodes ns;
	nodes_init(&ns, gpus, n);
	int multi = ns.n > 1, widest = 0; /* the most GPUs one node has */
	for (int k = 0; k < ns.n; k++)
		if (ns.start[k + 1] - ns.start[k] > widest)
			widest = ns.start[k + 1] - ns.start[k];
	uint64_t *avail = NULL;
	int *used = NULL;
	const char *bad;
	json_int_t badv;
	if (r->need) {
		p->need = r->need;
		goto place;
	}
	if (facts_ok(r->facts, &bad, &badv) != 0) {
		refuse(p, "model", 0, "%s's facts are implausible ('%s' is %lld); re-inspect the model's files", r->model, bad,
		       (long long)badv);
		goto out;
	}
	char opts[256];
	if (!divides(heads, r->tp)) {
		list_tp(heads, opts, sizeof opts);
		refuse(p, r->npinned ? "gpus" : "gpus_per_replica", 0,
		       "tensor parallel size %d does not divide %s's %d attention heads; use %s GPU(s) per replica", r->tp,
		       r->model, heads, opts);
		goto out;
	}
	if (kvh > 0 && kvh % r->tp != 0 && r->tp % kvh != 0) {
		refuse(p, r->npinned ? "gpus" : "gpus_per_replica", 0,
		       "tensor parallel size %d does not divide %s's %d KV heads (nor they it); use a size that divides %d or is a multiple of %d",
		       r->tp, r->model, kvh, kvh, kvh);
		goto out;
	}
	int ctx = (int)fi(r->facts, "max_context");
	p->max_model_len = r->max_model_len > 0 ? r->max_model_len : ctx > 0 && ctx < 32768 ? ctx : 32768;
	if (ctx > 0 && p->max_model_len > ctx) {
		refuse(p, "max_model_len", 0, "max_model_len %d is longer than %s's context of %d tokens", p->max_model_len,
		       r->model, ctx);
		goto out;
	}
	struct est e = estimate(r->facts, kind, r->tp);
	p->weights = e.weights;
	p->kv_per_token = e.kv_tok;
	p->overhead = e.overhead;
	p->need = need_of(&e, (uint64_t)p->max_model_len, &p->kv);
place:
	if (n == 0) {
		refuse(p, "gpus_per_replica", 1, "there are no GPUs: %s needs %d GPU(s) with %.1f GiB each", r->model, r->tp,
		       p->need / GIB);
		goto out;
	}

	/* the biggest card first: can it ever fit? */
	uint64_t biggest = 0;
	for (int i = 0; i < n; i++)
		if (gpus[i].total > biggest)
			biggest = gpus[i].total;
	uint64_t usable = r->mem_fraction > 0 ? (uint64_t)(r->mem_fraction * (double)biggest)
					       : is_pooling(kind) ? biggest : (uint64_t)(0.9 * (double)biggest);
	if (p->need > usable && r->need) {
		refuse(p, "gpus", 1, "%s needs %.1f GiB on each GPU; the largest card has %.1f GiB", r->model, p->need / GIB,
		       usable / GIB);
		goto out;
	}
	if (p->need > usable) {
		struct am_msg_buf b;
		am_msg_buf_init(&b, sizeof p->reason - 1);
		am_msg_buf_printf(&b, "%s needs %.1f GiB per GPU with %d GPU(s) (weights %.1f + KV cache %.1f for %d tokens + "
				  "overhead %.1f GiB), but the largest card gives %.1f GiB",
				  r->model, p->need / GIB, r->tp, p->weights / GIB, p->kv / GIB, p->max_model_len,
				  p->overhead / GIB, usable / GIB);
		int hinted = 0;
		for (int t = r->tp + 1; t <= 64 && t <= widest; t++) {
			if (!divides(heads, t) || (kvh > 0 && kvh % t && t % kvh))
				continue;
			struct est e2 = estimate(r->facts, kind, t);
			uint64_t need2 = need_of(&e2, (uint64_t)p->max_model_len, NULL);
			if (need2 <= usable) {
				am_msg_buf_printf(&b, "; with %d GPUs it needs %.1f GiB each", t, need2 / GIB);
				hinted = 1;
				break;
			}
		}
		if (p->kv > 0 && p->weights < usable && p->weights + p->overhead < usable) {
			/* on these cards, a shorter context (a way out that needs no more cards) */
			uint64_t fit = (usable - p->weights - p->overhead) / p->kv_per_token;
			if (fit >= 1024) {
				am_msg_buf_printf(&b, hinted ? "; or with max_model_len %llu would fit" : "; max_model_len %llu would fit",
						  (unsigned long long)(fit / 1024 * 1024));
				hinted = 1;
			}
		}
		if (!hinted) {
			int best = 0;
			for (int t = 1; t <= 64 && t <= widest; t++)
				if (divides(heads, t) && !(kvh > 0 && kvh % t && t % kvh))
					best = t;
			if (best > 0) {
				struct est e3 = estimate(r->facts, kind, best);
				am_msg_buf_printf(&b, "; no split over these %d GPUs fits (over %d it needs %.1f GiB each): "
						  "a quantized model or larger cards would", widest, best,
						  need_of(&e3, (uint64_t)p->max_model_len, NULL) / GIB);
			}
		}
		refuse_buf(p, r->mem_fraction > 0 ? "gpu_memory_utilization" : "gpus_per_replica", 1, &b);
		goto out;
	}

	avail = am_malloc(sizeof(uint64_t) * (size_t)n);
	used = am_calloc((size_t)n, sizeof(int));
	for (int i = 0; i < n; i++)
		avail[i] = free_of(&gpus[i]);
	int total = r->tp * r->replicas;
	if (r->npinned) {
		for (int k = 0; k < total; k++) {
			int i = r->pinned[k], i0 = r->pinned[k - k % r->tp];
			if (i < 0 || i >= n || i0 < 0 || i0 >= n || r->npinned != total) {
				refuse(p, "gpus", 0, "%d pinned GPU(s) for %d replica(s) of %d, or one not in the list", r->npinned,
				       r->replicas, r->tp);
				goto out;
			}
			if (strcmp(gpus[i].node, gpus[i0].node) != 0) {
				refuse(p, "gpus", 0,
				       "the GPUs of one replica must be on one node: GPU %d of %s and GPU %d of %s are not",
				       gpus[i0].index, gpus[i0].node, gpus[i].index, gpus[i].node);
				goto out;
			}
			uint64_t res = reserve_on(&gpus[i], avail[i], p->need, kind, r->mem_fraction);
			if (!res) {
				struct am_msg_buf b;
				am_msg_buf_init(&b, sizeof p->reason - 1);
				am_msg_buf_printf(&b, "needs %.1f GiB on each pinned GPU; ", p->need / GIB);
				add_gpu_name(&b, &gpus[i], multi);
				/* the card as it is, then what this plan's earlier replicas would take of it */
				am_msg_buf_printf(&b, " (%s) has %.1f GiB free", gpus[i].name, free_of(&gpus[i]) / GIB);
				if (gpus[i].holders[0])
					am_msg_buf_printf(&b, " (reserved by %s)", gpus[i].holders);
				if (avail[i] < free_of(&gpus[i]))
					am_msg_buf_printf(&b, "; the replicas placed before it in this plan would take %.1f GiB of that",
							  (free_of(&gpus[i]) - avail[i]) / GIB);
				refuse_buf(p, "gpus", 1, &b);
				goto out;
			}
			p->choice[k] = i;
			p->reserve[k] = res;
			avail[i] -= res;
		}
	} else {
		for (int rep = 0; rep < r->replicas; rep++) {
			int pick[AM_PLAN_MAX], best = -1;
			uint64_t best_score = 0;
			for (int k = 0; k < ns.n; k++) {
				uint64_t score;
				if (!pick_on_node(gpus, &ns, k, avail, used, r->tp, p->need, kind, r->mem_fraction, r->spread, pick,
						  &score))
					continue;
				if (best < 0 || (r->spread ? score > best_score : score < best_score)) {
					best = k;
					best_score = score;
				}
			}
			if (best < 0) {
				struct am_msg_buf b;
				am_msg_buf_init(&b, sizeof p->reason - 1);
				int have = 0, fitting = 0, nfit[8] = { 0 };
				int avoided = 0;
				for (int i = 0; i < n; i++) {
					if (gpus[i].avoid) {
						avoided++;
						continue;
					}
					have += reserve_on(&gpus[i], free_of(&gpus[i]), p->need, kind, r->mem_fraction) != 0;
					if (reserve_on(&gpus[i], avail[i], p->need, kind, r->mem_fraction)) {
						fitting++;
						if (ns.node[i] < 8)
							nfit[ns.node[i]]++;
					}
				}
				if (multi && r->tp > 1 && fitting >= r->tp) {
					/* enough cards, but no node has a whole replica's worth */
					am_msg_buf_printf(&b, "tensor parallel size %d needs %d GPUs with %.1f GiB free on one node "
							  "(a replica never spans nodes); ", r->tp, r->tp, p->need / GIB);
					for (int k = 0; k < ns.n && k < 8; k++)
						am_msg_buf_printf(&b, k ? ", %s has %d free" : "%s has %d free", gpus[ns.first[k]].node,
								  nfit[k]);
					if (ns.n > 8)
						am_msg_buf_printf(&b, ", and %d more nodes", ns.n - 8);
					refuse_buf(p, "gpus_per_replica", 1, &b);
					goto out;
				}
				if (r->need)
					am_msg_buf_printf(&b, "needs %.1f GiB on each of %d GPU(s) on one node; %d GPU(s) have that free",
							  p->need / GIB, total, have);
				else
					am_msg_buf_printf(&b, "needs %d × %.1f GiB (%s: weights %.1f + KV cache %.1f + overhead %.1f GiB per GPU); "
							  "%d GPU(s) have that free", total, p->need / GIB, r->model, p->weights / GIB,
							  p->kv / GIB, p->overhead / GIB, have);
				if (avoided)
					am_msg_buf_printf(&b, "; %d GPU(s) on tainted nodes are used only when pinned", avoided);
				int shown = 0;
				for (int i = 0; i < n && shown < 8; i++) {
					if (gpus[i].avoid || reserve_on(&gpus[i], free_of(&gpus[i]), p->need, kind, r->mem_fraction))
						continue;
					am_msg_buf_printf(&b, "; ");
					add_gpu_name(&b, &gpus[i], multi);
					am_msg_buf_printf(&b, " has %.1f GiB free", free_of(&gpus[i]) / GIB);
					if (gpus[i].holders[0])
						am_msg_buf_printf(&b, " (reserved by %s)", gpus[i].holders);
					if (gpus[i].used_other > (uint64_t)(0.25 * GIB))
						am_msg_buf_printf(&b, " (%.1f GiB used by other processes)", gpus[i].used_other / GIB);
					shown++;
				}
				refuse_buf(p, r->need ? "gpus" : "replicas", 1, &b);
				goto out;
			}
			pick_on_node(gpus, &ns, best, avail, used, r->tp, p->need, kind, r->mem_fraction, r->spread, pick,
				     &best_score);
			for (int j = 0; j < r->tp; j++) {
				int i = pick[j], k = rep * r->tp + j;
				uint64_t res = reserve_on(&gpus[i], avail[i], p->need, kind, r->mem_fraction);
				p->choice[k] = i;
				p->reserve[k] = res;
				avail[i] -= res;
				used[i]++;
			}
		}
	}
	if (r->need) { /* a training job: exactly its need on each card */
		for (int k = 0; k < total; k++)
			p->reserve[k] = r->need;
		p->ok = 1;
		goto out;
	}
	/* one share for every GPU of an instance: the smallest, and never below need */
	double frac = 1.0;
	for (int k = 0; k < total; k++) {
		double f = (double)p->reserve[k] / (double)gpus[p->choice[k]].total;
		if (f < frac)
			frac = f;
	}
	frac = floor(frac * 100.0 + 1e-6) / 100.0;
	for (int k = 0; k < total; k++) {
		const struct am_plan_gpu *g = &gpus[p->choice[k]];
		if (frac * (double)g->total < (double)p->need)
			frac = ceil((double)p->need / (double)g->total * 100.0) / 100.0;
	}
	p->fraction = frac;
	for (int k = 0; k < total; k++) {
		p->reserve[k] = (uint64_t)(frac * (double)gpus[p->choice[k]].total);
		if (gpus[p->choice[k]].cc_major && gpus[p->choice[k]].cc_major < 8) {
			const char *dt = json_string_value(json_object_get(r->facts, "torch_dtype"));
			if (dt && !strcmp(dt, "bfloat16"))
				p->dtype = "half";
		}
	}
	for (int k = 0; k < total; k++)
		if (gpus[p->choice[k]].whole) {
			snprintf(p->note, sizeof p->note,
				 "on %s each replica takes whole cards (the cluster's device plugin does not share them)",
				 gpus[p->choice[k]].node);
			break;
		}
	uint64_t per = p->reserve[0];
	p->concurrency = p->kv && per > p->weights + p->overhead ? (double)(per - p->weights - p->overhead) / (double)p->kv : 0;
	p->ok = 1;
out:
	free(avail);
	free(used);
	nodes_free(&ns);
}
