#include "job/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"

struct lt_job {
	char label[64];
	lt_job_run_fn run;
	lt_job_done_fn done;
	void *arg;
	int rc;
	lt_err err;
	int cancel;           /* atomic: set by the UI, read by the job */
	double fraction;      /* atomic */
	struct lt_job *next;
};

struct lt_worker {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t idle;        /* signalled when a job ends */
	lt_job *queue, *queue_tail; /* waiting, in order */
	lt_job *running;
	lt_job *ended;              /* finished, waiting for collect (any order) */
	int quit;
	int pipe[2];                /* worker -> UI: one byte per ended job */
};

static void push_ended(lt_worker *w, lt_job *j)
{
	j->next = w->ended;
	w->ended = j;
	char byte = 1;
	/* A full pipe already wakes the UI; nothing is lost by a short write. */
	while (write(w->pipe[1], &byte, 1) < 0 && errno == EINTR)
		;
}

static void *worker_main(void *arg)
{
	lt_worker *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->queue && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->quit)
			break;
		lt_job *j = w->queue;
		w->queue = j->next;
		if (!w->queue)
			w->queue_tail = NULL;
		w->running = j;
		pthread_mutex_unlock(&w->mu);
		if (__atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE))
			j->rc = lt_err_set(&j->err, LT_ECANCEL, "cancelled");
		else
			j->rc = j->run(j, j->arg, &j->err);
		pthread_mutex_lock(&w->mu);
		w->running = NULL;
		push_ended(w, j);
		pthread_cond_broadcast(&w->idle);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

lt_worker *lt_worker_new(lt_err *err)
{
	lt_worker *w = lt_calloc(1, sizeof *w);
	if (!w) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	w->pipe[0] = w->pipe[1] = -1;
	if (pipe(w->pipe) != 0) {
		lt_err_set(err, LT_EIO, "cannot make the worker's pipe: %s", strerror(errno));
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(w->pipe[i], F_SETFL, fcntl(w->pipe[i], F_GETFL) | O_NONBLOCK);
		fcntl(w->pipe[i], F_SETFD, FD_CLOEXEC);
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_cond_init(&w->idle, NULL);
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		lt_err_set(err, LT_ENOMEM, "cannot start the worker thread");
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		pthread_cond_destroy(&w->idle);
		goto fail;
	}
	return w;
fail:
	if (w->pipe[0] >= 0)
		close(w->pipe[0]);
	if (w->pipe[1] >= 0)
		close(w->pipe[1]);
	lt_free(w);
	return NULL;
}

int lt_worker_fd(const lt_worker *w) { return w->pipe[0]; }

int lt_worker_submit(lt_worker *w, const char *label, lt_job_run_fn run, lt_job_done_fn done,
		     void *arg, lt_err *err)
{
	lt_job *j = lt_calloc(1, sizeof *j);
	if (!j)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	snprintf(j->label, sizeof j->label, "%s", label);
	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->mu);
	if (w->queue_tail)
		w->queue_tail->next = j;
	else
		w->queue = j;
	w->queue_tail = j;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

void lt_worker_cancel_all(lt_worker *w)
{
	pthread_mutex_lock(&w->mu);
	if (w->running)
		__atomic_store_n(&w->running->cancel, 1, __ATOMIC_RELEASE);
	while (w->queue) {
		lt_job *j = w->queue;
		w->queue = j->next;
		j->rc = lt_err_set(&j->err, LT_ECANCEL, "cancelled");
		push_ended(w, j);
	}
	w->queue_tail = NULL;
	pthread_mutex_unlock(&w->mu);
}

void lt_worker_quiesce(lt_worker *w)
{
	lt_worker_cancel_all(w);
	pthread_mutex_lock(&w->mu);
	while (w->running)
		pthread_cond_wait(&w->idle, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

int lt_worker_collect(lt_worker *w)
{
	char buf[64];
	while (read(w->pipe[0], buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&w->mu);
	lt_job *list = w->ended;
	w->ended = NULL;
	pthread_mutex_unlock(&w->mu);
	/* Oldest first: the list was built by pushing on the front. */
	lt_job *rev = NULL;
	while (list) {
		lt_job *n = list->next;
		list->next = rev;
		rev = list;
		list = n;
	}
	int count = 0;
	while (rev) {
		lt_job *n = rev->next;
		rev->done(rev->arg, rev->rc, &rev->err);
		lt_free(rev);
		rev = n;
		count++;
	}
	return count;
}

int lt_worker_status(lt_worker *w, char *label, size_t size, double *fraction, int *queued)
{
	int busy = 0, q = 0;
	pthread_mutex_lock(&w->mu);
	if (w->running) {
		busy = 1;
		if (label && size)
			snprintf(label, size, "%s", w->running->label);
		if (fraction)
			__atomic_load(&w->running->fraction, fraction, __ATOMIC_RELAXED);
	}
	for (lt_job *j = w->queue; j; j = j->next)
		q++;
	pthread_mutex_unlock(&w->mu);
	if (queued)
		*queued = q;
	return busy;
}

int lt_job_progress(lt_job *job, double fraction)
{
	__atomic_store(&job->fraction, &fraction, __ATOMIC_RELAXED);
	return lt_job_cancelled(job);
}

int lt_job_cancelled(const lt_job *job)
{
	return __atomic_load_n(&job->cancel, __ATOMIC_ACQUIRE);
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k, n -= (size_t)k;
	}
	return 0;
}

/* What the child sends before its output. */
struct child_head {
	int rc;
	lt_err err;
};

int lt_job_in_child(lt_job *job, lt_child_fn fn, void *arg, void *out, size_t size, lt_err *err)
{
	int fds[2];
	if (pipe(fds))
		return lt_err_set(err, LT_EIO, "cannot start a child process: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		return lt_err_set(err, LT_EIO, "cannot start a child process: %s", strerror(e));
	}
	if (pid == 0) {
		close(fds[0]);
		struct child_head head = {0};
		head.rc = fn(arg, out, size, &head.err);
		int bad = write_all(fds[1], &head, sizeof head) || (head.rc == 0 && write_all(fds[1], out, size));
		_exit(bad);
	}
	close(fds[1]);
	struct child_head head;
	size_t want = sizeof head + size, got = 0;
	int cancelled = 0;
	while (got < want) {
		if (lt_job_cancelled(job)) {
			cancelled = 1;
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd p = {fds[0], POLLIN, 0};
		if (poll(&p, 1, 20) <= 0)
			continue;
		char *dst = got < sizeof head ? (char *)&head + got : (char *)out + (got - sizeof head);
		size_t room = got < sizeof head ? sizeof head - got : want - got;
		ssize_t k = read(fds[0], dst, room);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break; /* the child ended early */
		got += (size_t)k;
		if (got == sizeof head && head.rc != 0)
			break; /* it failed: no output follows */
	}
	close(fds[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (cancelled)
		return lt_err_set(err, LT_ECANCEL, "cancelled");
	if (got >= sizeof head && head.rc != 0) {
		if (err)
			*err = head.err;
		return head.rc;
	}
	if (got == want)
		return 0;
	if (WIFSIGNALED(status))
		return lt_err_set(err, LT_EIO, "the child process computing it was killed by signal %d (%s)",
				  WTERMSIG(status), strsignal(WTERMSIG(status)));
	return lt_err_set(err, LT_EIO, "the child process computing it ended without its result");
}

void lt_worker_free(lt_worker *w)
{
	if (!w)
		return;
	lt_worker_cancel_all(w);
	pthread_mutex_lock(&w->mu);
	w->quit = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	lt_worker_collect(w);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	pthread_cond_destroy(&w->idle);
	close(w->pipe[0]);
	close(w->pipe[1]);
	lt_free(w);
}
