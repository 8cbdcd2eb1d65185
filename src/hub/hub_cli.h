/* hub_cli: `aimaas download`, the downloader on its own: the same file
 * choice, resume, verification and progress as the server's downloads
 * (hub_dl), for a Kubernetes node's cache (run by a Job in aimaas's image)
 * and for operators. Progress as JSON lines on stdout; the token only from
 * the environment (never argv). */
#ifndef HUB_CLI_H
#define HUB_CLI_H

/* argv[0] is "download". Exit status: 0 done, 1 failed, 2 bad usage,
 * 3 paused by SIGTERM/SIGINT (a rerun resumes from the .part files). */
int hub_cli_download(int argc, char **argv);

#endif
