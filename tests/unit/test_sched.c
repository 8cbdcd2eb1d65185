/* The planner over several nodes, the capacity view and pinned GPUs. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "am_test.h"
#include "sched/am_capacity.h"
#include "sched/am_planner.h"

static void add(struct am_capacity *c, const char *node, int index, double gib, double reserved_gib)
{
	struct am_plan_gpu *g = am_capacity_add(c);
	snprintf(g->id, sizeof g->id, "GPU-%s-%d", node, index);
	snprintf(g->node, sizeof g->node, "%s", node);
	snprintf(g->name, sizeof g->name, "Test Card");
	g->index = index;
	g->total = (uint64_t)(gib * GIB);
	g->reserved = (uint64_t)(reserved_gib * GIB);
	g->cc_major = 9;
}

static json_t *small_llm(void)
{
	return json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:I}", "kind", "llm", "attention_heads", 8, "kv_heads", 8, "head_dim",
			 64, "layers", 2, "hidden_size", 512, "max_context", 1024, "weight_bytes", (json_int_t)(20 * GIB));
}

static void req_init(struct am_plan_req *r, json_t *facts, int tp, int replicas)
{
	memset(r, 0, sizeof *r);
	r->facts = facts;
	r->model = "m";
	r->tp = tp;
	r->replicas = replicas;
}

static void tp2_split_across_nodes_refused(void)
{
	struct am_capacity c;
	am_capacity_init(&c, "local");
	add(&c, "node-a", 0, 24, 0);
	add(&c, "node-a", 1, 24, 24); /* full */
	add(&c, "node-b", 0, 24, 24);
	add(&c, "node-b", 1, 24, 0);
	json_t *f = small_llm();
	struct am_plan_req r;
	req_init(&r, f, 2, 1);
	struct am_plan p;
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	CHECK(p.capacity == 1);
	CHECK_STR(p.field, "gpus_per_replica");
	CHECK(strstr(p.reason, "tensor parallel size 2 needs 2 GPUs") != NULL);
	CHECK(strstr(p.reason, "node-a has 1 free, node-b has 1 free") != NULL);
	/* one GPU per replica fits either node */
	req_init(&r, f, 1, 2);
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(p.ok);
	CHECK(p.choice[0] != p.choice[1]);
	json_decref(f);
	am_capacity_free(&c);
}

static void tp2_placed_on_one_node(void)
{
	struct am_capacity c;
	am_capacity_init(&c, "local");
	add(&c, "node-a", 0, 24, 0);
	add(&c, "node-a", 1, 24, 24);
	add(&c, "node-a", 2, 24, 24);
	add(&c, "node-b", 0, 24, 0);
	add(&c, "node-b", 1, 24, 0);
	add(&c, "node-c", 0, 24, 0);
	json_t *f = small_llm();
	struct am_plan_req r;
	req_init(&r, f, 2, 1);
	struct am_plan p;
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(p.ok);
	CHECK_STR(c.gpus[p.choice[0]].node, "node-b");
	CHECK_STR(c.gpus[p.choice[1]].node, "node-b");
	CHECK(p.choice[0] != p.choice[1]);
	/* two replicas of TP 2: only node-b holds one; the second is refused */
	req_init(&r, f, 2, 2);
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	CHECK(strstr(p.reason, "node-b has 0 free") != NULL);
	/* GPUs listed out of node order are grouped all the same */
	struct am_plan_gpu mixed[4];
	mixed[0] = c.gpus[0]; /* a0 free */
	mixed[1] = c.gpus[3]; /* b0 free */
	mixed[2] = c.gpus[5]; /* c0 free */
	mixed[3] = c.gpus[4]; /* b1 free */
	req_init(&r, f, 2, 1);
	am_planner_plan(mixed, 4, &r, &p);
	CHECK(p.ok);
	CHECK(p.choice[0] == 1 || p.choice[0] == 3);
	CHECK(p.choice[1] == 1 || p.choice[1] == 3);
	json_decref(f);
	am_capacity_free(&c);
}

static void pinned_across_nodes_refused(void)
{
	struct am_capacity c;
	am_capacity_init(&c, "node-a");
	add(&c, "node-a", 0, 24, 0);
	add(&c, "node-a", 1, 24, 0);
	add(&c, "node-b", 0, 24, 0);
	json_t *f = small_llm();
	json_t *refs = json_pack("[i,s]", 0, "node-b:0");
	struct am_plan_req r;
	req_init(&r, f, 2, 1);
	char err[256];
	CHECK_INT(am_capacity_pin(&c, refs, r.pinned, AM_PLAN_MAX, &r.npinned, err, sizeof err), 0);
	CHECK_INT(r.npinned, 2);
	CHECK_INT(r.pinned[0], 0);
	CHECK_INT(r.pinned[1], 2);
	struct am_plan p;
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	CHECK(p.capacity == 0);
	CHECK_STR(p.field, "gpus");
	CHECK(strstr(p.reason, "must be on one node") != NULL);
	CHECK(strstr(p.reason, "GPU 0 of node-a and GPU 0 of node-b") != NULL);
	json_decref(refs);
	/* pinned on one node: placed there */
	refs = json_pack("[s,s]", "GPU-node-a-1", "node-a:0");
	CHECK_INT(am_capacity_pin(&c, refs, r.pinned, AM_PLAN_MAX, &r.npinned, err, sizeof err), 0);
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(p.ok);
	CHECK_INT(p.choice[0], 1);
	CHECK_INT(p.choice[1], 0);
	json_decref(refs);
	json_decref(f);
	am_capacity_free(&c);
}

/* A refusal describes the cards as they are: an empty card pinned for two
 * replicas that do not both fit says it is empty, and what the plan's
 * first replica would take of it (not "1.1 GiB free" as if already placed). */
static void pinned_twice_describes_the_card_as_it_is(void)
{
	struct am_capacity c;
	am_capacity_init(&c, "local");
	add(&c, "local", 0, 40, 0);
	json_t *f = small_llm();
	struct am_plan_req r;
	req_init(&r, f, 1, 2);
	r.pinned[0] = r.pinned[1] = 0;
	r.npinned = 2;
	struct am_plan p;
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	CHECK_STR(p.field, "gpus");
	CHECK(strstr(p.reason, "has 40.0 GiB free") != NULL);
	CHECK(strstr(p.reason, "the replicas placed before it in this plan would take") != NULL);
	CHECK(strstr(p.reason_zh, "仅剩 40.0 GiB 可用") != NULL);
	json_decref(f);
	am_capacity_free(&c);
}

static void pin_references(void)
{
	struct am_capacity c;
	am_capacity_init(&c, "local");
	add(&c, "local", 0, 24, 0);
	add(&c, "node-b", 0, 24, 0);
	add(&c, "node-b", 1, 24, 0);
	int out[AM_PLAN_MAX], n = 0;
	char err[256];
	json_t *refs = json_pack("[i,s,s]", 0, "node-b:1", "GPU-node-b-0");
	CHECK_INT(am_capacity_pin(&c, refs, out, AM_PLAN_MAX, &n, err, sizeof err), 0);
	CHECK_INT(n, 3);
	CHECK_INT(out[0], 0);
	CHECK_INT(out[1], 2);
	CHECK_INT(out[2], 1);
	json_decref(refs);
	refs = json_pack("[i]", 9);
	CHECK_INT(am_capacity_pin(&c, refs, out, AM_PLAN_MAX, &n, err, sizeof err), -1);
	CHECK_STR(err, "GPU 9 does not exist on node local (it has 1 GPU(s), indices 0 and up)");
	json_decref(refs);
	refs = json_pack("[s]", "node-c:0");
	CHECK_INT(am_capacity_pin(&c, refs, out, AM_PLAN_MAX, &n, err, sizeof err), -1);
	CHECK_STR(err, "GPU 0 does not exist on node node-c (it has no GPUs)");
	json_decref(refs);
	refs = json_pack("[s,s]", "node-b:1", "GPU-node-b-1");
	CHECK_INT(am_capacity_pin(&c, refs, out, AM_PLAN_MAX, &n, err, sizeof err), -1);
	CHECK(strstr(err, "listed twice") != NULL);
	json_decref(refs);
	refs = json_pack("[]");
	CHECK_INT(am_capacity_pin(&c, refs, out, AM_PLAN_MAX, &n, err, sizeof err), -1);
	json_decref(refs);
	const char *node;
	CHECK_INT(am_capacity_widest(&c, &node), 2);
	CHECK_STR(node, "node-b");
	am_capacity_free(&c);
}

/* A training job: a fixed need per GPU, its GPUs on one node, the emptiest
 * cards first, exactly the need reserved. */
static void training_job_through_the_planner(void)
{
	struct am_capacity c;
	am_capacity_init(&c, "local");
	add(&c, "node-a", 0, 80, 60);
	add(&c, "node-a", 1, 80, 0);
	add(&c, "node-b", 0, 80, 10);
	add(&c, "node-b", 1, 80, 5);
	struct am_plan_req r;
	memset(&r, 0, sizeof r);
	r.model = "job";
	r.tp = 2;
	r.replicas = 1;
	r.spread = 1;
	r.need = (uint64_t)(30 * GIB);
	struct am_plan p;
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(p.ok);
	CHECK_STR(c.gpus[p.choice[0]].node, "node-b"); /* node-a has one card with 30 GiB free */
	CHECK_STR(c.gpus[p.choice[1]].node, "node-b");
	CHECK_INT(p.choice[0], 3); /* the emptiest first */
	CHECK(p.reserve[0] == r.need && p.reserve[1] == r.need);
	/* 60 GiB each: only node-a's second card and node-b's two have it */
	r.need = (uint64_t)(68 * GIB);
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(p.ok);
	CHECK_STR(c.gpus[p.choice[0]].node, "node-b");
	r.need = (uint64_t)(72 * GIB); /* node-a 1 and node-b 1 (75 free): split */
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	CHECK(strstr(p.reason, "node-a has 1 free, node-b has 1 free") != NULL);
	r.need = (uint64_t)(90 * GIB); /* larger than any card */
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	CHECK(strstr(p.reason, "largest card") != NULL);
	am_capacity_free(&c);
}

/* 1,008 GPUs on 16 nodes: every replica's group on one node, in time. */
static void a_thousand_gpus(void)
{
	struct am_capacity c;
	am_capacity_init(&c, "local");
	char node[16];
	for (int k = 0; k < 16; k++) {
		snprintf(node, sizeof node, "n%02d", k);
		for (int i = 0; i < 63; i++)
			add(&c, node, i, 80, k < 15 && i > 0 ? 80 : 0); /* nodes 0-14: one free card each */
	}
	CHECK_INT(c.n, 1008);
	json_t *f = small_llm();
	struct am_plan_req r;
	req_init(&r, f, 8, 8);
	struct am_plan p;
	clock_t t0 = clock();
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(p.ok);
	for (int rep = 0; p.ok && rep < 8; rep++)
		for (int k = 0; k < 8; k++)
			CHECK_STR(c.gpus[p.choice[rep * 8 + k]].node, "n15");
	/* TP 2 over 15 nodes with one free card each and n15 full: refused */
	for (int i = 15 * 63; i < c.n; i++)
		c.gpus[i].reserved = c.gpus[i].total;
	req_init(&r, f, 2, 1);
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	CHECK(strstr(p.reason, "n00 has 1 free") != NULL);
	CHECK(strstr(p.reason, "and 8 more nodes") != NULL);
	CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0);
	json_decref(f);
	am_capacity_free(&c);
}

/* Kubernetes cards are whole: two small embedding models that would share a
 * local card take one card each there, a third is refused, a partly
 * reserved card takes nothing more; the plan's note says so. */
static void whole_cards(void)
{
	json_t *f = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:I}", "kind", "embedding", "attention_heads", 16, "kv_heads", 16,
			      "head_dim", 64, "layers", 2, "hidden_size", 1024, "max_context", 512, "weight_bytes",
			      (json_int_t)(1 * GIB));
	struct am_plan_req r;
	struct am_plan p;
	/* on a local node both fit on one card */
	struct am_capacity loc;
	am_capacity_init(&loc, "local");
	add(&loc, "local", 0, 24, 0);
	req_init(&r, f, 1, 2);
	am_planner_plan(loc.gpus, loc.n, &r, &p);
	CHECK(p.ok);
	CHECK(p.choice[0] == 0 && p.choice[1] == 0);
	CHECK(p.note[0] == '\0');
	am_capacity_free(&loc);
	/* on a cluster node each takes a card */
	struct am_capacity c;
	am_capacity_init(&c, "local");
	add(&c, "c1:gpu-1", 0, 24, 0);
	add(&c, "c1:gpu-1", 1, 24, 0);
	c.gpus[0].whole = c.gpus[1].whole = 1;
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(p.ok);
	CHECK(p.choice[0] != p.choice[1]);
	CHECK(strstr(p.note, "on c1:gpu-1 each replica takes whole cards") != NULL);
	req_init(&r, f, 1, 3);
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	CHECK(p.capacity == 1);
	/* a card with a reservation takes nothing more */
	c.gpus[0].reserved = (uint64_t)(1 * GIB);
	req_init(&r, f, 1, 2);
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(!p.ok);
	req_init(&r, f, 1, 1);
	am_planner_plan(c.gpus, c.n, &r, &p);
	CHECK(p.ok);
	CHECK(p.choice[0] == 1);
	am_capacity_free(&c);
	json_decref(f);
}

void suite_sched(void)
{
	RUN(whole_cards);
	RUN(tp2_split_across_nodes_refused);
	RUN(tp2_placed_on_one_node);
	RUN(pinned_across_nodes_refused);
	RUN(pin_references);
	RUN(pinned_twice_describes_the_card_as_it_is);
	RUN(training_job_through_the_planner);
	RUN(a_thousand_gpus);
}
