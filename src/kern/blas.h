/* The only door to OpenBLAS: GEMM, SYRK, thread control, and the choice of the
 * CPU kernels OpenBLAS uses. Nothing else includes cblas.h. */
#ifndef LT_BLAS_H
#define LT_BLAS_H

/* C[m,n] = alpha * op(A) op(B) + beta * C, all row-major. trans_a/trans_b
 * nonzero mean A is stored [k,m] / B is stored [n,k].
 * Threads: inference and training call this from several threads at once
 * after lt_blas_set_threads(1), each call then running in its caller's
 * thread. OpenBLAS's pthreads builds (Debian's 0.3.21 among them) allow
 * that; a build without thread-safe buffers would not. */
void lt_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
	      const float *a, int lda, const float *b, int ldb, float beta,
	      float *c, int ldc);

/* y[m] = alpha * A[m,n] x + beta * y (A row-major; trans_a: A stored [n,m]). */
void lt_sgemv(int trans_a, int m, int n, float alpha, const float *a, int lda,
	      const float *x, float beta, float *y);

/* Symmetric rank-k update in double: C[n,n] = alpha * A A^T + beta * C
 * with A stored [n,k] (trans nonzero: C = alpha * A^T A, A stored [k,n]),
 * row-major. Only the upper triangle of C (j >= i) is written. */
void lt_dsyrk(int trans, int n, int k, double alpha, const double *a, int lda,
	      double beta, double *c, int ldc);

/* Threads OpenBLAS may use for one call (1 when our own threads split the
 * work); lt_blas_threads reports the current setting. */
void lt_blas_set_threads(int n);
int lt_blas_threads(void);
/* Cores available to this process. */
int lt_cpu_count(void);

/* Name of the kernel family OpenBLAS chose, e.g. "Haswell". */
const char *lt_blas_core(void);

/* CPU features that decide which OpenBLAS core fits. */
enum { LT_CPU_AVX2 = 1, LT_CPU_FMA = 2, LT_CPU_AVX512 = 4, LT_CPU_AMD = 8 };
unsigned lt_cpu_features(void);

/* The core OpenBLAS should use instead of `current` on a CPU with
 * `features`, or NULL when current is already right (or nothing better is
 * known). Pure function, so tests can check every case. */
const char *lt_blas_better_core(const char *current, unsigned features);

/* Environment variable that disables the automatic choice when set to 0. */
#define LT_BLAS_AUTOCORE_ENV "LATHE_BLAS_AUTOCORE"

/* Called first thing in main: if OpenBLAS chose a generic core on a CPU
 * that has AVX2/AVX-512, set OPENBLAS_CORETYPE and re-execute the program
 * once so OpenBLAS loads with the right kernels. Does nothing when the user
 * set OPENBLAS_CORETYPE, when LATHE_BLAS_AUTOCORE=0, or after the re-exec.
 * Returns only if no re-exec happened (or exec failed, which just keeps the
 * slower kernels). */
void lt_blas_autocore(char **argv);

/* How the current core was chosen: "auto" (lathe re-selected), "user"
 * (OPENBLAS_CORETYPE from the environment), or "openblas". */
const char *lt_blas_core_origin(void);

#endif
