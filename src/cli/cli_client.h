/* cli_client: what the command line needs to speak the REST API: where the
 * server is and which token to send (flags, environment, or the config file
 * `login` writes), requests over libcurl, and the API's errors turned into
 * messages on stderr and exit codes. It is a client only: it never opens the
 * server's database. The token is read from a file, the environment or the
 * config file, never from argv, and never printed. */
#ifndef CLI_CLIENT_H
#define CLI_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "../base/am_buf.h"

/* Exit codes every command returns. */
enum {
	CLI_OK = 0,
	CLI_REFUSED = 1,     /* the API answered with an error (its message is on stderr) */
	CLI_USAGE = 2,       /* bad flags or arguments */
	CLI_UNREACHABLE = 3, /* no answer from the server, or it wants a login */
};

struct cli {
	char server[512]; /* base URL, no trailing '/' */
	char *token;      /* owned; NULL when none is known */
	int json;         /* -o json: print the API's JSON as it came */
};

/* An answer: status 0 when none came. json is the body parsed (NULL when it
 * is not JSON). Free with cli_resp_free. */
struct cli_resp {
	long status;
	struct am_buf body;
	json_t *json;
};

/* Fills c from, in this order, server_flag / token_file (NULL when not
 * given), AIMAAS_SERVER / AIMAAS_TOKEN, the config file, and the default
 * server http://127.0.0.1:8080. CLI_OK, or CLI_USAGE with a message on
 * stderr (an unreadable token file). */
int cli_client_init(struct cli *c, const char *server_flag, const char *token_file);
void cli_client_free(struct cli *c);
/* The config file's path: $XDG_CONFIG_HOME/aimaas/cli.json, else
 * ~/.config/aimaas/cli.json. 0, or -1 when no home is known. */
int cli_client_config_path(char *out, size_t size);
/* Writes the config file (its folder made 0700, the file 0600, replaced
 * atomically) with server and token. 0, or -1 with a message on stderr. */
int cli_client_config_save(const char *server, const char *token);

/* method path (from "/api/v1..."; query included) with body as JSON (NULL:
 * none) and the token as a bearer. CLI_OK on a 2xx answer; otherwise the
 * server's message (and field) is printed on stderr and the result is
 * CLI_REFUSED, or CLI_UNREACHABLE when nothing answered or the answer was
 * 401. r is filled in every case where an answer came. */
int cli_client_call(struct cli *c, const char *method, const char *path, json_t *body, struct cli_resp *r);
/* POSTs the file at file as the body of path, showing a progress bar on
 * stderr when progress is set; results as cli_client_call. */
int cli_client_upload(struct cli *c, const char *path, const char *file, int progress, struct cli_resp *r);
/* GETs an SSE stream at path and calls line with each event's data line as
 * it comes, until the server ends it or the process is stopped. Results as
 * cli_client_call. */
int cli_client_stream(struct cli *c, const char *path, void (*line)(const char *s, size_t n, void *data), void *data);
void cli_resp_free(struct cli_resp *r);
/* Prints r's body as the server sent it (for -o json), ending in a newline. */
void cli_client_print_raw(const struct cli_resp *r);
/* The id of ref in the collection at coll ("deployments", "models",
 * "datasets", "finetune/jobs", "keys"): digits are an id already, a name is
 * looked up (GET coll/NAME, or the list for keys: live keys only). Results
 * as cli_client_call (CLI_REFUSED with a message when there is no such). */
int cli_client_resolve(struct cli *c, const char *coll, const char *ref, long long *id);
/* Appends s to b percent-encoded for a path segment or a query value. */
void cli_client_esc(struct am_buf *b, const char *s);

#endif
