/* rt_local: the runtime of processes on this machine (am_runtime's ops on
 * am_proc). A workload is a process in its own session (a group signalled
 * whole) with its output appended to a log file; its reference is
 * "<pid>:<start time>:<log path>", so a recycled pid is never taken for it
 * and a restarted aimaas adopts it from the reference alone. Exits come from
 * a pidfd on the loop (or a look at /proc where the kernel has none); health
 * checks are HTTP GETs on loopback. */
#ifndef RT_LOCAL_H
#define RT_LOCAL_H

#include <event2/event.h>
#include <stdint.h>
#include <sys/types.h>

#include "am_runtime.h"

/* A local runtime on base; logs named by log_name go under log_dir. */
struct am_runtime *am_rt_local_new(struct event_base *base, const char *log_dir);
/* The reference of a live process found by its marker: "<pid>:<start>:<log>"
 * (the log read from its standard output, "" when it is not a file). */
void am_rt_local_ref(pid_t pid, uint64_t start, char *out, size_t size);
/* A child's environment: aimaas's own less its secrets (AIMAAS_* names
 * am_engine_secret_name calls secret) and less what set overrides, then
 * set, each name once (the first in set wins). Free with
 * am_rt_local_env_free. */
char **am_rt_local_env(char *const *set);
void am_rt_local_env_free(char **v);

#endif
