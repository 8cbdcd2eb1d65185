/* Unit tests for the command line's pure parts: terminal widths of names in
 * any script, aligned tables, byte sizes, percent-encoding, and where the
 * server and the token come from. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_test.h"
#include "cli/cli_client.h"
#include "cli/cli_table.h"

static void widths_count_terminal_cells(void)
{
	CHECK_INT(cli_table_width(""), 0);
	CHECK_INT(cli_table_width("qwen2.5-7b"), 10);
	CHECK_INT(cli_table_width("问答"), 4);             /* CJK: two cells each */
	CHECK_INT(cli_table_width("数据集-v2"), 9);
	CHECK_INT(cli_table_width("ｑｗｅｎ"), 8);         /* full-width Latin */
	CHECK_INT(cli_table_width("한국어"), 6);           /* Hangul */
	CHECK_INT(cli_table_width("café"), 4);             /* a precomposed é is one */
	CHECK_INT(cli_table_width("cafe\xcc\x81"), 4);     /* a combining accent is none */
	CHECK_INT(cli_table_width("\xff" "ab"), 3);        /* a stray byte counts one */
}

static void tables_align_in_cells(void)
{
	static const char *const head[] = { "NAME", "STATE", "NOTE" };
	struct cli_table *t = cli_table_new(3, head);
	cli_table_row(t, (const char *const[]){ "问答数据", "valid", "x" });
	cli_table_row(t, (const char *const[]){ "qa", NULL, "" });
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	cli_table_print(t, f);
	fclose(f);
	CHECK_STR(s, "NAME      STATE  NOTE\n"
		     "问答数据  valid  x\n"
		     "qa        -\n" /* no trailing blanks */);
	free(s);
	cli_table_free(t);
}

static void cells_and_bytes(void)
{
	char b[64];
	json_t *v = json_pack("{s:i,s:n,s:b,s:[i,i]}", "n", 42, "z", "t", 1, "a", 0, 1);
	CHECK_STR(cli_table_cell(json_object_get(v, "n"), b, sizeof b), "42");
	CHECK_STR(cli_table_cell(json_object_get(v, "z"), b, sizeof b), "-");
	CHECK_STR(cli_table_cell(json_object_get(v, "missing"), b, sizeof b), "-");
	CHECK_STR(cli_table_cell(json_object_get(v, "t"), b, sizeof b), "true");
	CHECK_STR(cli_table_cell(json_object_get(v, "a"), b, sizeof b), "[0,1]");
	json_decref(v);
	CHECK_STR(cli_table_bytes(512, b, sizeof b), "512 B");
	CHECK_STR(cli_table_bytes(19434323148.8, b, sizeof b), "18.1 GiB");
	struct am_buf e;
	am_buf_init(&e, 256);
	cli_client_esc(&e, "问 a/b?");
	CHECK_STR(am_buf_str(&e), "%E9%97%AE%20a%2Fb%3F");
	am_buf_free(&e);
}

static void server_and_token_precedence(void)
{
	char dir[] = "/tmp/aimaas-unit-cli-XXXXXX", path[4096];
	CHECK(mkdtemp(dir) != NULL);
	char *old_xdg = getenv("XDG_CONFIG_HOME") ? strdup(getenv("XDG_CONFIG_HOME")) : NULL;
	setenv("XDG_CONFIG_HOME", dir, 1);
	unsetenv("AIMAAS_SERVER");
	unsetenv("AIMAAS_TOKEN");
	CHECK_INT(cli_client_config_path(path, sizeof path), 0);
	CHECK(strstr(path, "/aimaas/cli.json") != NULL);
	struct cli c;
	/* nothing anywhere: the default server, no token */
	CHECK_INT(cli_client_init(&c, NULL, NULL), CLI_OK);
	CHECK_STR(c.server, "http://127.0.0.1:8080");
	CHECK(c.token == NULL);
	cli_client_free(&c);
	/* the file login writes: its mode, and what it holds */
	CHECK_INT(cli_client_config_save("http://h:1", "amp_file"), 0);
	struct stat sb;
	CHECK_INT(stat(path, &sb), 0);
	CHECK_INT(sb.st_mode & 0777, 0600);
	CHECK_INT(cli_client_init(&c, NULL, NULL), CLI_OK);
	CHECK_STR(c.server, "http://h:1");
	CHECK_STR(c.token, "amp_file");
	cli_client_free(&c);
	/* the environment before the file */
	setenv("AIMAAS_SERVER", "h2:2/", 1);
	setenv("AIMAAS_TOKEN", "amp_env", 1);
	CHECK_INT(cli_client_init(&c, NULL, NULL), CLI_OK);
	CHECK_STR(c.server, "http://h2:2");
	CHECK_STR(c.token, "amp_env");
	cli_client_free(&c);
	/* flags before both; the file's token is not sent to another server */
	unsetenv("AIMAAS_TOKEN");
	CHECK_INT(cli_client_init(&c, "https://other", NULL), CLI_OK);
	CHECK_STR(c.server, "https://other");
	CHECK(c.token == NULL);
	cli_client_free(&c);
	char tf[4200];
	snprintf(tf, sizeof tf, "%s/tok", dir);
	FILE *f = fopen(tf, "w");
	fputs("amp_flag\n", f);
	fclose(f);
	CHECK_INT(cli_client_init(&c, "https://other", tf), CLI_OK);
	CHECK_STR(c.token, "amp_flag");
	cli_client_free(&c);
	FILE *saved = stderr;
	stderr = fopen("/dev/null", "w");
	CHECK_INT(cli_client_init(&c, NULL, "/nonexistent/token"), CLI_USAGE);
	fclose(stderr);
	stderr = saved;
	cli_client_free(&c);
	unsetenv("AIMAAS_SERVER");
	unlink(tf);
	unlink(path);
	snprintf(tf, sizeof tf, "%s/aimaas", dir);
	rmdir(tf);
	rmdir(dir);
	if (old_xdg)
		setenv("XDG_CONFIG_HOME", old_xdg, 1);
	else
		unsetenv("XDG_CONFIG_HOME");
	free(old_xdg);
}

void suite_cli(void)
{
	RUN(widths_count_terminal_cells);
	RUN(tables_align_in_cells);
	RUN(cells_and_bytes);
	RUN(server_and_token_precedence);
}
