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

/* Starts argv[0] (looked up on PATH when it has no '/') with exactly env.
 * 0 with *pid, or -1 with errbuf (e.g. the binary does not exist). */
int am_proc_spawn(char *const argv[], char *const env[], const char *log_path, pid_t *pid, char *errbuf, size_t errsize);
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
