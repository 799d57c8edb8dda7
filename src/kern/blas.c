#include "kern/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Marker set before the re-exec so that it happens at most once and so
 * that --version can say the core was chosen by lathe. */
#define REEXEC_MARK "LATHE_BLAS_AUTOCORE_DONE"

void lt_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
	      const float *a, int lda, const float *b, int ldb, float beta,
	      float *c, int ldc)
{
	cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
		    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda,
		    b, ldb, beta, c, ldc);
}

void lt_sgemv(int trans_a, int m, int n, float alpha, const float *a, int lda,
	      const float *x, float beta, float *y)
{
	if (trans_a)
		cblas_sgemv(CblasRowMajor, CblasTrans, n, m, alpha, a, lda, x, 1, beta, y, 1);
	else
		cblas_sgemv(CblasRowMajor, CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1);
}

void lt_dsyrk(int trans, int n, int k, double alpha, const double *a, int lda,
	      double beta, double *c, int ldc)
{
	cblas_dsyrk(CblasRowMajor, CblasUpper, trans ? CblasTrans : CblasNoTrans,
		    n, k, alpha, a, lda, beta, c, ldc);
}

void lt_blas_set_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}

int lt_blas_threads(void)
{
	return openblas_get_num_threads();
}

int lt_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : (int)n;
}

const char *lt_blas_core(void)
{
	return openblas_get_corename();
}

unsigned lt_cpu_features(void)
{
	unsigned f = 0;
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	/* __builtin_cpu_supports also checks that the OS saves the wide
	 * registers (XGETBV), which is what matters for running the kernels. */
	if (__builtin_cpu_supports("avx2"))
		f |= LT_CPU_AVX2;
	if (__builtin_cpu_supports("fma"))
		f |= LT_CPU_FMA;
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
		f |= LT_CPU_AVX512;
	if (__builtin_cpu_is("amd"))
		f |= LT_CPU_AMD;
#endif
	return f;
}

/* Cores OpenBLAS falls back to when it does not recognise a CPU: they run
 * SSE-era kernels at a fraction of what AVX2/AVX-512 hardware can do. */
static int generic_core(const char *core)
{
	static const char *const generic[] = {
		"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
		"Katmai", "Coppermine", "Northwood", "Banias", "Opteron",
		"Opteron_SSE3", "Barcelona", "Bobcat", "Unknown", "generic", NULL,
	};
	for (int i = 0; generic[i]; i++)
		if (strcasecmp(core, generic[i]) == 0)
			return 1;
	return 0;
}

const char *lt_blas_better_core(const char *current, unsigned features)
{
	if (!current || !generic_core(current))
		return NULL;
	if (features & LT_CPU_AVX512)
		return "SkylakeX";
	if ((features & (LT_CPU_AVX2 | LT_CPU_FMA)) == (LT_CPU_AVX2 | LT_CPU_FMA))
		return (features & LT_CPU_AMD) ? "Zen" : "Haswell";
	return NULL;
}

void lt_blas_autocore(char **argv)
{
	const char *opt = getenv(LT_BLAS_AUTOCORE_ENV);
	if (getenv(REEXEC_MARK) || getenv("OPENBLAS_CORETYPE") || (opt && !strcmp(opt, "0")))
		return;
	/* LATHE_BLAS_ASSUME_CORE lets tests exercise the re-exec on CPUs that
	 * OpenBLAS already recognises. */
	const char *assumed = getenv("LATHE_BLAS_ASSUME_CORE");
	const char *better = lt_blas_better_core(assumed ? assumed : lt_blas_core(), lt_cpu_features());
	if (!better)
		return;
	if (setenv("OPENBLAS_CORETYPE", better, 1) || setenv(REEXEC_MARK, "1", 1))
		return;
	execv("/proc/self/exe", argv);
	/* exec failed: keep running with the core we have; undo the marks so
	 * child processes are not misled. */
	unsetenv("OPENBLAS_CORETYPE");
	unsetenv(REEXEC_MARK);
}

const char *lt_blas_core_origin(void)
{
	if (getenv(REEXEC_MARK))
		return "auto";
	if (getenv("OPENBLAS_CORETYPE"))
		return "user";
	return "openblas";
}
