#include "core/parallel.h"

#include <pthread.h>

#define MAX_TASKS 64

struct task {
	void (*fn)(void *ctx, int task);
	void *ctx;
	int index;
};

static void *run_task(void *arg)
{
	struct task *t = arg;
	t->fn(t->ctx, t->index);
	return NULL;
}

void lt_parallel_run(int tasks, void (*fn)(void *ctx, int task), void *ctx)
{
	pthread_t tid[MAX_TASKS];
	struct task task[MAX_TASKS];
	int started[MAX_TASKS] = {0};
	for (int base = 0; base < tasks; base += MAX_TASKS) {
		int n = tasks - base < MAX_TASKS ? tasks - base : MAX_TASKS;
		for (int i = 1; i < n; i++) {
			task[i] = (struct task){fn, ctx, base + i};
			started[i] = pthread_create(&tid[i], NULL, run_task, &task[i]) == 0;
		}
		fn(ctx, base);
		for (int i = 1; i < n; i++) {
			if (started[i])
				pthread_join(tid[i], NULL);
			else
				fn(ctx, base + i);
		}
	}
}
