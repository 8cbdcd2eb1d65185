/* am_work: one worker thread for work proportional to an input (checking
 * an uploaded dataset, hashing, writing and syncing a file), so the main
 * loop only dispatches. A job's run() runs on the worker; its done() runs
 * afterwards on the loop that owns the am_work, woken by event_active()
 * (libevent is set up with evthread_use_pthreads). Jobs run one at a time in
 * the order submitted.
 *
 * Hand-off: arg belongs to the worker from submit until run() returns, then
 * to the loop; nothing else is shared. run() must not touch loop state
 * (requests, the store, the server struct). */
#ifndef AM_WORK_H
#define AM_WORK_H

struct event_base;
struct am_work;

typedef void (*am_work_run_fn)(void *arg);
/* cancelled: 1 when the am_work is being freed and run() did not run (or
 * its result cannot be delivered): free arg and touch nothing else. */
typedef void (*am_work_done_fn)(void *arg, int cancelled);

/* Starts the worker; NULL when the thread cannot be created. */
struct am_work *am_work_new(struct event_base *base);
/* Queues a job; 0, or -1 when the worker is stopping (nothing is called). */
int am_work_submit(struct am_work *w, am_work_run_fn run, am_work_done_fn done, void *arg);
/* Jobs queued or running now (for tests and /metrics). */
int am_work_pending(struct am_work *w);
/* Waits for the running job, cancels the others (done(arg, 1)) and frees.
 * Call on the loop's thread. NULL is a no-op. */
void am_work_free(struct am_work *w);

#endif
