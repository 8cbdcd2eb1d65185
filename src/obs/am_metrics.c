/* am_metrics: per-route request metrics. */
#include "am_metrics.h"

#include <stdint.h>
#include <string.h>

#include "../base/am_mem.h"

static const double bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define NB (sizeof bounds / sizeof bounds[0])
#define MAX_STATUSES 16

struct series {
	const char *method, *pattern;
	struct {
		int status;
		uint64_t count;
	} st[MAX_STATUSES];
	int nst;
	uint64_t buckets[NB + 1];
	double sum;
	uint64_t count;
};

struct am_metrics {
	size_t n;
	struct series *s;
};

struct am_metrics *am_metrics_new(const char *const *methods, const char *const *patterns, size_t nroutes)
{
	struct am_metrics *m = am_calloc(1, sizeof *m);
	m->n = nroutes + 1;
	m->s = am_calloc(m->n, sizeof *m->s);
	for (size_t i = 0; i < nroutes; i++) {
		m->s[i].method = methods[i];
		m->s[i].pattern = patterns[i];
	}
	m->s[nroutes].method = "";
	m->s[nroutes].pattern = "unmatched";
	return m;
}

void am_metrics_free(struct am_metrics *m)
{
	if (!m)
		return;
	free(m->s);
	free(m);
}

void am_metrics_observe(struct am_metrics *m, size_t route, int status, double seconds)
{
	if (route >= m->n)
		route = m->n - 1;
	struct series *s = &m->s[route];
	int i;
	for (i = 0; i < s->nst; i++)
		if (s->st[i].status == status)
			break;
	if (i == s->nst && s->nst < MAX_STATUSES) {
		s->st[i].status = status;
		s->nst++;
	}
	if (i < s->nst)
		s->st[i].count++;
	size_t b = 0;
	while (b < NB && seconds > bounds[b])
		b++;
	s->buckets[b]++;
	s->sum += seconds;
	s->count++;
}

void am_metrics_render(const struct am_metrics *m, struct am_buf *out)
{
	am_buf_adds(out, "# HELP aimaas_http_requests_total HTTP requests answered, by route and status.\n"
			 "# TYPE aimaas_http_requests_total counter\n");
	for (size_t r = 0; r < m->n; r++)
		for (int i = 0; i < m->s[r].nst; i++)
			am_buf_printf(out, "aimaas_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
				      m->s[r].method, m->s[r].pattern, m->s[r].st[i].status,
				      (unsigned long long)m->s[r].st[i].count);
	am_buf_adds(out, "# HELP aimaas_http_request_duration_seconds Time from the request's first byte to its answer.\n"
			 "# TYPE aimaas_http_request_duration_seconds histogram\n");
	for (size_t r = 0; r < m->n; r++) {
		const struct series *s = &m->s[r];
		if (!s->count)
			continue;
		uint64_t cum = 0;
		for (size_t b = 0; b <= NB; b++) {
			cum += s->buckets[b];
			if (b < NB)
				am_buf_printf(out, "aimaas_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %llu\n",
					      s->method, s->pattern, bounds[b], (unsigned long long)cum);
			else
				am_buf_printf(out, "aimaas_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %llu\n",
					      s->method, s->pattern, (unsigned long long)cum);
		}
		am_buf_printf(out, "aimaas_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n",
			      s->method, s->pattern, s->sum);
		am_buf_printf(out, "aimaas_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
			      s->method, s->pattern, (unsigned long long)s->count);
	}
}
