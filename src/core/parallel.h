/* Run independent tasks on a few threads: for data-parallel passes in
 * kernels that do not go through BLAS (selection, statistics). */
#ifndef LT_PARALLEL_H
#define LT_PARALLEL_H

/* fn(ctx, t) for t in [0, tasks), each on its own thread (the calling
 * thread runs task 0). When a thread cannot be created its task runs on
 * the calling thread, so every task always runs exactly once. */
void lt_parallel_run(int tasks, void (*fn)(void *ctx, int task), void *ctx);

#endif
