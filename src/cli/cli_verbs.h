/* cli_verbs: the subcommands cli_cmd dispatches to. Each takes the client
 * (server and token resolved), and argv from the subcommand's own name on;
 * each returns a CLI_* exit code, having printed what went wrong. */
#ifndef CLI_VERBS_H
#define CLI_VERBS_H

#include "cli_client.h"

/* cli_deploy.c: deployments. */
int cli_deploy_ps(struct cli *c, int argc, char **argv);
int cli_deploy_create(struct cli *c, int argc, char **argv);
/* start, stop, restart, rm (argv[0] says which) */
int cli_deploy_action(struct cli *c, int argc, char **argv);
int cli_deploy_scale(struct cli *c, int argc, char **argv);
int cli_deploy_logs(struct cli *c, int argc, char **argv);
/* Prints the log at path ("/api/v1/.../logs", no query): the last tail
 * lines, then with follow every new line until interrupted. */
int cli_deploy_print_log(struct cli *c, const char *path, int follow, long tail);

/* cli_res.c: models, keys, datasets, fine-tuning, usage. */
int cli_res_models(struct cli *c, int argc, char **argv);
int cli_res_keys(struct cli *c, int argc, char **argv);
int cli_res_datasets(struct cli *c, int argc, char **argv);
int cli_res_finetune(struct cli *c, int argc, char **argv);
int cli_res_usage(struct cli *c, int argc, char **argv);

#endif
