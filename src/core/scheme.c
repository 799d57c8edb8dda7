/* Coding schemes: allocation and decoding (see scheme.h). */
#include "core/scheme.h"

#include <string.h>

#include "core/mem.h"

lt_scheme *lt_scheme_new(lt_scheme_kind kind, int bits, int64_t numel, int64_t groups, int k,
			 lt_err *err)
{
	if (bits < 1 || bits > 16 || numel < 0 || groups < 1 || numel % groups ||
	    (kind == LT_SCHEME_CODEBOOK && (k < 1 || k > (1 << bits))) ||
	    ((kind == LT_SCHEME_F16 || kind == LT_SCHEME_BF16) && bits != 16)) {
		lt_err_set(err, LT_EINVAL, "bad coding scheme (%d bits, %lld elements in %lld groups, %d entries)",
			   bits, (long long)numel, (long long)groups, k);
		return NULL;
	}
	lt_scheme *s = lt_calloc(1, sizeof *s);
	if (!s)
		goto fail;
	s->kind = kind;
	s->bits = bits;
	s->numel = numel;
	s->groups = groups;
	s->group_len = numel / groups;
	s->k = kind == LT_SCHEME_CODEBOOK ? k : 0;
	if (!(s->codes = lt_calloc(numel ? (size_t)numel : 1, sizeof *s->codes)))
		goto fail;
	if (kind == LT_SCHEME_AFFINE &&
	    (!(s->scale = lt_calloc((size_t)groups, sizeof *s->scale)) ||
	     !(s->zero_point = lt_calloc((size_t)groups, sizeof *s->zero_point))))
		goto fail;
	if (kind == LT_SCHEME_CODEBOOK && !(s->table = lt_malloc_array((size_t)groups * (size_t)k, sizeof *s->table)))
		goto fail;
	if (s->table)
		memset(s->table, 0, (size_t)groups * (size_t)k * sizeof *s->table);
	return s;
fail:
	lt_scheme_free(s);
	lt_err_set(err, LT_ENOMEM, "out of memory for a coding scheme");
	return NULL;
}

lt_scheme *lt_scheme_clone(const lt_scheme *s, lt_err *err)
{
	lt_scheme *c = lt_scheme_new(s->kind, s->bits, s->numel, s->groups, s->k ? s->k : 1, err);
	if (!c)
		return NULL;
	c->k = s->k;
	c->qmin = s->qmin;
	memcpy(c->codes, s->codes, (size_t)s->numel * sizeof *s->codes);
	if (s->scale) {
		memcpy(c->scale, s->scale, (size_t)s->groups * sizeof *s->scale);
		memcpy(c->zero_point, s->zero_point, (size_t)s->groups * sizeof *s->zero_point);
	}
	if (s->table)
		memcpy(c->table, s->table, (size_t)s->groups * (size_t)s->k * sizeof *s->table);
	return c;
}

void lt_scheme_free(lt_scheme *s)
{
	if (!s)
		return;
	lt_free(s->codes);
	lt_free(s->scale);
	lt_free(s->zero_point);
	lt_free(s->table);
	lt_free(s);
}

void lt_scheme_decode(const lt_scheme *s, const float *mask, float *out)
{
	for (int64_t g = 0, i = 0; g < s->groups; g++)
		for (int64_t e = 0; e < s->group_len; e++, i++)
			out[i] = mask && mask[i] == 0.0f ? 0.0f : lt_scheme_value(s, g, s->codes[i]);
}
