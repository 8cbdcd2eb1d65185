/* am_logs: keeps the engines' and fine-tuning jobs' logs within a total
 * size per data dir. Each log is rotated to <log>.1 by its owner past
 * cfg.log_max_bytes (am_proc_rotate: copy, then truncate, since the child
 * writes through an O_APPEND descriptor it inherited); this prunes whole
 * files, oldest first, when all of them pass cfg.logs_total_max_bytes:
 * rotated parts first, then the logs of stopped or deleted deployments and
 * of finished jobs. The current log of a running engine or job is never
 * removed. Runs on the main loop: at start and every minute. */
#ifndef AM_LOGS_H
#define AM_LOGS_H

struct am_server;
struct am_logs;

/* Prunes once now and then on a timer on srv->base; free with am_logs_free
 * before the store closes. */
struct am_logs *am_logs_start(struct am_server *srv);
void am_logs_free(struct am_logs *l);

/* One pass: removes logs until the total is within the cap. Returns how
 * many files it removed. */
int am_logs_prune(struct am_server *srv);

#endif
