/* The background worker (src/job/worker.c): order, completion through the
 * pipe, cancelling queued and running jobs, quiesce, status, and
 * allocation failures. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "job/worker.h"
#include "tap.h"

static int order[16], n_order, done_rc[16], n_done;

static int record(lt_job *job, void *arg, lt_err *err)
{
	(void)job, (void)err;
	order[n_order++] = (int)(intptr_t)arg;
	return 0;
}

static void note_done(void *arg, int rc, const lt_err *err)
{
	(void)err;
	done_rc[(int)(intptr_t)arg] = rc;
	n_done++;
}

/* Spins until cancelled, reporting progress. */
static volatile int spinning;

static int spin(lt_job *job, void *arg, lt_err *err)
{
	(void)arg;
	spinning = 1;
	for (;;) {
		if (lt_job_progress(job, 0.25))
			return lt_err_set(err, LT_ECANCEL, "cancelled");
		usleep(1000);
	}
}

static int fails(lt_job *job, void *arg, lt_err *err)
{
	(void)job, (void)arg;
	return lt_err_set(err, LT_EINVAL, "no good");
}

static char failed_msg[64];
static void keep_msg(void *arg, int rc, const lt_err *err)
{
	note_done(arg, rc, err);
	snprintf(failed_msg, sizeof failed_msg, "%.60s", err->msg);
}

/* Collect until n callbacks in all have run (or a second passes). */
static void collect_until(lt_worker *w, int n)
{
	for (int i = 0; i < 1000 && n_done < n; i++) {
		struct pollfd p = {lt_worker_fd(w), POLLIN, 0};
		poll(&p, 1, 1);
		lt_worker_collect(w);
	}
}

/* Child functions for lt_job_in_child. */
static int child_fill(void *arg, void *out, size_t size, lt_err *err)
{
	(void)arg, (void)err;
	unsigned char *o = out;
	for (size_t i = 0; i < size; i++)
		o[i] = (unsigned char)(i * 7 + 3);
	return 0;
}

static int child_fails(void *arg, void *out, size_t size, lt_err *err)
{
	(void)arg, (void)out, (void)size;
	return lt_err_set(err, LT_ERANGE, "too big in the child");
}

static int child_hangs(void *arg, void *out, size_t size, lt_err *err)
{
	(void)arg, (void)out, (void)size, (void)err;
	for (;;)
		pause(); /* as a LAPACK call that never checks for cancelling */
	return 0;
}

static int child_dies(void *arg, void *out, size_t size, lt_err *err)
{
	(void)arg, (void)out, (void)size, (void)err;
	kill(getpid(), SIGTERM);
	for (;;)
		pause();
	return 0;
}

static unsigned char child_out[300000]; /* more than a pipe holds */
static lt_child_fn child_fn;
static char child_msg[160];

static int in_child(lt_job *job, void *arg, lt_err *err)
{
	(void)arg;
	spinning = 1;
	int rc = lt_job_in_child(job, child_fn, NULL, child_out, sizeof child_out, err);
	snprintf(child_msg, sizeof child_msg, "%.150s", rc ? err->msg : "");
	return rc;
}

static int run_child(lt_worker *w, lt_child_fn fn)
{
	n_done = 0, spinning = 0;
	child_fn = fn;
	lt_worker_submit(w, "child", in_child, note_done, (void *)0, NULL);
	collect_until(w, 1);
	return n_done == 1 ? done_rc[0] : 1;
}

int main(void)
{
	lt_err err = {0};
	lt_worker *w = lt_worker_new(&err);
	tap_ok(w != NULL, "worker starts (%s)", err.msg);
	if (!w)
		return tap_done();

	for (intptr_t i = 0; i < 5; i++)
		lt_worker_submit(w, "record", record, note_done, (void *)i, NULL);
	struct pollfd p = {lt_worker_fd(w), POLLIN, 0};
	tap_ok(poll(&p, 1, 2000) == 1, "the fd becomes readable when a job ends");
	collect_until(w, 5);
	int in_order = n_order == 5;
	for (int i = 0; i < n_order; i++)
		in_order &= order[i] == i;
	tap_ok(in_order, "jobs run once each, in the order submitted");
	tap_ok(n_done == 5 && !done_rc[0] && !done_rc[4], "each done callback ran with rc 0");

	n_done = 0;
	lt_worker_submit(w, "fails", fails, keep_msg, (void *)0, NULL);
	collect_until(w, 1);
	tap_ok(done_rc[0] == LT_EINVAL && !strcmp(failed_msg, "no good"), "a job's error reaches done");

	/* a running job and two queued ones, cancelled */
	n_done = 0, spinning = 0;
	lt_worker_submit(w, "spin", spin, note_done, (void *)0, NULL);
	lt_worker_submit(w, "record", record, note_done, (void *)1, NULL);
	lt_worker_submit(w, "record", record, note_done, (void *)2, NULL);
	while (!spinning)
		usleep(100);
	char label[32] = "";
	double frac = -1;
	int queued = -1;
	usleep(5000);
	int busy = lt_worker_status(w, label, sizeof label, &frac, &queued);
	tap_ok(busy && !strcmp(label, "spin") && frac == 0.25 && queued == 2,
	       "status: running '%s' at %.2f, %d queued", label, frac, queued);
	n_order = 0;
	lt_worker_cancel_all(w);
	collect_until(w, 3);
	tap_ok(n_done == 3 && done_rc[0] == LT_ECANCEL && done_rc[1] == LT_ECANCEL &&
		       done_rc[2] == LT_ECANCEL && n_order == 0,
	       "cancel_all stops the running job and drops the queued ones (each told LT_ECANCEL)");
	tap_ok(!lt_worker_status(w, NULL, 0, NULL, NULL), "idle afterwards");

	/* quiesce waits for the running job to stop */
	n_done = 0, spinning = 0;
	lt_worker_submit(w, "spin", spin, note_done, (void *)0, NULL);
	while (!spinning)
		usleep(100);
	lt_worker_quiesce(w);
	tap_ok(!lt_worker_status(w, NULL, 0, NULL, NULL), "quiesce returns with the worker idle");
	collect_until(w, 1);
	tap_ok(n_done == 1 && done_rc[0] == LT_ECANCEL, "the quiesced job's done ran at collect");

	/* allocation failure: nothing queued, done not called */
	n_done = 0;
	lt_mem_fail_after(0);
	int rc = lt_worker_submit(w, "record", record, note_done, (void *)0, &err);
	lt_mem_fail_after(-1);
	collect_until(w, 1);
	tap_ok(rc == LT_ENOMEM && n_done == 0, "submit reports ENOMEM and queues nothing");

	/* work in a child process */
	memset(child_out, 0, sizeof child_out);
	int same = run_child(w, child_fill) == 0;
	for (size_t i = 0; i < sizeof child_out; i++)
		same &= child_out[i] == (unsigned char)(i * 7 + 3);
	tap_ok(same, "a child's output (%zu bytes) is copied back", sizeof child_out);
	tap_ok(run_child(w, child_fails) == LT_ERANGE && !strcmp(child_msg, "too big in the child"),
	       "a child's error reaches the job: %s", child_msg);
	rc = run_child(w, child_dies);
	tap_ok(rc == LT_EIO && strstr(child_msg, "signal 15"), "a child killed by a signal is reported: %s",
	       child_msg);
	n_done = 0, spinning = 0;
	child_fn = child_hangs;
	lt_worker_submit(w, "child", in_child, note_done, (void *)0, NULL);
	while (!spinning)
		usleep(100);
	usleep(20000);
	lt_worker_cancel_all(w);
	collect_until(w, 1);
	tap_ok(n_done == 1 && done_rc[0] == LT_ECANCEL, "cancelling kills a child that never returns");

	/* freeing with work queued runs every done callback */
	n_done = 0, spinning = 0;
	lt_worker_submit(w, "spin", spin, note_done, (void *)0, NULL);
	lt_worker_submit(w, "record", record, note_done, (void *)1, NULL);
	while (!spinning)
		usleep(100);
	lt_worker_free(w);
	tap_ok(n_done == 2 && done_rc[0] == LT_ECANCEL && done_rc[1] == LT_ECANCEL,
	       "free cancels, joins and runs the pending callbacks");

	lt_mem_fail_after(0);
	lt_worker *none = lt_worker_new(&err);
	lt_mem_fail_after(-1);
	tap_ok(!none && err.code == LT_ENOMEM, "worker_new reports ENOMEM");
	return tap_done();
}
