/* am_capacity: the GPUs of every node, and pinned GPU references. */
#include "am_capacity.h"

#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"

void am_capacity_init(struct am_capacity *c, const char *home)
{
	memset(c, 0, sizeof *c);
	am_strlcpy(c->home, home ? home : "", sizeof c->home);
}

struct am_plan_gpu *am_capacity_add(struct am_capacity *c)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->gpus = am_realloc(c->gpus, sizeof *c->gpus * (size_t)c->cap);
	}
	struct am_plan_gpu *g = &c->gpus[c->n++];
	memset(g, 0, sizeof *g);
	return g;
}

void am_capacity_free(struct am_capacity *c)
{
	free(c->gpus);
	c->gpus = NULL;
	c->n = c->cap = 0;
}

int am_capacity_find(const struct am_capacity *c, const char *id)
{
	for (int i = 0; id && i < c->n; i++)
		if (!strcmp(c->gpus[i].id, id))
			return i;
	return -1;
}

/* The GPU at index idx of node, or -1. */
static int find_at(const struct am_capacity *c, const char *node, long long idx)
{
	for (int i = 0; i < c->n; i++)
		if (c->gpus[i].index == idx && !strcmp(c->gpus[i].node, node))
			return i;
	return -1;
}

/* How many GPUs node has. */
static int count_on(const struct am_capacity *c, const char *node)
{
	int k = 0;
	for (int i = 0; i < c->n; i++)
		k += !strcmp(c->gpus[i].node, node);
	return k;
}

int am_capacity_pin(const struct am_capacity *c, json_t *refs, int *out, int max, int *nout, char *err, size_t errsize)
{
	if (!json_is_array(refs) || !json_array_size(refs) || json_array_size(refs) > (size_t)max) {
		am_fmt(err, errsize, AM_MSG_T("'gpus' must be a list of 1 to %d GPU ids, \"NODE:INDEX\" or indices"), max);
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(refs, i, v) {
		int found = -1;
		char node[64];
		long long idx = -1;
		const char *s = json_string_value(v);
		const char *colon = s ? strrchr(s, ':') : NULL;
		if (json_is_integer(v)) {
			am_strlcpy(node, c->home, sizeof node);
			idx = json_integer_value(v);
			found = find_at(c, node, idx);
		} else if (s) {
			found = am_capacity_find(c, s);
			if (found < 0 && colon && colon > s && (size_t)(colon - s) < sizeof node && colon[1]) {
				char *end;
				memcpy(node, s, (size_t)(colon - s));
				node[colon - s] = '\0';
				idx = strtoll(colon + 1, &end, 10);
				found = *end ? -1 : find_at(c, node, idx);
				if (*end)
					idx = -1;
			}
		} else {
			am_fmt(err, errsize, AM_MSG_T("gpus[%zu] must be a GPU id, \"NODE:INDEX\" or an index"), i);
			return -1;
		}
		if (found < 0) {
			if (idx >= 0) {
				int have = count_on(c, node);
				if (have)
					am_fmt(err, errsize, AM_MSG_T("GPU %lld does not exist on node %s (it has %d GPU(s), indices 0 and up)"),
					       idx, node, have);
				else
					am_fmt(err, errsize, AM_MSG_T("GPU %lld does not exist on node %s (it has no GPUs)"), idx, node);
			} else {
				am_fmt(err, errsize, AM_MSG_T("GPU '%.80s' does not exist"), s);
			}
			return -1;
		}
		for (size_t j = 0; j < i; j++)
			if (out[j] == found) {
				am_fmt(err, errsize, AM_MSG_T("GPU %d of %s is listed twice"), c->gpus[found].index, c->gpus[found].node);
				return -1;
			}
		out[i] = found;
	}
	*nout = (int)json_array_size(refs);
	return 0;
}

int am_capacity_widest(const struct am_capacity *c, const char **node)
{
	int best = 0;
	*node = NULL;
	for (int i = 0; i < c->n;) {
		int j = i;
		while (j < c->n && !strcmp(c->gpus[j].node, c->gpus[i].node))
			j++;
		if (j - i > best) {
			best = j - i;
			*node = c->gpus[i].node;
		}
		i = j;
	}
	return best;
}
