/* BLAS door: GEMM/GEMV against a naive reference, and the core choice. */
#include <string.h>

#include "core/mem.h"
#include "kern/blas.h"
#include "tap.h"

static float frand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void test_gemm(int ta, int tb)
{
	int m = 37, n = 29, k = 53;
	unsigned seed = 7;
	float *a = lt_malloc(sizeof(float) * m * k), *b = lt_malloc(sizeof(float) * k * n);
	float *c = lt_malloc(sizeof(float) * m * n), *ref = lt_malloc(sizeof(float) * m * n);
	for (int i = 0; i < m * k; i++) a[i] = frand(&seed);
	for (int i = 0; i < k * n; i++) b[i] = frand(&seed);
	for (int i = 0; i < m * n; i++) c[i] = ref[i] = frand(&seed);
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double acc = 0;
			for (int p = 0; p < k; p++)
				acc += (double)(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
			ref[i * n + j] = (float)(2.0 * acc + 0.5 * ref[i * n + j]);
		}
	lt_sgemm(ta, tb, m, n, k, 2.0f, a, ta ? m : k, b, tb ? k : n, 0.5f, c, n);
	double worst = 0;
	for (int i = 0; i < m * n; i++)
		worst = fmax(worst, fabs(c[i] - ref[i]));
	tap_ok(worst < 1e-4, "sgemm trans_a=%d trans_b=%d max error %.2g", ta, tb, worst);
	/* gemv: first row of A times a vector equals the GEMM column. */
	float y[64] = {0}, yref[64] = {0};
	for (int i = 0; i < m; i++)
		for (int p = 0; p < k; p++)
			yref[i] += (ta ? a[p * m + i] : a[i * k + p]) * b[p * n];
	float x[64];
	for (int p = 0; p < k; p++)
		x[p] = b[p * n];
	lt_sgemv(ta, m, k, 1.0f, a, ta ? m : k, x, 0.0f, y);
	worst = 0;
	for (int i = 0; i < m; i++)
		worst = fmax(worst, fabs(y[i] - yref[i]));
	tap_ok(worst < 1e-4, "sgemv trans_a=%d max error %.2g", ta, worst);
	lt_free(a);
	lt_free(b);
	lt_free(c);
	lt_free(ref);
}

static void test_core_choice(void)
{
	unsigned avx2 = LT_CPU_AVX2 | LT_CPU_FMA;
	tap_ok(!strcmp(lt_blas_better_core("Prescott", avx2 | LT_CPU_AVX512), "SkylakeX"),
	       "Prescott on AVX-512 -> SkylakeX");
	tap_ok(!strcmp(lt_blas_better_core("Prescott", avx2), "Haswell"), "Prescott on AVX2 Intel -> Haswell");
	tap_ok(!strcmp(lt_blas_better_core("Barcelona", avx2 | LT_CPU_AMD), "Zen"), "Barcelona on AVX2 AMD -> Zen");
	tap_ok(lt_blas_better_core("SkylakeX", avx2 | LT_CPU_AVX512) == NULL, "a recognised core is kept");
	tap_ok(lt_blas_better_core("Zen", avx2 | LT_CPU_AMD) == NULL, "Zen kept");
	tap_ok(lt_blas_better_core("Prescott", 0) == NULL, "no AVX2: nothing better");
	tap_ok(lt_blas_better_core("Prescott", LT_CPU_AVX2) == NULL, "AVX2 without FMA: nothing better");
	tap_ok(lt_blas_core() && *lt_blas_core(), "OpenBLAS reports a core (%s)", lt_blas_core());
	tap_diag("this machine: core %s, features 0x%x, origin %s", lt_blas_core(), lt_cpu_features(),
		 lt_blas_core_origin());
}

int main(void)
{
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			test_gemm(ta, tb);
	test_core_choice();
	lt_blas_set_threads(1);
	tap_ok(lt_blas_threads() == 1, "thread count can be set");
	return tap_done();
}
