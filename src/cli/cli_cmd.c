/* cli_cmd: see cli_cmd.h. The global options (--server, --token-file, -o)
 * may stand anywhere on the line; they are taken out before a subcommand
 * reads its own. */
#include "cli_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "cli_client.h"
#include "cli_verbs.h"

const char cli_cmd_usage[] =
	"  login      sign in to a server and keep an API token in ~/.config/aimaas/cli.json\n"
	"  ps         list deployments\n"
	"  models     list|show|register|rm|download models\n"
	"  deploy     deploy a model (--dry-run prints the plan and the engine command)\n"
	"  start, stop, restart, scale, rm   manage a deployment\n"
	"  logs       print (or follow with -f) a deployment's log\n"
	"  keys       create|list|revoke API keys for the /v1 gateway\n"
	"  datasets   upload|list|show|rm fine-tuning datasets\n"
	"  finetune   start|status|stop|logs fine-tuning jobs\n"
	"  usage      token usage by model, key or user\n"
	"\n"
	"Client options (any command above): --server URL, --token-file FILE, -o json|table.\n"
	"See docs/cli.md. Exit status: 0 ok, 1 the API refused, 2 bad usage, 3 server unreachable or login needed.\n";

/* Reads one line of at most size-1 bytes from fd into buf, without the
 * newline. 0, or -1 at end of input before any byte. */
static int read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	char ch;
	ssize_t r;
	while ((r = read(fd, &ch, 1)) == 1 && ch != '\n')
		if (n + 1 < size)
			buf[n++] = ch;
	buf[n] = '\0';
	if (n && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return r <= 0 && n == 0 ? -1 : 0;
}

/* Asks on the terminal (not stdin/stdout, which scripts may hold), echo off
 * when secret. 0, or -1 when there is no terminal. */
static int prompt(const char *what, int secret, char *buf, size_t size)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct termios old, quiet;
	int restore = 0;
	if (secret && tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	if (write(fd, what, strlen(what)) < 0) {
		/* nothing to do: the answer is still read */
	}
	int rc = read_line(fd, buf, size);
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	return rc;
}

static const char login_usage[] =
	"usage: aimaas login [--server URL] [--user NAME | NAME] [--password-stdin] [--days N]\n"
	"Signs in and keeps a personal API token (valid N days, default 90) with the server's\n"
	"URL in $XDG_CONFIG_HOME/aimaas/cli.json (~/.config/aimaas/cli.json), mode 0600.\n"
	"The password is asked on the terminal without echo, or read from stdin.\n";

/* aimaas login: a session, a personal token made with it, the session ended,
 * the token kept in the config file. */
static int login(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, 0, 'u' }, { "password-stdin", no_argument, 0, 'p' },
		{ "days", required_argument, 0, 'd' }, { "help", no_argument, 0, 'h' },  { 0, 0, 0, 0 },
	};
	char user[256] = "", pass[1024] = "", host[128] = "host";
	int from_stdin = 0, o, rc = CLI_USAGE;
	long days = 90;
	char *end;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'u': am_strlcpy(user, optarg, sizeof user); break;
		case 'p': from_stdin = 1; break;
		case 'd':
			days = strtol(optarg, &end, 10);
			if (*end || days < 1 || days > 3650)
				goto bad;
			break;
		case 'h': fputs(login_usage, stdout); return CLI_OK;
		default: goto bad;
		}
	}
	if (optind + 1 == argc && !*user) /* aimaas login NAME */
		am_strlcpy(user, argv[optind++], sizeof user);
	if (optind != argc)
		goto bad;
	if (!*user && getenv("AIMAAS_USER"))
		am_strlcpy(user, getenv("AIMAAS_USER"), sizeof user);
	if (!*user && (from_stdin || prompt("Username: ", 0, user, sizeof user) != 0 || !*user)) {
		fprintf(stderr, "aimaas: give --user NAME\n");
		goto bad;
	}
	if (from_stdin ? read_line(STDIN_FILENO, pass, sizeof pass) != 0 : prompt("Password: ", 1, pass, sizeof pass) != 0) {
		fprintf(stderr, "aimaas: no password (use --password-stdin without a terminal)\n");
		return CLI_USAGE;
	}
	/* a session first, then a personal token made with it: sessions end with the browser's rules */
	json_t *body = json_pack("{s:s,s:s}", "username", user, "password", pass);
	memset(pass, 0, sizeof pass);
	struct cli_resp r = { 0 }, t = { 0 }, bye = { 0 };
	free(c->token);
	c->token = NULL;
	rc = cli_client_call(c, "POST", "/api/v1/auth/login", body, &r);
	json_decref(body);
	if (rc == CLI_UNREACHABLE && r.status == 401)
		rc = CLI_REFUSED; /* wrong credentials: the server answered */
	if (rc != CLI_OK)
		goto out;
	c->token = am_strdup(json_string_value(json_object_get(r.json, "token")) ?: "");
	gethostname(host, sizeof host - 1);
	char name[200];
	am_fmt(name, sizeof name, "aimaas-cli %s %lld", host, (long long)time(NULL));
	body = json_pack("{s:s,s:I}", "name", name, "expires_in_days", (json_int_t)days);
	rc = cli_client_call(c, "POST", "/api/v1/tokens", body, &t);
	json_decref(body);
	if (rc != CLI_OK)
		goto out;
	cli_client_call(c, "POST", "/api/v1/auth/logout", NULL, &bye); /* the session is not needed any more */
	const char *tok = json_string_value(json_object_get(t.json, "token"));
	if (!tok || cli_client_config_save(c->server, tok) != 0) {
		rc = CLI_REFUSED;
		goto out;
	}
	char path[4096] = "";
	cli_client_config_path(path, sizeof path);
	if (c->json) {
		json_t *o2 = json_pack("{s:s,s:s,s:O,s:O,s:s}", "server", c->server, "user", user, "token_name",
				       json_object_get(t.json, "name") ?: json_null(), "expires_at",
				       json_object_get(t.json, "expires_at") ?: json_null(), "config", path);
		char *s = json_dumps(o2, JSON_COMPACT);
		puts(s);
		free(s);
		json_decref(o2);
	} else {
		char exp[64];
		const json_t *e = json_object_get(t.json, "expires_at");
		printf("Logged in to %s as %s; token '%s' (expires %s) kept in %s\n", c->server, user, name,
		       json_is_string(e) ? json_string_value(e) : (am_fmt(exp, sizeof exp, "in %ld days", days), exp), path);
	}
out:
	cli_resp_free(&r);
	cli_resp_free(&t);
	cli_resp_free(&bye);
	return rc;
bad:
	fputs(login_usage, stderr);
	return CLI_USAGE;
}

static const struct {
	const char *name;
	int (*fn)(struct cli *c, int argc, char **argv);
} verbs[] = {
	{ "login", login },
	{ "ps", cli_deploy_ps },
	{ "deploy", cli_deploy_create },
	{ "start", cli_deploy_action },
	{ "stop", cli_deploy_action },
	{ "restart", cli_deploy_action },
	{ "rm", cli_deploy_action },
	{ "scale", cli_deploy_scale },
	{ "logs", cli_deploy_logs },
	{ "models", cli_res_models },
	{ "keys", cli_res_keys },
	{ "datasets", cli_res_datasets },
	{ "finetune", cli_res_finetune },
	{ "usage", cli_res_usage },
};

int cli_cmd_run(int argc, char **argv)
{
	size_t v = 0;
	while (v < sizeof verbs / sizeof verbs[0] && strcmp(verbs[v].name, argv[0]) != 0)
		v++;
	if (v == sizeof verbs / sizeof verbs[0])
		return -1;
	/* the client options, wherever they stand, out of the subcommand's argv */
	const char *server = NULL, *token_file = NULL, *out = "table";
	char **rest = am_calloc((size_t)argc + 1, sizeof *rest);
	int n = 0, rc;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = !strcmp(a, "--server") ? &server
				   : !strcmp(a, "--token-file") ? &token_file
				   : (!strcmp(a, "-o") || !strcmp(a, "--output")) ? &out : NULL;
		if (!strcmp(a, "--")) {
			while (i < argc)
				rest[n++] = argv[i++];
			break;
		}
		if (dst) {
			if (i + 1 >= argc) {
				fprintf(stderr, "aimaas: %s needs a value\n", a);
				free(rest);
				return CLI_USAGE;
			}
			*dst = argv[++i];
		} else if (!strncmp(a, "--server=", 9)) {
			server = a + 9;
		} else if (!strncmp(a, "--token-file=", 13)) {
			token_file = a + 13;
		} else if (!strncmp(a, "--output=", 9) || !strncmp(a, "-o=", 3)) {
			out = strchr(a, '=') + 1;
		} else if (!strncmp(a, "-ojson", 6) && !a[6]) {
			out = "json";
		} else {
			rest[n++] = argv[i];
		}
	}
	if (strcmp(out, "json") && strcmp(out, "table")) {
		fprintf(stderr, "aimaas: -o takes json or table, not '%s'\n", out);
		free(rest);
		return CLI_USAGE;
	}
	struct cli c;
	rc = cli_client_init(&c, server, token_file);
	c.json = !strcmp(out, "json");
	if (rc == CLI_OK)
		rc = verbs[v].fn(&c, n, rest);
	cli_client_free(&c);
	free(rest);
	return rc;
}
