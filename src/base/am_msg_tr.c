/* am_msg_tr: the Chinese form of a text that code wrote in English from the
 * message table's templates and stored (a deployment's reason, a task's
 * message), found when the text is read rather than when it was written.
 *
 * The text is matched against the table's English templates: literal parts
 * byte for byte, conversions by what printf makes of them (digits for %d,
 * a decimal for %.1f, any text for %s, at most its precision's bytes). A
 * text may be several templates one after another (the planner's refusals
 * are built piece by piece); every byte must belong to one of them, or the
 * text stays English. Where several templates match at a place, the one
 * with the most literal letters is tried first. An argument that is itself
 * a message (an unquoted %s) is translated the same way, so "gave up after
 * 5 failed starts: exited with status 1" reads in Chinese throughout; an
 * argument in quotes ('%s') or of one word is a name and stays as it is
 * (a word the code passes, such as "user" in "no %s with id", is
 * translated when the message is made: am_err_set, am_msg_word). */
#include "am_msg.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "am_mem.h"

#define MAX_PIECES 48
#define MAX_DEPTH 3	  /* messages inside messages */
#define MAX_STEPS 200000 /* matching work per text, then it stays English */

/* One piece of an English template: literal text, or a conversion. */
struct piece {
	char conv;	/* 0: literal; 'd' signed, 'u' unsigned, 'x' hex, 'f' decimal, 's' text, 'c' one byte */
	int prec;	/* a conversion's precision; -1 when none */
	int quoted;	/* a %s between quotes: a name, never translated */
	const char *lit; /* literal text (%% undone) */
	size_t n;
};

struct tmpl {
	const struct am__msg *m;
	struct piece *p;
	int np;
	int letters; /* literal ASCII letters: how specific it is */
	int texts;   /* %s conversions: what can take any text */
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct tmpl *tmpls;
static size_t ntmpls;
/* the templates (indices into tmpls, in its order) that may match at a
 * byte: those whose literal start is that byte, and those that start with
 * a conversion */
static size_t *starts[256], nstarts[256];
static size_t *anywhere, nanywhere;

/* Cuts en into pieces; -1 for a template this matcher does not take (%m,
 * '*' widths, positional English). */
static int compile(const char *en, struct tmpl *t)
{
	struct piece p[MAX_PIECES];
	int np = 0;
	char *lit = am_malloc(strlen(en) + 1), *w = lit;
	const char *s = en;
	while (*s) {
		if (np == MAX_PIECES)
			goto bad;
		if (*s != '%' || s[1] == '%') {
			char *start = w;
			while (*s && (*s != '%' || s[1] == '%')) {
				*w++ = *s;
				s += *s == '%' ? 2 : 1;
			}
			p[np++] = (struct piece){ 0, -1, 0, start, (size_t)(w - start) };
			continue;
		}
		s++;
		while (*s && strchr("-+ #0'", *s))
			s++;
		while (isdigit((unsigned char)*s))
			s++;
		int prec = -1;
		if (*s == '.') {
			s++;
			prec = 0;
			while (isdigit((unsigned char)*s))
				prec = prec * 10 + (*s++ - '0');
		}
		if (*s == '*' || *s == '$')
			goto bad;
		while (*s && strchr("hlLjzt", *s))
			s++;
		char c = *s ? *s++ : 0;
		char conv = strchr("di", c) ? 'd' : c == 'u' ? 'u' : strchr("xX", c) ? 'x' : strchr("eEfFgG", c) ? 'f'
			  : c == 's' ? 's' : c == 'c' ? 'c' : 0;
		if (!conv)
			goto bad;
		int quoted = conv == 's' && np > 0 && p[np - 1].conv == 0 && p[np - 1].n &&
			     strchr("'\"", p[np - 1].lit[p[np - 1].n - 1]) && (*s == '\'' || *s == '"');
		p[np++] = (struct piece){ conv, prec, quoted, NULL, 0 };
	}
	t->p = am_malloc(sizeof *p * (size_t)(np ? np : 1));
	memcpy(t->p, p, sizeof *p * (size_t)np);
	t->np = np;
	t->letters = t->texts = 0;
	for (int i = 0; i < np; i++)
		t->texts += p[i].conv == 's';
	for (int i = 0; i < np; i++)
		for (size_t k = 0; k < p[i].n; k++)
			t->letters += isalpha((unsigned char)p[i].lit[k]) != 0;
	return 0;
bad:
	free(lit);
	return -1;
}

static int by_letters(const void *x, const void *y)
{
	const struct tmpl *a = x, *b = y;
	return b->letters - a->letters;
}

static void build(void)
{
	tmpls = am_malloc(sizeof *tmpls * (am__msg_count + 1));
	for (size_t i = 0; i < am__msg_count; i++) {
		const struct am__msg *m = &am__msg_table[i];
		char why[160];
		if (!m->en[0] || am_msg_check(m->en, m->zh, why, sizeof why) != 0)
			continue;
		struct tmpl t = { .m = m };
		if (compile(m->en, &t) == 0)
			tmpls[ntmpls++] = t;
	}
	qsort(tmpls, ntmpls, sizeof *tmpls, by_letters);
	size_t count[256] = { 0 }, nany = 0;
	for (size_t i = 0; i < ntmpls; i++) {
		if (!tmpls[i].np)
			continue;
		if (tmpls[i].p[0].conv)
			nany++;
		else
			count[(unsigned char)tmpls[i].p[0].lit[0]]++;
	}
	for (int c = 0; c < 256; c++)
		starts[c] = count[c] ? am_malloc(sizeof(size_t) * count[c]) : NULL;
	anywhere = am_malloc(sizeof(size_t) * (nany + 1));
	for (size_t i = 0; i < ntmpls; i++) {
		if (!tmpls[i].np)
			continue;
		if (tmpls[i].p[0].conv) {
			anywhere[nanywhere++] = i;
		} else {
			unsigned char c = (unsigned char)tmpls[i].p[0].lit[0];
			starts[c][nstarts[c]++] = i;
		}
	}
}

/* ---- matching ---- */

struct cap {
	size_t at, n;
};

/* What an argument's own translation came to (a text may be tried as an
 * argument many times while the templates around it are matched). */
struct seen {
	const char *s;
	size_t n;
	int ok;
};
#define SEEN_MAX 64

struct run {
	const char *s;
	size_t len;
	unsigned char *dead; /* dead[i]: s[i..] was found not to translate */
	long *steps;	     /* shared with the runs for arguments */
	int depth;
	struct seen *seen;   /* shared too: seen[0..*nseen) */
	int *nseen;
};

static int translate_from(struct run *r, size_t i, struct am_buf *out);

/* The end of a number of kind conv at s[i]: i when there is none. */
static size_t number_end(const char *s, size_t len, size_t i, char conv)
{
	size_t k = i;
	if ((conv == 'd' || conv == 'f') && k < len && (s[k] == '-' || s[k] == '+'))
		k++;
	size_t d = k;
	if (conv == 'x')
		while (k < len && isxdigit((unsigned char)s[k]))
			k++;
	else
		while (k < len && isdigit((unsigned char)s[k]))
			k++;
	if (conv == 'f') {
		if (k == d && len - k >= 3 && (!strncmp(s + k, "inf", 3) || !strncmp(s + k, "nan", 3)))
			return k + 3;
		if (k < len && s[k] == '.') {
			size_t f = k + 1;
			while (f < len && isdigit((unsigned char)s[f]))
				f++;
			if (f > k + 1 || k > d)
				k = f;
		}
		if (k > d && k < len && (s[k] == 'e' || s[k] == 'E')) {
			size_t e = k + 1;
			if (e < len && (s[e] == '-' || s[e] == '+'))
				e++;
			size_t ed = e;
			while (e < len && isdigit((unsigned char)s[e]))
				e++;
			if (e > ed)
				k = e;
		}
	}
	return k > d ? k : i;
}

/* Translates the argument c (a message inside a message) as a text of its
 * own; 1 with it appended to out (when out is not NULL). */
static int arg_translate(struct run *r, const struct cap *c, struct am_buf *out)
{
	const char *s = r->s + c->at;
	/* one word is a name (a deployment called "idle"), not a message */
	if (!c->n || r->depth >= MAX_DEPTH || !memchr(s, ' ', c->n))
		return 0;
	for (int i = 0; i < *r->nseen; i++)
		if (r->seen[i].s == s && r->seen[i].n == c->n && (!r->seen[i].ok || !out))
			return r->seen[i].ok;
	struct am_buf sub;
	am_buf_init(&sub, 1 << 16);
	struct run r2 = { s, c->n, am_calloc(c->n + 1, 1), r->steps, r->depth + 1, r->seen, r->nseen };
	int ok = translate_from(&r2, 0, &sub);
	free(r2.dead);
	if (ok && out)
		am_buf_add(out, sub.data, sub.len);
	am_buf_free(&sub);
	if (*r->nseen < SEEN_MAX)
		r->seen[(*r->nseen)++] = (struct seen){ s, c->n, ok };
	return ok;
}

/* Renders t's Chinese template with the captured arguments into out. */
static void render(struct run *r, const struct tmpl *t, const struct cap *caps, int ncaps, struct am_buf *out)
{
	const char *z = t->m->zh;
	int next = 0;
	while (*z) {
		if (*z != '%') {
			const char *e = strchr(z, '%');
			size_t n = e ? (size_t)(e - z) : strlen(z);
			am_buf_add(out, z, n);
			z += n;
			continue;
		}
		if (z[1] == '%') {
			am_buf_add(out, "%", 1);
			z += 2;
			continue;
		}
		z++;
		int pos = 0;
		const char *q = z;
		while (isdigit((unsigned char)*q))
			pos = pos * 10 + (*q++ - '0');
		if (*q == '$')
			z = q + 1;
		else
			pos = 0;
		int prec = -1;
		while (*z && strchr("-+ #0'", *z))
			z++;
		while (isdigit((unsigned char)*z))
			z++;
		if (*z == '.') {
			z++;
			prec = 0;
			while (isdigit((unsigned char)*z))
				prec = prec * 10 + (*z++ - '0');
		}
		while (*z && strchr("hlLjzt", *z))
			z++;
		char cv = *z;
		if (*z)
			z++;
		int a = pos ? pos - 1 : next++;
		if (a < 0 || a >= ncaps || (prec == 0 && cv == 's')) /* "%.0f" still prints its number */
			continue;
		const struct cap *c = &caps[a];
		/* the argument's piece in the English template: a message in it? */
		int k = 0, seen = -1;
		for (; k < t->np; k++)
			if (t->p[k].conv && ++seen == a)
				break;
		if (k < t->np && t->p[k].conv == 's' && !t->p[k].quoted && arg_translate(r, c, out))
			continue;
		am_buf_add(out, r->s + c->at, c->n);
	}
}

/* Whether an unquoted %s argument of t, as captured, is a message itself
 * (what lets a template with few letters of its own count as a match). */
static int some_arg_translates(struct run *r, const struct tmpl *t, const struct cap *caps)
{
	if (r->depth >= MAX_DEPTH)
		return 0;
	for (int k = 0, a = 0; k < t->np; k++) {
		if (!t->p[k].conv)
			continue;
		const struct cap *c = &caps[a++];
		if (t->p[k].conv == 's' && !t->p[k].quoted && arg_translate(r, c, NULL))
			return 1;
	}
	return 0;
}

static int match(struct run *r, const struct tmpl *t, int k, size_t i, struct cap *caps, int ncaps, struct am_buf *out);

/* The text conversion k of t taking s[i..i+n), the rest matched after it:
 * 1 when all matched, 0 when the work is used up, -1 to try another n. */
static int try_text(struct run *r, const struct tmpl *t, int k, size_t i, size_t n, struct cap *caps, int ncaps,
		    struct am_buf *out)
{
	caps[ncaps] = (struct cap){ i, n };
	if (match(r, t, k + 1, i + n, caps, ncaps + 1, out))
		return 1;
	return *r->steps > MAX_STEPS ? 0 : -1;
}

/* Matches pieces k.. of t at s[i], the captures so far in caps[0..ncaps);
 * at the template's end, the rest of the text must translate too. 1 with
 * the Chinese of t and of the rest appended to out. */
static int match(struct run *r, const struct tmpl *t, int k, size_t i, struct cap *caps, int ncaps, struct am_buf *out)
{
	if (++*r->steps > MAX_STEPS)
		return 0;
	if (k == t->np) {
		/* the rest first: known at once where it was tried before */
		struct am_buf rest;
		am_buf_init(&rest, 1 << 16);
		int ok = i == r->len || translate_from(r, i, &rest);
		/* glue such as "%s: %s" only joins messages */
		if (ok && t->letters < 3 && t->texts && !some_arg_translates(r, t, caps))
			ok = 0;
		if (ok) {
			render(r, t, caps, ncaps, out);
			am_buf_add(out, rest.data, rest.len);
		}
		am_buf_free(&rest);
		return ok;
	}
	const struct piece *p = &t->p[k];
	if (!p->conv) {
		if (r->len - i < p->n || memcmp(r->s + i, p->lit, p->n))
			return 0;
		return match(r, t, k + 1, i + p->n, caps, ncaps, out);
	}
	if (p->conv == 'c') {
		if (i >= r->len)
			return 0;
		caps[ncaps] = (struct cap){ i, 1 };
		return match(r, t, k + 1, i + 1, caps, ncaps + 1, out);
	}
	if (p->conv != 's') {
		size_t e = number_end(r->s, r->len, i, p->conv);
		if (e == i)
			return 0;
		caps[ncaps] = (struct cap){ i, e - i };
		return match(r, t, k + 1, e, caps, ncaps + 1, out);
	}
	/* text: the shortest first; where a literal follows, only where it does */
	size_t max = r->len - i;
	if (p->prec >= 0 && (size_t)p->prec < max)
		max = (size_t)p->prec;
	const struct piece *nx = k + 1 < t->np ? &t->p[k + 1] : NULL;
	if (!nx) { /* the template's last piece: all of the rest first, a message itself */
		size_t least = t->letters < 3 ? max : 0; /* glue takes all there is */
		for (size_t n = max + 1; n-- > least;) {
			int rc = try_text(r, t, k, i, n, caps, ncaps, out);
			if (rc >= 0)
				return rc;
		}
		return 0;
	}
	for (size_t n = 0; n <= max; n++) {
		if (!nx->conv) {
			const char *f = memmem(r->s + i + n, r->len - i - n, nx->lit, nx->n);
			if (!f)
				return 0;
			n = (size_t)(f - (r->s + i));
			if (n > max)
				return 0;
		}
		int rc = try_text(r, t, k, i, n, caps, ncaps, out);
		if (rc >= 0)
			return rc;
	}
	return 0;
}

/* Translates s[i..] as one or more templates; 1 with it appended to out. */
static int translate_from(struct run *r, size_t i, struct am_buf *out)
{
	if (r->dead[i])
		return 0;
	unsigned char c0 = (unsigned char)r->s[i];
	const size_t *a = starts[c0], *b = anywhere;
	size_t na = nstarts[c0], nb = nanywhere, ia = 0, ib = 0;
	while (ia < na || ib < nb) { /* the two lists merged, in tmpls' order */
		size_t t = ib >= nb || (ia < na && a[ia] < b[ib]) ? a[ia++] : b[ib++];
		const struct tmpl *tp = &tmpls[t];
		const struct piece *p0 = &tp->p[0];
		if (!p0->conv && (r->len - i < p0->n || memcmp(r->s + i, p0->lit, p0->n)))
			continue;
		struct cap caps[MAX_PIECES];
		if (match(r, tp, 0, i, caps, 0, out))
			return 1;
		if (*r->steps > MAX_STEPS)
			return 0;
	}
	r->dead[i] = 1;
	return 0;
}

int am_msg_translate(const char *en, char *zh, size_t size)
{
	pthread_once(&once, build);
	if (size)
		zh[0] = '\0';
	size_t len = en ? strlen(en) : 0;
	if (!len)
		return 0;
	long steps = 0;
	struct seen seen[SEEN_MAX];
	int nseen = 0;
	struct run r = { en, len, am_calloc(len + 1, 1), &steps, 0, seen, &nseen };
	struct am_buf out;
	am_buf_init(&out, 1 << 16);
	int ok = translate_from(&r, 0, &out);
	free(r.dead);
	if (ok && size) {
		size_t n = out.len < size - 1 ? out.len : size - 1;
		memcpy(zh, out.data, n);
		zh[n] = '\0';
		am_utf8_scrub(zh);
	}
	am_buf_free(&out);
	return ok;
}
