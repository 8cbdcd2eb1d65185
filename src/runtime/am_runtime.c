/* am_runtime: what every runtime shares (see am_runtime.h). */
#include "am_runtime.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../base/am_time.h"
#include "am_proc.h"

const char *am_runtime_name(const struct am_runtime *rt)
{
	if (!rt)
		return "";
	return rt->name[0] ? rt->name : rt->ops->name;
}

int am_runtimes_add(struct am_runtimes *rs, struct am_runtime *rt)
{
	if (!rt || rs->n >= AM_RUNTIMES_MAX || am_runtimes_get(rs, am_runtime_name(rt)))
		return -1;
	rs->all[rs->n++] = rt;
	return 0;
}

struct am_runtime *am_runtimes_get(const struct am_runtimes *rs, const char *name)
{
	if (!name || !*name)
		name = "local";
	for (int i = 0; i < rs->n; i++)
		if (!strcmp(am_runtime_name(rs->all[i]), name))
			return rs->all[i];
	return NULL;
}

void am_runtimes_free(struct am_runtimes *rs)
{
	for (int i = 0; i < rs->n; i++)
		am_runtime_free(rs->all[i]);
	rs->n = 0;
}

int am_runtime_tail(struct am_runtime *rt, const char *ref, int n, char ***lines)
{
	char path[PATH_MAX];
	*lines = NULL;
	if (!rt || !ref || !rt->ops->log_file || rt->ops->log_file(rt, ref, path, sizeof path) != 0)
		return 0;
	return am_proc_tail(path, n, lines);
}

void am_runtime_lines_free(char **lines, int n)
{
	am_proc_lines_free(lines, n);
}

void am_runtime_marker(const char *owner_id, const char *kind, long long id, char *out, size_t size)
{
	am_proc_marker(owner_id, kind, id, out, size);
}

void am_runtime_free(struct am_runtime *rt)
{
	if (rt)
		rt->ops->free(rt);
}

void am_runtime_log_note(const char *path, const char *text)
{
	FILE *f = fopen(path, "ae");
	if (!f)
		return;
	char ts[40];
	am_time_iso(am_wall_ms(), ts, sizeof ts);
	fprintf(f, "=== aimaas %s: %s ===\n", ts, text);
	fclose(f);
}

void am_runtime_note_by_log(struct am_runtime *rt, const char *ref, const char *text)
{
	char p[PATH_MAX];
	if (rt->ops->log_file(rt, ref, p, sizeof p) == 0)
		am_runtime_log_note(p, text);
}

void am_runtime_rotate_by_log(struct am_runtime *rt, const char *ref, uint64_t max)
{
	char p[PATH_MAX];
	if (rt->ops->log_file(rt, ref, p, sizeof p) == 0)
		am_proc_rotate(p, max);
}
