/* am_conf (the `key = value` syntax) and am_opts (flag > env > file > default). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "am_opts.h"
#include "am_test.h"
#include "base/am_buf.h"
#include "base/am_conf.h"

struct seen {
	char text[1024]; /* "key=value@line;" each */
};

static int collect(const char *key, const char *value, int line, void *data, char *err, size_t errsize)
{
	struct seen *s = data;
	char one[256];
	if (!strcmp(key, "no")) {
		am_fmt(err, errsize, "no: refused");
		return -1;
	}
	am_fmt(one, sizeof one, "%s=%s@%d;", key, value, line);
	am_strlcpy(s->text + strlen(s->text), one, sizeof s->text - strlen(s->text));
	return 0;
}

static int parse(const char *text, struct seen *s, char *err, size_t errsize)
{
	s->text[0] = '\0';
	return am_conf_parse(text, strlen(text), collect, s, err, errsize);
}

static void conf_lines(void)
{
	struct seen s;
	char err[256];
	CHECK_INT(parse("# a comment\n\n  listen = 0.0.0.0:8080\r\n\tdata-dir=/var/lib/aimaas  # where\n"
			"sim-gpus = 4x11GiB:NVIDIA GeForce RTX 2080 Ti\nui-dir =\nx = \"  a # b \"  # c\nk = a#b",
			&s, err, sizeof err),
		  0);
	CHECK_STR(s.text, "listen=0.0.0.0:8080@3;data-dir=/var/lib/aimaas@4;"
			  "sim-gpus=4x11GiB:NVIDIA GeForce RTX 2080 Ti@5;ui-dir=@6;x=  a # b @7;k=a#b@8;");
}

static void conf_refusals(void)
{
	struct seen s;
	char err[256];
	CHECK_INT(parse("a = 1\njust words\n", &s, err, sizeof err), -1);
	CHECK_STR(err, "line 2: expected 'key = value'");
	CHECK_INT(parse("Listen = 1\n", &s, err, sizeof err), -1);
	CHECK(strstr(err, "line 1: a key is lower-case") != NULL);
	CHECK_INT(parse("= 1\n", &s, err, sizeof err), -1);
	CHECK(strncmp(err, "line 1: expected", 16) == 0);
	CHECK_INT(parse("a = \"open\n", &s, err, sizeof err), -1);
	CHECK_STR(err, "line 1: a: a quoted value has no closing '\"'");
	CHECK_INT(parse("a = \"x\" y\n", &s, err, sizeof err), -1);
	CHECK_INT(parse("a = 1\n\nno = 2\n", &s, err, sizeof err), -1);
	CHECK_STR(err, "line 3: no: refused");
	CHECK_INT(am_conf_parse("a = 1\nb\0 = 2\n", 13, collect, &s, err, sizeof err), -1);
	CHECK_STR(err, "line 2: a NUL byte (not a text file?)");
	char *big = malloc(AM_CONF_LINE_MAX + 16);
	memset(big, 'a', AM_CONF_LINE_MAX + 8);
	memcpy(big, "k = ", 4);
	big[AM_CONF_LINE_MAX + 8] = '\0';
	CHECK_INT(parse(big, &s, err, sizeof err), -1);
	CHECK(strstr(err, "line 1: longer than") != NULL);
	free(big);
}

/* writes text to a temporary file named in path */
static void temp_conf(const char *text, char *path, size_t size)
{
	am_fmt(path, size, "/tmp/aimaas-unit-conf-%d.conf", (int)getpid());
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

static void opts_precedence(void)
{
	char path[128], cfg[160];
	temp_conf("listen = 127.0.0.1:1\nsession-ttl = 600\nmax-body = 4096\nmodel-root = /tmp\nmodel-root = /usr\n"
		  "demo = true\n",
		  path, sizeof path);
	am_fmt(cfg, sizeof cfg, "--config=%s", path);
	setenv("AIMAAS_SESSION_TTL", "900", 1);
	setenv("AIMAAS_LISTEN", "127.0.0.1:2", 1);
	char *argv[] = { "serve", cfg, "--listen", "127.0.0.1:3", NULL };
	struct am_opts *o = NULL;
	CHECK_INT(am_opts_load(4, argv, "usage\n", &o), 0);
	if (o) {
		CHECK_STR(am_opts_str(o, AM_OPT_LISTEN), "127.0.0.1:3");           /* flag > env */
		CHECK_INT(am_opts_num(o, AM_OPT_SESSION_TTL, 1), 900);            /* env > file */
		CHECK_INT(am_opts_num(o, AM_OPT_MAX_BODY, 1), 4096);              /* file > default */
		CHECK_INT(am_opts_num(o, AM_OPT_GPU_INTERVAL, 5000), 5000);       /* default */
		CHECK_STR(am_opts_str(o, AM_OPT_DATA_DIR), "./data");
		CHECK_INT(am_opts_bool(o, AM_OPT_DEMO), 1);
		int n;
		const char *const *roots = am_opts_list(o, AM_OPT_MODEL_ROOT, &n);
		CHECK_INT(n, 2);
		if (n == 2)
			CHECK_STR(roots[1], "/usr");
		am_opts_free(o);
	}
	/* a list from the environment replaces the file's */
	setenv("AIMAAS_MODEL_ROOT", "/a:/b:/c", 1);
	o = NULL;
	CHECK_INT(am_opts_load(2, argv, "usage\n", &o), 0);
	if (o) {
		int n;
		am_opts_list(o, AM_OPT_MODEL_ROOT, &n);
		CHECK_INT(n, 3);
		am_opts_free(o);
	}
	unsetenv("AIMAAS_MODEL_ROOT");
	unsetenv("AIMAAS_SESSION_TTL");
	unsetenv("AIMAAS_LISTEN");
	unlink(path);
}

static void opts_refusals(void)
{
	char path[128], cfg[160];
	am_fmt(cfg, sizeof cfg, "--config=/tmp/aimaas-unit-conf-%d.conf", (int)getpid());
	char *argv[] = { "serve", cfg, NULL };
	static const char *const bad[] = {
		"listen = 1:2\nfrobnicate = 1\n",            /* unknown key */
		"admin-password = hunter2\n",                /* a secret in a file */
		"session-ttl = 5\n",                         /* out of range */
		"demo = maybe\n",                            /* not a boolean */
		"log-level = loud\n",                        /* not a level */
		"listen = 1:2\nlisten = 1:3\n",              /* twice */
	};
	FILE *saved = stderr;
	stderr = fopen("/dev/null", "w");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		temp_conf(bad[i], path, sizeof path);
		struct am_opts *o = NULL;
		int rc = am_opts_load(2, argv, "usage\n", &o);
		CHECK_INT(rc, -1);
		if (rc == 0)
			am_opts_free(o);
	}
	fclose(stderr);
	stderr = saved;
	unlink(path);
	/* the default file may be absent; a named one may not */
	char *argv2[] = { "serve", "--config", "/nonexistent/aimaas.conf", NULL };
	struct am_opts *o = NULL;
	stderr = fopen("/dev/null", "w");
	CHECK_INT(am_opts_load(3, argv2, "usage\n", &o), -1);
	fclose(stderr);
	stderr = saved;
}

void suite_conf(void)
{
	RUN(conf_lines);
	RUN(conf_refusals);
	RUN(opts_precedence);
	RUN(opts_refusals);
}
