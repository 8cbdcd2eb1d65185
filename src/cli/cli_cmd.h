/* cli_cmd: the command line's subcommands that speak the REST API (login, ps,
 * models, deploy, start/stop/restart/scale/rm, logs, keys, datasets,
 * finetune, usage), dispatched from main's one hook. */
#ifndef CLI_CMD_H
#define CLI_CMD_H

/* The commands' lines for aimaas's own usage text. */
extern const char cli_cmd_usage[];

/* Runs argv[0] (the subcommand) with its arguments and returns its exit code
 * (cli_client.h's CLI_*), or -1 when argv[0] is no command of the CLI's. */
int cli_cmd_run(int argc, char **argv);

#endif
