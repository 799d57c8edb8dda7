/* One background thread for long work (previews, spectra) so the UI keeps
 * answering keys. The UI thread submits jobs; the worker runs them one at a
 * time in order; the UI learns that one ended when the worker's file
 * descriptor becomes readable (poll it with stdin) and then runs the job's
 * `done` callback itself, on its own thread, from lt_worker_collect.
 *
 * A job is plain C: it never touches Lua or curses, and it works on data
 * it holds references to (snapshots), so the UI may go on changing the
 * model while it runs. Cancelling is cooperative: the job checks
 * lt_job_progress / lt_job_cancelled. */
#ifndef LT_WORKER_H
#define LT_WORKER_H

#include <stddef.h>

#include "core/err.h"

typedef struct lt_worker lt_worker;
typedef struct lt_job lt_job;

/* Runs on the worker. Returns 0 or a negative LT_E* code with err filled
 * (LT_ECANCEL when it stopped because it was cancelled). */
typedef int (*lt_job_run_fn)(lt_job *job, void *arg, lt_err *err);
/* Runs on the UI thread after run (or instead of it, for a job cancelled
 * before it started: rc LT_ECANCEL); must release arg. */
typedef void (*lt_job_done_fn)(void *arg, int rc, const lt_err *err);

/* Start the worker thread. NULL with err. */
lt_worker *lt_worker_new(lt_err *err);
/* Cancel everything, wait for the thread, run the pending done callbacks
 * (with LT_ECANCEL for jobs that never ran), free. NULL is a no-op. */
void lt_worker_free(lt_worker *w);

/* Readable when a job has ended; lt_worker_collect drains it. */
int lt_worker_fd(const lt_worker *w);

/* Queue run(arg) under a short label ("preview", "spectrum conv2.weight").
 * On failure (LT_ENOMEM) nothing is queued and done is not called. */
int lt_worker_submit(lt_worker *w, const char *label, lt_job_run_fn run, lt_job_done_fn done,
		     void *arg, lt_err *err);

/* Cancel the running job and drop the queued ones (their done callbacks
 * run at the next collect, with LT_ECANCEL). */
void lt_worker_cancel_all(lt_worker *w);

/* Cancel everything and wait until the worker is idle (a job that cannot
 * stop early, such as one LAPACK call, is waited for). The done callbacks
 * run at the next collect. For callers about to use what jobs share with
 * them (OpenBLAS's global thread setting, for one). */
void lt_worker_quiesce(lt_worker *w);

/* Run the done callbacks of the jobs that ended; returns how many. */
int lt_worker_collect(lt_worker *w);

/* The running job's label and progress in [0, 1] (copied into label, at
 * most size bytes), or 0 when idle. Queued jobs in *queued if not NULL. */
int lt_worker_status(lt_worker *w, char *label, size_t size, double *fraction, int *queued);

/* In a job: report progress; returns nonzero when the job is cancelled
 * (the job should then stop and return LT_ECANCEL). */
int lt_job_progress(lt_job *job, double fraction);
int lt_job_cancelled(const lt_job *job);

/* In a job: run fn(arg, out, size, err) in a child process and copy its
 * out[0..size) back. Cancelling kills the child at once, so a job can stop
 * within a poll interval even in the middle of one long library call
 * (a LAPACK eigensolver cannot be interrupted otherwise). fn sees a copy
 * of the process as it was (memory is shared copy-on-write); it must not
 * use curses, Lua or other threads' locks. Returns fn's result with its
 * err, LT_ECANCEL, or LT_EIO when the child could not start or died (the
 * signal is named). */
typedef int (*lt_child_fn)(void *arg, void *out, size_t size, lt_err *err);
int lt_job_in_child(lt_job *job, lt_child_fn fn, void *arg, void *out, size_t size, lt_err *err);

#endif
