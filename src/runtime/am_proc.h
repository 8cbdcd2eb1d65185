/* am_proc: engine processes on this machine. Each starts in its own session
 * (so its process group can be signalled whole, and a restart of aimaas does
 * not take it down), with stdout and stderr appended to its log file and an
 * environment built from scratch. A process is identified by pid plus its
 * start time, so a recycled pid is never mistaken for an engine. */
#ifndef AM_PROC_H
#define AM_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The variable that marks a child as aimaas's: AIMAAS_OWNER=<data dir id>:
 * <kind>:<id>:<token>, recorded in the database before the spawn, so that a
 * restart finds (and adopts or ends) what a killed aimaas started. */
#define AM_PROC_OWNER_VAR "AIMAAS_OWNER"

/* Starts argv[0] (looked up on PATH when it has no '/') with exactly env
 * plus AIMAAS_OWNER=owner when owner is not NULL (an AIMAAS_OWNER in env is
 * dropped). The child gets only stdin (/dev/null) and stdout/stderr (the log,
 * appended): every other descriptor is closed before exec. 0 with *pid, or
 * -1 with errbuf (e.g. the binary does not exist). For tests,
 * AIMAAS_TEST_CRASH_AFTER_SPAWN=<kind>|any SIGKILLs aimaas itself right after
 * a successful spawn whose owner has ":<kind>:". */
int am_proc_spawn(char *const argv[], char *const env[], const char *owner, const char *log_path, pid_t *pid,
		  char *errbuf, size_t errsize);
/* A fresh marker "<owner_id>:<kind>:<id>:<random token>" for one spawn. */
void am_proc_marker(const char *owner_id, const char *kind, long long id, char *out, size_t size);
/* Called for each live process of this user whose environment has
 * AIMAAS_OWNER=<prefix>...; rest is what follows the prefix. */
typedef void (*am_proc_marked_cb)(pid_t pid, pid_t pgid, uint64_t start_time, const char *rest, void *data);
/* Walks /proc for processes marked with prefix (other users' are skipped;
 * so are zombies). Returns how many were found, or -1 without /proc. */
int am_proc_marked(const char *prefix, am_proc_marked_cb cb, void *data);
/* The process's start time (clock ticks since boot, /proc/PID/stat field 22),
 * or 0 when there is no such live process (zombies count as gone). */
uint64_t am_proc_start_time(pid_t pid);
/* 1 when pid is alive and started at start_time. */
int am_proc_same(pid_t pid, uint64_t start_time);
/* 1 when any process of the group is still alive. */
int am_proc_group_alive(pid_t pgid);
/* Signals the whole process group. */
void am_proc_kill_group(pid_t pgid, int sig);
/* A pidfd for pid (readable once it exits), or -1 where the kernel has none. */
int am_proc_pidfd(pid_t pid);
/* Reaps pid when it is our child; returns its wait status text ("exit 1",
 * "signal 9") in out, or "" when it was not ours. */
void am_proc_reap(pid_t pid, char *out, size_t size);
/* Keeps a log under max bytes: past it, the file is copied to PATH.1 and
 * truncated (the engine keeps its descriptor, which appends). */
void am_proc_rotate(const char *path, uint64_t max);
/* The last n lines (at most 64 KiB) of a file, oldest first; free each
 * and the array. Returns how many. */
int am_proc_tail(const char *path, int n, char ***lines);
void am_proc_lines_free(char **lines, int n);
/* Does a TCP port on 127.0.0.1 accept a bind right now? */
int am_proc_port_free(int port);

#endif
