/* Sparse kernels against PyTorch (tests/fixtures/sparse.safetensors, made
 * by gen_sparse_fixtures.py): linear at several densities and batch
 * sizes, im2col's matmul, refresh after the values change; plus rows long
 * enough for 32-bit indices (against a double-precision product),
 * non-finite inputs, bad sizes, the crossover rule and allocation
 * failures. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/mem.h"
#include "io/open.h"
#include "nn/sparse.h"
#include "tap.h"
#include "testutil.h"

#define COUNT(a) (int)(sizeof a / sizeof a[0])

static lt_model *ref;

/* NAME.PART from the fixture, or NULL. */
static const float *fx(const char *name, const char *part, int64_t *d0, int64_t *d1)
{
	char key[64];
	lt_err err = {0};
	snprintf(key, sizeof key, "%s.%s", name, part);
	lt_tensor *t = lt_model_tensor(ref, key);
	if (!t)
		return NULL;
	const int64_t *shape = lt_tensor_shape(t);
	if (d0)
		*d0 = shape[0];
	if (d1)
		*d1 = lt_tensor_ndim(t) > 1 ? shape[1] : 1;
	return lt_tensor_data(t, &err);
}

/* max |got - want| <= 1e-5 * max |want| (exact when want is all zero). */
static int close_to(const float *got, const float *want, int64_t n, double *worst)
{
	double big = 0, diff = 0;
	for (int64_t i = 0; i < n; i++) {
		big = fmax(big, fabs(want[i]));
		diff = fmax(diff, fabs((double)got[i] - want[i]));
		if (isnan(got[i]))
			diff = INFINITY;
	}
	*worst = big > 0 ? diff / big : diff;
	return diff <= 1e-5 * big;
}

/* Scratch for n samples or columns, filled with NaN so a kernel that
 * reads what it did not write shows. */
static float *nan_scratch(const lt_sparse *s, int64_t n)
{
	int64_t k = lt_sparse_scratch(s, n);
	float *p = k ? malloc((size_t)k * sizeof(float)) : NULL;
	for (int64_t i = 0; i < k; i++)
		p[i] = NAN;
	return p;
}

static int64_t count_nonzero(const float *w, int64_t n)
{
	int64_t k = 0;
	for (int64_t i = 0; i < n; i++)
		k += w[i] != 0.0f;
	return k;
}

/* y for the first b samples of NAME.x against NAME.y. */
static int linear_ok(const lt_sparse *s, const char *name, int64_t b, double *worst)
{
	int64_t rows, cols, nb;
	const float *x = fx(name, "x", &nb, &cols), *want = fx(name, "y", NULL, &rows);
	const float *bias = fx(name, "b", NULL, NULL);
	if (b > nb) {
		*worst = INFINITY;
		return 0; /* the fixture has fewer samples */
	}
	float *y = malloc((size_t)(b * rows) * sizeof(float)), *scratch = nan_scratch(s, b);
	for (int64_t i = 0; i < b * rows; i++)
		y[i] = NAN;
	lt_sparse_linear(s, x, bias, y, b, scratch);
	int ok = close_to(y, want, b * rows, worst);
	free(y);
	free(scratch);
	return ok;
}

static void linear_case(const char *name, const int64_t *batches, int nbatches)
{
	lt_err err = {0};
	int64_t rows, cols;
	const float *w = fx(name, "w", &rows, &cols);
	if (!w) {
		tap_ok(0, "%s: fixture has %s.w", name, name);
		return;
	}
	lt_sparse *s = lt_sparse_new(w, rows, cols, &err);
	tap_ok(s && lt_sparse_rows(s) == rows && lt_sparse_cols(s) == cols &&
		       lt_sparse_nnz(s) == count_nonzero(w, rows * cols),
	       "%s: [%lld, %lld] with %lld non-zeros", name, (long long)rows, (long long)cols,
	       (long long)count_nonzero(w, rows * cols));
	for (int k = 0; s && k < nbatches; k++) {
		double worst;
		int ok = linear_ok(s, name, batches[k], &worst);
		tap_ok(ok, "%s: linear, b = %lld (error %.1e)", name, (long long)batches[k], worst);
	}
	lt_sparse_free(s);
}

/* C[:, :n] of NAME against the reference, for B's first n columns. */
static void matmul_case(const char *name, const int64_t *ns, int count)
{
	lt_err err = {0};
	int64_t rows, k, nfull;
	const float *w = fx(name, "w", &rows, &k), *B = fx(name, "B", NULL, &nfull);
	const float *want = fx(name, "C", NULL, NULL), *bias = fx(name, "b", NULL, NULL);
	lt_sparse *s = w ? lt_sparse_new(w, rows, k, &err) : NULL;
	tap_ok(s != NULL, "%s: [%lld, %lld] built", name, (long long)rows, (long long)k);
	for (int i = 0; s && i < count; i++) {
		int64_t n = ns[i];
		float *b = malloc((size_t)(k * n) * sizeof(float)), *c = malloc((size_t)(rows * n) * sizeof(float));
		float *cw = malloc((size_t)(rows * n) * sizeof(float)), *scratch = nan_scratch(s, n);
		for (int64_t r = 0; r < k; r++)
			memcpy(b + r * n, B + r * nfull, (size_t)n * sizeof(float));
		for (int64_t r = 0; r < rows; r++)
			memcpy(cw + r * n, want + r * nfull, (size_t)n * sizeof(float));
		for (int64_t j = 0; j < rows * n; j++)
			c[j] = NAN;
		double worst, worst0;
		lt_sparse_matmul(s, b, n, bias, c, scratch);
		int ok = close_to(c, cw, rows * n, &worst);
		/* without the bias: C - bias */
		for (int64_t r = 0; r < rows; r++)
			for (int64_t j = 0; j < n; j++)
				cw[r * n + j] -= bias[r];
		lt_sparse_matmul(s, b, n, NULL, c, scratch);
		int ok0 = close_to(c, cw, rows * n, &worst0);
		tap_ok(ok && ok0, "%s: matmul, n = %lld, with and without bias (error %.1e, %.1e)", name,
		       (long long)n, worst, worst0);
		free(b);
		free(c);
		free(cw);
		free(scratch);
	}
	lt_sparse_free(s);
}

static void refresh_case(void)
{
	lt_err err = {0};
	int64_t rows, cols, b;
	const float *w = fx("ref", "w", &rows, &cols), *w2 = fx("ref", "w2", NULL, NULL);
	const float *x = fx("ref", "x", &b, NULL), *bias = fx("ref", "b", NULL, NULL);
	const float *want = fx("ref", "y2", NULL, NULL);
	lt_sparse *s = lt_sparse_new(w, rows, cols, &err);
	if (!s) {
		tap_ok(0, "refresh: built: %s", err.msg);
		return;
	}
	int64_t nnz = lt_sparse_nnz(s);
	lt_sparse_refresh(s, w2);
	tap_ok(lt_sparse_nnz(s) == nnz, "refresh keeps the positions (%lld non-zeros)", (long long)nnz);
	float *y = malloc((size_t)(b * rows) * sizeof(float)), *scratch = nan_scratch(s, b);
	double worst;
	for (int64_t i = 0; i < b; i++)
		lt_sparse_linear(s, x + i * cols, bias, y + i * rows, 1, NULL);
	int ok = close_to(y, want, b * rows, &worst);
	tap_ok(ok, "refresh: new values, stored zeros, pruned positions ignored, b = 1 (error %.1e)", worst);
	lt_sparse_linear(s, x, bias, y, b, scratch);
	ok = close_to(y, want, b * rows, &worst);
	tap_ok(ok, "refresh: b = %lld (error %.1e)", (long long)b, worst);
	/* and back: the first values again */
	lt_sparse_refresh(s, w);
	lt_sparse *fresh = lt_sparse_new(w, rows, cols, &err);
	float *y0 = malloc((size_t)(b * rows) * sizeof(float));
	lt_sparse_linear(s, x, bias, y, b, scratch);
	if (fresh)
		lt_sparse_linear(fresh, x, bias, y0, b, scratch);
	tap_ok(fresh && !memcmp(y, y0, (size_t)(b * rows) * sizeof(float)),
	       "refresh back to the first values matches a fresh build bit for bit");
	lt_sparse_free(fresh);
	free(y0);
	free(y);
	free(scratch);
	lt_sparse_free(s);
}

/* A NaN in column 0 reaches only the rows with a weight there; empty rows
 * (whose padding reads some column) give just their bias. Through every
 * kernel: one sample, 8-, 16- and 32-wide blocks, linear and matmul. */
static void nonfinite(void)
{
	enum { R = 11, C = 19, B = 40 };
	static float w[R * C], x[B * C], xt[C * B], bias[R], y[B * R], scratch[C * 32];
	for (int r = 0; r < R; r++) {
		bias[r] = (float)r;
		if (r % 3 == 0)
			continue; /* empty row */
		for (int c = 1 + r % 2; c < C; c += 3)
			w[r * C + c] = 0.5f + (float)r;
	}
	w[4 * C + 0] = 1.0f; /* only row 4 reads column 0 */
	for (int i = 0; i < B * C; i++)
		x[i] = i % C ? 1.0f : NAN;
	lt_sparse *s = lt_sparse_new(w, R, C, NULL);
	static const int bs[] = {1, 5, 12, 40};
	for (int k = 0; k < 4; k++) {
		int b = bs[k], lin = s != NULL, mm = s != NULL;
		for (int i = 0; s && i < b * C; i++)
			xt[i % C * b + i / C] = x[i];
		if (s)
			lt_sparse_linear(s, x, bias, y, b, scratch);
		for (int i = 0; lin && i < b * R; i++) {
			int r = i % R;
			lin &= (r == 4 ? isnan(y[i]) : isfinite(y[i])) && (r % 3 || y[i] == bias[r]);
		}
		if (s)
			lt_sparse_matmul(s, xt, b, bias, y, scratch);
		for (int i = 0; mm && i < b * R; i++) {
			int r = i / b;
			mm &= (r == 4 ? isnan(y[i]) : isfinite(y[i])) && (r % 3 || y[i] == bias[r]);
		}
		tap_ok(lin && mm, "NaN in a column: only its row turns NaN, empty rows give the bias "
				  "(b = %d, linear and matmul)", b);
	}
	lt_sparse_free(s);
}

/* Wide rows: columns past 65536 need 32-bit indices, up to 65536 take 16.
 * Reference: the dense product in double. */
static void long_rows(int64_t cols)
{
	enum { R = 9, B = 40 };
	float *w = calloc((size_t)(R * cols), sizeof(float)), *x = malloc((size_t)(B * cols) * sizeof(float));
	float *xt = malloc((size_t)(B * cols) * sizeof(float)), *y = malloc(B * R * sizeof(float));
	float *want = malloc(B * R * sizeof(float)), *scratch = malloc((size_t)cols * 32 * sizeof(float));
	uint32_t h = 1;
	for (int64_t i = 0; i < R * cols; i++) {
		h = h * 1664525u + 1013904223u;
		if (h >> 26 == 0 || (i % cols == cols - 1 && i / cols % 2)) /* 1/64, and the last column */
			w[i] = (float)(h >> 8 & 0xffff) / 65536.0f - 0.5f;
	}
	for (int64_t i = 0; i < B * cols; i++) {
		h = h * 1664525u + 1013904223u;
		x[i] = (float)(h >> 8 & 0xffff) / 32768.0f - 1.0f;
		xt[i % cols * B + i / cols] = x[i];
	}
	for (int b = 0; b < B; b++)
		for (int r = 0; r < R; r++) {
			double acc = 0;
			for (int64_t c = 0; c < cols; c++)
				acc += (double)w[r * cols + c] * x[b * cols + c];
			want[b * R + r] = (float)acc;
		}
	lt_sparse *sp = lt_sparse_new(w, R, cols, NULL);
	static const int bs[] = {1, 3, 17, 40};
	for (int k = 0; sp && k < 4; k++) {
		int b = bs[k];
		double worst, worst_mm;
		lt_sparse_linear(sp, x, NULL, y, b, scratch);
		int ok = close_to(y, want, b * R, &worst);
		/* matmul on the first b samples as columns: C[r][j] = y[j][r] */
		float *bt = malloc((size_t)(b * cols) * sizeof(float)), *c = malloc((size_t)(R * b) * sizeof(float));
		float *cw = malloc((size_t)(R * b) * sizeof(float));
		for (int64_t i = 0; i < cols; i++)
			memcpy(bt + i * b, xt + i * B, (size_t)b * sizeof(float));
		for (int j = 0; j < b; j++)
			for (int r = 0; r < R; r++)
				cw[r * b + j] = want[j * R + r];
		lt_sparse_matmul(sp, bt, b, NULL, c, scratch);
		int ok_mm = close_to(c, cw, R * b, &worst_mm);
		tap_ok(ok && ok_mm, "%lld columns (%s indices): b = n = %d (error %.1e, %.1e)", (long long)cols,
		       cols > 65536 ? "32-bit" : "16-bit", b, worst, worst_mm);
		free(bt);
		free(c);
		free(cw);
	}
	if (!sp)
		tap_ok(0, "%lld columns: built", (long long)cols);
	lt_sparse_free(sp);
	free(w);
	free(x);
	free(xt);
	free(y);
	free(want);
	free(scratch);
}

static void bad_sizes(void)
{
	lt_err err = {0};
	float w[4] = {1, 0, 0, 2};
	tap_ok(!lt_sparse_new(w, 0, 4, &err) && err.code == LT_EINVAL && strstr(err.msg, "[0, 4]"),
	       "0 rows refused: %s", err.msg);
	tap_ok(!lt_sparse_new(w, 2, -1, &err) && err.code == LT_EINVAL, "negative columns refused");
	tap_ok(!lt_sparse_new(NULL, 2, 2, &err) && err.code == LT_EINVAL, "no weights refused");
	tap_ok(!lt_sparse_new(w, (int64_t)INT32_MAX, 1, &err) && err.code == LT_ERANGE &&
		       strstr(err.msg, "32-bit"),
	       "2^31 - 1 rows refused: %s", err.msg);
	tap_ok(!lt_sparse_new(w, 1, (int64_t)INT32_MAX + 1, &err) && err.code == LT_ERANGE,
	       "2^31 columns refused");

	/* -0 is a zero: dropped like +0. */
	float neg[4] = {-0.0f, 3.0f, 0.0f, -0.0f}, y[2], x[2] = {INFINITY, 1.0f};
	lt_sparse *s = lt_sparse_new(neg, 2, 2, &err);
	if (s)
		lt_sparse_linear(s, x, NULL, y, 1, NULL);
	tap_ok(s && lt_sparse_nnz(s) == 1 && y[0] == 3.0f && y[1] == 0.0f,
	       "-0 weights dropped (an infinite input they multiply stays out)");
	tap_ok(s && lt_sparse_scratch(s, 1) == 0 && lt_sparse_scratch(s, 3) == 2 * 8 &&
		       lt_sparse_scratch(s, 1000) == 2 * 32,
	       "scratch: none for one sample, a panel of up to 32 columns otherwise");
	lt_sparse_free(s);
}

static void pays(void)
{
	tap_ok(lt_sparse_pays(300, 784, 18816, 1) && lt_sparse_pays(300, 784, 18816, 1000),
	       "pays: lenet300 fc1 at 8 %%, batch 1 and 1000");
	tap_ok(!lt_sparse_pays(10, 100, 260, 1) && !lt_sparse_pays(10, 100, 260, 1000),
	       "does not pay: fc3 at 26 %%, batch 1 and 1000");
	tap_ok(lt_sparse_pays(10, 100, 260, 8), "pays: 26 %% at batch 8 (sgemm is slow there)");
	tap_ok(lt_sparse_pays(50, 500, 3000, 512), "pays: lenet5 conv2 at 12 %%, 8 images");
	tap_ok(!lt_sparse_pays(20, 25, 330, 4096), "does not pay: lenet5 conv1 at 66 %%");
	tap_ok(!lt_sparse_pays(0, 10, 0, 1) && !lt_sparse_pays(10, 10, 0, 0), "empty shapes never pay");
}

/* Every allocation failing in turn: NULL with LT_ENOMEM, no crash, no
 * leak (ASan's leak check), until the build succeeds. */
static void alloc_failures(void)
{
	int64_t rows, cols;
	const float *w = fx("d30", "w", &rows, &cols);
	int fails = 0, ok = 1;
	lt_sparse *s = NULL;
	for (long i = 0; i < 64 && !s; i++) {
		lt_err err = {0};
		lt_mem_fail_after(i);
		s = lt_sparse_new(w, rows, cols, &err);
		lt_mem_fail_after(-1);
		if (!s) {
			fails++;
			ok &= err.code == LT_ENOMEM && strstr(err.msg, "out of memory") != NULL;
		}
	}
	tap_ok(ok && s && fails > 0, "allocation failures: %d sites, each LT_ENOMEM with a message", fails);
	lt_sparse_free(s);
}

/* Parts of a one-sample product, computed apart, make up the whole. */
static void parts_make_whole(void)
{
	lt_err err = {0};
	const int64_t rows = 77, cols = 300;
	float *w = lt_calloc((size_t)(rows * cols), sizeof *w), *x = lt_malloc_array((size_t)cols, sizeof *x);
	float *bias = lt_malloc_array((size_t)rows, sizeof *bias);
	float *whole = lt_malloc_array((size_t)rows, sizeof *whole), *y = lt_malloc_array((size_t)rows, sizeof *y);
	uint64_t h = 12345;
	for (int64_t i = 0; i < rows * cols; i++) {
		h ^= h << 13, h ^= h >> 7, h ^= h << 17;
		if (h % 10 == 0 || (i / cols) % 9 == 0) /* ~10 %, and some denser rows */
			w[i] = (float)(h % 1000) / 500.0f - 1.0f;
	}
	for (int64_t j = 0; j < cols; j++)
		x[j] = (float)j / (float)cols - 0.5f;
	for (int64_t r = 0; r < rows; r++)
		bias[r] = (float)r;
	lt_sparse *s = lt_sparse_new(w, rows, cols, &err);
	lt_sparse_linear(s, x, bias, whole, 1, NULL);
	for (int parts = 1; parts <= 3; parts++) {
		for (int64_t r = 0; r < rows; r++)
			y[r] = NAN;
		for (int p = 0; p < parts; p++)
			lt_sparse_linear1_share(s, x, bias, y, (double)p / parts, (double)(p + 1) / parts);
		tap_ok(!memcmp(y, whole, (size_t)rows * sizeof *y), "one sample in %d part(s) equals the whole product",
		       parts);
	}
	lt_sparse_free(s);
	lt_free(w);
	lt_free(x);
	lt_free(bias);
	lt_free(whole);
	lt_free(y);
}

int main(void)
{
	lt_err err = {0};
	ref = lt_model_open(fixture("sparse.safetensors"), &err);
	if (!ref)
		tap_skip_all("sparse.safetensors missing");
	static const int64_t small[] = {1, 2, 3, 5}, mid[] = {1, 3, 8, 9, 16, 17, 20},
			     wide[] = {1, 2, 3, 8, 17, 32, 33}, d30[] = {1, 3, 12, 17, 24, 40},
			     big[] = {1, 3, 17, 999, 1000}, col1[] = {1, 17, 35}, row1[] = {1, 2, 3};
	linear_case("d0", small, COUNT(small));
	linear_case("d1", wide, COUNT(wide));
	linear_case("d8", mid, COUNT(mid));
	linear_case("d30", d30, COUNT(d30));
	linear_case("d100", small, COUNT(small));
	linear_case("odd", small, COUNT(small));
	linear_case("row1", row1, COUNT(row1));
	linear_case("col1", col1, COUNT(col1));
	linear_case("big", big, COUNT(big));
	static const int64_t mm[] = {1, 2, 3, 8, 9, 16, 17, 32, 33, 40}, mmwide[] = {1023, 1024, 1030},
			     mm0[] = {1, 19};
	matmul_case("mm", mm, COUNT(mm));
	matmul_case("mmwide", mmwide, COUNT(mmwide));
	matmul_case("mm0", mm0, COUNT(mm0));
	refresh_case();
	nonfinite();
	long_rows(65536);
	long_rows(65537);
	bad_sizes();
	pays();
	alloc_failures();
	lt_model_unref(ref);
	parts_make_whole();
	return tap_done();
}
