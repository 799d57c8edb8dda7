/* The packed format's encoding layer (see pack.h): choosing the smallest
 * index encoding and part codings, writing the streams, and decoding them
 * back from untrusted bytes. */
#include "io/pack.h"

#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "core/mem.h"
#include "kern/huffman.h"

/* Largest element count either direction handles: bit counts of every
 * stream then fit in 64 bits with room to spare. */
#define MAX_NUMEL ((int64_t)1 << 56)
/* Affine parameters are bounded so (code + qmin - zero_point) cannot
 * overflow int32 in lt_scheme_value. */
#define MAX_QMIN 65536
#define MAX_ZERO_POINT (1 << 30)
/* Gaps below this are counted in a histogram, longer ones listed. */
#define GAP_HIST 65536

static const char *const stream_names[LT_PACK_STREAMS] = {"idx", "codes", "table"};
static const char *const index_names[] = {"auto", "dense", "rel", "holes", "csr"};
static const char *const kind_names[] = {"affine", "codebook", "f16", "bf16"};

const char *lt_pack_stream_name(int i)
{
	return i >= 0 && i < LT_PACK_STREAMS ? stream_names[i] : NULL;
}

static int bit_length(uint32_t v)
{
	return v ? 32 - __builtin_clz(v) : 0;
}

/* Symbols a scheme's codes may take. */
static uint32_t scheme_alphabet(lt_scheme_kind kind, int bits, int k)
{
	return kind == LT_SCHEME_CODEBOOK ? (uint32_t)k : 1u << bits;
}

static uint64_t table_stream_bytes(int plain, lt_scheme_kind kind, int64_t groups, int k)
{
	if (plain)
		return 0;
	if (kind == LT_SCHEME_AFFINE)
		return 8 * (uint64_t)groups;
	if (kind == LT_SCHEME_CODEBOOK)
		return 4 * (uint64_t)groups * (uint64_t)k;
	return 0;
}

/* Rows of the CSR view. */
static int64_t csr_rows(int ndim, const int64_t *shape)
{
	return ndim >= 2 ? shape[0] : 1;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- the source ---------------------------------------------------------- */

struct src {
	const lt_scheme *s;
	const float *values, *mask;
	int zeros;
	int ndim;
	const int64_t *shape;
	int64_t numel, rows, cols;
	lt_pack_index index;
};

static inline int is_present(const struct src *c, int64_t i)
{
	if (c->mask && c->mask[i] == 0.0f)
		return 0;
	if (c->zeros) {
		float v = c->s ? lt_scheme_value(c->s, i / c->s->group_len, c->s->codes[i]) : c->values[i];
		if (v == 0.0f)
			return 0;
	}
	return 1;
}

static int check_src(const lt_pack_src *in, struct src *c, lt_err *err)
{
	*c = (struct src){.s = in->scheme, .values = in->values, .mask = in->mask,
			  .zeros = (in->flags & LT_PACK_ZEROS) != 0, .ndim = in->ndim, .shape = in->shape,
			  .index = (lt_pack_index)(in->flags >> 4 & 7)};
	if (in->ndim < 0 || in->ndim > LT_MAX_DIMS || (in->ndim > 0 && !in->shape))
		return lt_err_set(err, LT_EINVAL, "cannot pack a tensor of %d dimensions", in->ndim);
	int rc = lt_shape_numel(in->ndim, in->shape, MAX_NUMEL, &c->numel, err);
	if (rc)
		return lt_err_prefix(err, "cannot pack");
	if (in->flags & ~(LT_PACK_ZEROS | LT_PACK_FORCE(7)) || c->index > LT_PACK_CSR)
		return lt_err_set(err, LT_EINVAL, "unknown packing flags 0x%x", in->flags);
	c->rows = csr_rows(in->ndim, in->shape);
	c->cols = c->rows ? c->numel / c->rows : 0;
	const lt_scheme *s = in->scheme;
	if (!s) {
		if (!in->values && c->numel)
			return lt_err_set(err, LT_EINVAL, "a plain tensor needs its values to be packed");
		return 0;
	}
	if (s->kind < LT_SCHEME_AFFINE || s->kind > LT_SCHEME_BF16 || s->bits < 1 || s->bits > 16 ||
	    ((s->kind == LT_SCHEME_F16 || s->kind == LT_SCHEME_BF16) && s->bits != 16))
		return lt_err_set(err, LT_EINVAL, "cannot pack a coding scheme of kind %d with %d bits",
				  (int)s->kind, s->bits);
	if (s->numel != c->numel || s->groups < 1 || s->numel % s->groups ||
	    s->group_len != s->numel / s->groups || (s->numel && s->groups > s->numel) || !s->codes)
		return lt_err_set(err, LT_EINVAL, "the coding scheme (%lld elements in %lld groups) does not "
				  "match the tensor's %lld elements", (long long)s->numel, (long long)s->groups,
				  (long long)c->numel);
	if (s->kind == LT_SCHEME_CODEBOOK && (s->k < 1 || s->k > (1 << s->bits) || !s->table))
		return lt_err_set(err, LT_EINVAL, "a codebook of %d entries does not fit %d-bit codes",
				  s->k, s->bits);
	if (s->kind == LT_SCHEME_AFFINE) {
		if (!s->scale || !s->zero_point)
			return lt_err_set(err, LT_EINVAL, "an affine scheme without scales or zero points");
		if (s->qmin < -MAX_QMIN || s->qmin > MAX_QMIN)
			return lt_err_set(err, LT_EINVAL, "affine qmin %d is outside +-%d", (int)s->qmin, MAX_QMIN);
		for (int64_t g = 0; g < s->groups; g++)
			if (s->zero_point[g] < -MAX_ZERO_POINT || s->zero_point[g] > MAX_ZERO_POINT)
				return lt_err_set(err, LT_EINVAL, "zero point %d of group %lld is outside +-2^30",
						  (int)s->zero_point[g], (long long)g);
	}
	return 0;
}

/* ---- statistics of one pass ---------------------------------------------- */

/* Gaps before each marked element (present ones for rel, absent for
 * holes): a histogram of the short ones, a list of the long ones. */
struct gaps {
	uint64_t *hist;
	size_t hsize;
	int64_t *big;
	size_t nbig, capbig;
	int64_t count, last, max;
};

static int gaps_add(struct gaps *g, int64_t i)
{
	int64_t gap = i - g->last - 1;
	g->last = i;
	g->count++;
	if (gap > g->max)
		g->max = gap;
	if ((uint64_t)gap < g->hsize) {
		g->hist[gap]++;
		return 0;
	}
	if (g->nbig == g->capbig) {
		size_t cap = g->capbig ? 2 * g->capbig : 64;
		int64_t *big = lt_realloc(g->big, cap * sizeof *big);
		if (!big)
			return LT_ENOMEM;
		g->big = big;
		g->capbig = cap;
	}
	g->big[g->nbig++] = gap;
	return 0;
}

struct stats {
	struct gaps rel, holes;
	uint64_t *code_hist;   /* scheme: alphabet entries */
	uint32_t code_alpha;
	uint32_t max_code;
	int csr_ok;
	uint64_t *col_hist;    /* cols entries */
	uint64_t *row_hist;    /* cols + 1 entries */
	int64_t max_row;
	uint32_t max_col;
};

static void stats_free(struct stats *st)
{
	lt_free(st->rel.hist);
	lt_free(st->rel.big);
	lt_free(st->holes.hist);
	lt_free(st->holes.big);
	lt_free(st->code_hist);
	lt_free(st->col_hist);
	lt_free(st->row_hist);
}

static int stats_collect(const struct src *c, struct stats *st, lt_err *err)
{
	memset(st, 0, sizeof *st);
	size_t hsize = c->numel < GAP_HIST ? (size_t)c->numel : GAP_HIST;
	st->rel = (struct gaps){.hsize = hsize, .last = -1};
	st->holes = (struct gaps){.hsize = hsize, .last = -1};
	st->csr_ok = c->numel > 0 && c->cols <= 65536;
	if (c->s)
		st->code_alpha = scheme_alphabet(c->s->kind, c->s->bits, c->s->k);
	if (!(st->rel.hist = lt_calloc(hsize, sizeof *st->rel.hist)) ||
	    !(st->holes.hist = lt_calloc(hsize, sizeof *st->holes.hist)) ||
	    (c->s && !(st->code_hist = lt_calloc(st->code_alpha, sizeof *st->code_hist))) ||
	    (st->csr_ok && (!(st->col_hist = lt_calloc((size_t)c->cols, sizeof *st->col_hist)) ||
			    !(st->row_hist = lt_calloc((size_t)c->cols + 1, sizeof *st->row_hist)))))
		goto nomem;
	const lt_scheme *s = c->s;
	int64_t col = 0, in_row = 0;
	for (int64_t i = 0; i < c->numel; i++) {
		if (is_present(c, i)) {
			if (gaps_add(&st->rel, i))
				goto nomem;
			if (s) {
				uint32_t code = s->codes[i];
				if (code >= st->code_alpha)
					return lt_err_set(err, LT_EINVAL, "element %lld has code %u, outside the "
							  "scheme's %u codes", (long long)i, code, st->code_alpha);
				st->code_hist[code]++;
				if (code > st->max_code)
					st->max_code = code;
			}
			if (st->csr_ok) {
				st->col_hist[col]++;
				if ((uint32_t)col > st->max_col)
					st->max_col = (uint32_t)col;
			}
			in_row++;
		} else if (gaps_add(&st->holes, i)) {
			goto nomem;
		}
		if (++col == c->cols) {
			if (st->csr_ok)
				st->row_hist[in_row]++;
			if (in_row > st->max_row)
				st->max_row = in_row;
			col = in_row = 0;
		}
	}
	if (st->max_row > 65535)
		st->csr_ok = 0;
	return 0;
nomem:
	return lt_err_set(err, LT_ENOMEM, "out of memory measuring a tensor to pack");
}

/* ---- choosing part codings ----------------------------------------------- */

/* The smaller of fixed width and Huffman for n symbols with histogram hist
 * over alphabet symbols. lens (alphabet bytes) gets the Huffman lengths
 * when Huffman wins; ties go to fixed width. */
static int choose_part(const uint64_t *hist, uint32_t alphabet, int64_t n, lt_pack_part *p, uint8_t *lens,
		       lt_err *err)
{
	*p = (lt_pack_part){.n = n, .alphabet = alphabet, .width = bit_length(alphabet - 1)};
	p->bytes = lt_fixed_bytes(n, p->width);
	if (n == 0)
		return 0;
	int rc = lt_huff_lengths(hist, alphabet, LT_HUFF_MAX_LEN, lens, err);
	if (rc)
		return rc;
	uint64_t table = lt_huff_table_size(lens, alphabet);
	uint64_t bytes = table + (lt_huff_bits(hist, lens, alphabet) + 7) / 8;
	if (bytes < p->bytes) {
		p->huffman = 1;
		p->width = 0;
		p->table_bytes = table;
		p->bytes = bytes;
	}
	return 0;
}

/* The best gap width for one gap set: *part and lens (65,536 bytes) get
 * its coding, *bits the width. sym (65,536 entries) and try (65,536
 * bytes) are scratch. Widths past the first that needs no filler cannot
 * win (the same symbols in a wider field or a longer table), so the
 * search stops there. */
static int choose_gaps(const struct gaps *g, uint64_t *sym, uint8_t *try, uint8_t *lens, lt_pack_part *part,
		       int *bits, lt_err *err)
{
	int have = 0, top = g->max < 65535 ? bit_length((uint32_t)g->max + 1) : 16;
	for (int b = 1; b <= top; b++) {
		uint32_t alphabet = 1u << b, m = alphabet - 1;
		uint64_t fill = 0;
		memset(sym, 0, alphabet * sizeof *sym);
		for (size_t gap = 0; gap < g->hsize; gap++) {
			uint64_t cnt = g->hist[gap];
			if (cnt) {
				sym[gap % m] += cnt;
				fill += gap / m * cnt;
			}
		}
		for (size_t i = 0; i < g->nbig; i++) {
			sym[(uint64_t)g->big[i] % m]++;
			fill += (uint64_t)g->big[i] / m;
		}
		sym[m] += fill;
		lt_pack_part p;
		int rc = choose_part(sym, alphabet, g->count + (int64_t)fill, &p, try, err);
		if (rc)
			return rc;
		if (!have || p.bytes < part->bytes) {
			have = 1;
			*part = p;
			*bits = b;
			if (p.huffman)
				memcpy(lens, try, alphabet);
		}
	}
	return 0;
}

/* ---- planning ------------------------------------------------------------- */

struct plan {
	lt_pack_desc d;
	uint8_t *lens[3]; /* Huffman lengths of idx[0], idx[1], codes; NULL when fixed */
};

static void plan_free(struct plan *p)
{
	for (int i = 0; i < 3; i++)
		lt_free(p->lens[i]);
}

static uint8_t *dup_lens(const uint8_t *lens, uint32_t n)
{
	uint8_t *d = lt_malloc(n);
	if (d)
		memcpy(d, lens, n);
	return d;
}

static int make_plan(const struct src *c, struct plan *pl, lt_err *err)
{
	memset(pl, 0, sizeof *pl);
	lt_pack_desc *d = &pl->d;
	struct stats st;
	uint64_t *sym = NULL;
	uint8_t *try = NULL, *rel_lens = NULL, *hole_lens = NULL, *csr_lens[2] = {NULL, NULL};
	int rc = stats_collect(c, &st, err);
	if (rc)
		goto out;
	d->ndim = c->ndim;
	for (int i = 0; i < c->ndim; i++)
		d->shape[i] = c->shape[i];
	d->numel = c->numel;
	d->plain = c->s == NULL;
	if (c->s) {
		d->kind = c->s->kind;
		d->bits = c->s->bits;
		d->groups = c->s->groups;
		d->qmin = c->s->kind == LT_SCHEME_AFFINE ? c->s->qmin : 0;
		d->k = c->s->kind == LT_SCHEME_CODEBOOK ? c->s->k : 0;
	}
	d->present = st.rel.count;

	if (!(sym = lt_malloc_array(LT_HUFF_MAX_SYMS, sizeof *sym)) || !(try = lt_malloc(LT_HUFF_MAX_SYMS)) ||
	    !(rel_lens = lt_malloc(LT_HUFF_MAX_SYMS)) || !(hole_lens = lt_malloc(LT_HUFF_MAX_SYMS)))
		goto nomem;
	/* index: dense, rel, holes, csr; the smallest wins, ties to the first */
	lt_pack_part rel, holes, csr[2];
	int rel_bits, hole_bits;
	if ((rc = choose_gaps(&st.rel, sym, try, rel_lens, &rel, &rel_bits, err)) ||
	    (rc = choose_gaps(&st.holes, sym, try, hole_lens, &holes, &hole_bits, err)))
		goto out;
	uint64_t best;
	lt_pack_index force = c->index;
	if (force == LT_PACK_DENSE && st.holes.count) {
		rc = lt_err_set(err, LT_EINVAL, "no dense index: %lld of %lld elements are absent",
				(long long)st.holes.count, (long long)c->numel);
		goto out;
	}
	if (force == LT_PACK_CSR && !st.csr_ok) {
		rc = lt_err_set(err, LT_EINVAL, "no CSR index for this shape (%lld columns, %lld in a row)",
				(long long)c->cols, (long long)st.max_row);
		goto out;
	}
	if (force ? force == LT_PACK_DENSE : st.holes.count == 0) {
		d->index = LT_PACK_DENSE;
		best = 0;
	} else {
		d->index = LT_PACK_REL;
		best = rel.bytes;
		if (force ? force == LT_PACK_HOLES : holes.bytes < best) {
			d->index = LT_PACK_HOLES;
			best = holes.bytes;
		}
	}
	if (st.csr_ok && (force ? force == LT_PACK_CSR : d->index != LT_PACK_DENSE)) {
		if ((rc = choose_part(st.row_hist, (uint32_t)st.max_row + 1, c->rows, &csr[0], try, err)))
			goto out;
		if (csr[0].huffman && !(csr_lens[0] = dup_lens(try, csr[0].alphabet)))
			goto nomem;
		if ((rc = choose_part(st.col_hist, st.max_col + 1, d->present, &csr[1], try, err)))
			goto out;
		if (csr[1].huffman && !(csr_lens[1] = dup_lens(try, csr[1].alphabet)))
			goto nomem;
		if (force || csr[0].bytes + csr[1].bytes < best)
			d->index = LT_PACK_CSR;
	}
	switch (d->index) {
	case LT_PACK_AUTO: /* not left by the choice above */
	case LT_PACK_DENSE:
		break;
	case LT_PACK_REL:
	case LT_PACK_HOLES: {
		int is_rel = d->index == LT_PACK_REL;
		d->n_idx = 1;
		d->idx[0] = is_rel ? rel : holes;
		d->gap_bits = is_rel ? rel_bits : hole_bits;
		if (d->idx[0].huffman) {
			pl->lens[0] = is_rel ? rel_lens : hole_lens;
			if (is_rel)
				rel_lens = NULL;
			else
				hole_lens = NULL;
		}
		break;
	}
	case LT_PACK_CSR:
		d->n_idx = 2;
		for (int i = 0; i < 2; i++) {
			d->idx[i] = csr[i];
			pl->lens[i] = csr_lens[i];
			csr_lens[i] = NULL;
		}
		break;
	}

	if (c->s) {
		uint32_t alphabet = d->present ? st.max_code + 1 : 1;
		if ((rc = choose_part(st.code_hist, alphabet, d->present, &d->codes, try, err)))
			goto out;
		if (d->codes.huffman && !(pl->lens[2] = dup_lens(try, alphabet)))
			goto nomem;
	} else {
		d->codes = (lt_pack_part){.n = d->present, .width = 32, .bytes = 4 * (uint64_t)d->present};
	}
	for (int i = 0; i < d->n_idx; i++)
		d->bytes[LT_PACK_IDX] += d->idx[i].bytes;
	d->bytes[LT_PACK_CODES] = d->codes.bytes;
	d->bytes[LT_PACK_TABLE] = table_stream_bytes(d->plain, d->kind, d->groups, d->k);
	rc = 0;
	goto out;
nomem:
	rc = lt_err_set(err, LT_ENOMEM, "out of memory choosing a packing");
out:
	stats_free(&st);
	lt_free(sym);
	lt_free(try);
	lt_free(rel_lens);
	lt_free(hole_lens);
	lt_free(csr_lens[0]);
	lt_free(csr_lens[1]);
	if (rc)
		plan_free(pl);
	return rc;
}

/* ---- writing -------------------------------------------------------------- */

/* Writes one part's symbols, fixed width or Huffman. */
struct part_writer {
	lt_bitw w;
	const lt_pack_part *part;
	const uint8_t *len;
	uint32_t *code; /* Huffman code words; NULL for fixed width */
};

static int pw_begin(struct part_writer *pw, const lt_pack_part *part, const uint8_t *lens, uint8_t *out,
		    lt_err *err)
{
	*pw = (struct part_writer){.part = part, .len = lens};
	if (!part->huffman) {
		lt_bitw_init(&pw->w, out, part->bytes);
		return 0;
	}
	if (lt_huff_table_write(lens, part->alphabet, out, part->table_bytes) != part->table_bytes)
		return lt_err_set(err, LT_EINVAL, "internal error: a code table's size changed");
	if (!(pw->code = lt_malloc_array(part->alphabet, sizeof *pw->code)))
		return lt_err_set(err, LT_ENOMEM, "out of memory for Huffman codes");
	lt_huff_codes(lens, part->alphabet, pw->code);
	lt_bitw_init(&pw->w, out + part->table_bytes, part->bytes - part->table_bytes);
	return 0;
}

static inline void pw_put(struct part_writer *pw, uint32_t s)
{
	if (pw->code)
		lt_bitw_put(&pw->w, pw->code[s], pw->len[s]);
	else
		lt_bitw_put(&pw->w, s, pw->part->width);
}

static int pw_end(struct part_writer *pw, lt_err *err)
{
	size_t n = lt_bitw_finish(&pw->w);
	lt_free(pw->code);
	pw->code = NULL;
	if (pw->w.overflow || n != pw->part->bytes - pw->part->table_bytes)
		return lt_err_set(err, LT_EINVAL, "internal error: a part came out %zu bytes, not %llu", n,
				  (unsigned long long)(pw->part->bytes - pw->part->table_bytes));
	return 0;
}

/* The gap symbols of the present (want 1) or absent (want 0) elements. */
static void put_gaps(const struct src *c, int want, int bits, struct part_writer *pw)
{
	const int64_t m = ((int64_t)1 << bits) - 1;
	int64_t last = -1;
	for (int64_t i = 0; i < c->numel; i++) {
		if (is_present(c, i) != want)
			continue;
		int64_t gap = i - last - 1;
		last = i;
		for (; gap >= m; gap -= m)
			pw_put(pw, (uint32_t)m);
		pw_put(pw, (uint32_t)gap);
	}
}

static int write_idx(const struct src *c, const struct plan *pl, uint8_t *out, lt_err *err)
{
	const lt_pack_desc *d = &pl->d;
	struct part_writer pw;
	int rc;
	if (d->index == LT_PACK_REL || d->index == LT_PACK_HOLES) {
		if ((rc = pw_begin(&pw, &d->idx[0], pl->lens[0], out, err)))
			return rc;
		put_gaps(c, d->index == LT_PACK_REL, d->gap_bits, &pw);
		return pw_end(&pw, err);
	}
	if (d->index != LT_PACK_CSR)
		return 0;
	if ((rc = pw_begin(&pw, &d->idx[0], pl->lens[0], out, err)))
		return rc;
	for (int64_t r = 0, i = 0; r < c->rows; r++) {
		uint32_t n = 0;
		for (int64_t j = 0; j < c->cols; j++, i++)
			n += (uint32_t)is_present(c, i);
		pw_put(&pw, n);
	}
	if ((rc = pw_end(&pw, err)) || (rc = pw_begin(&pw, &d->idx[1], pl->lens[1], out + d->idx[0].bytes, err)))
		return rc;
	for (int64_t i = 0, j = 0; i < c->numel; i++) {
		if (is_present(c, i))
			pw_put(&pw, (uint32_t)j);
		if (++j == c->cols)
			j = 0;
	}
	return pw_end(&pw, err);
}

static int write_codes(const struct src *c, const struct plan *pl, uint8_t *out, lt_err *err)
{
	if (!c->s) {
		for (int64_t i = 0; i < c->numel; i++) {
			if (is_present(c, i)) {
				uint32_t v;
				memcpy(&v, &c->values[i], 4);
				put_le32(out, v);
				out += 4;
			}
		}
		return 0;
	}
	struct part_writer pw;
	int rc = pw_begin(&pw, &pl->d.codes, pl->lens[2], out, err);
	if (rc)
		return rc;
	for (int64_t i = 0; i < c->numel; i++)
		if (is_present(c, i))
			pw_put(&pw, c->s->codes[i]);
	return pw_end(&pw, err);
}

static void write_table(const lt_scheme *s, uint8_t *out)
{
	if (!s)
		return;
	uint32_t v;
	if (s->kind == LT_SCHEME_AFFINE) {
		for (int64_t g = 0; g < s->groups; g++, out += 4) {
			memcpy(&v, &s->scale[g], 4);
			put_le32(out, v);
		}
		for (int64_t g = 0; g < s->groups; g++, out += 4)
			put_le32(out, (uint32_t)s->zero_point[g]);
	} else if (s->kind == LT_SCHEME_CODEBOOK) {
		for (int64_t i = 0; i < s->groups * s->k; i++, out += 4) {
			memcpy(&v, &s->table[i], 4);
			put_le32(out, v);
		}
	}
}

/* ---- the description as JSON ---------------------------------------------- */

static json_t *part_json(const lt_pack_part *p, int raw)
{
	json_t *o = json_object();
	if (!o || json_object_set_new(o, "n", json_integer(p->n)))
		goto fail;
	if (!raw && json_object_set_new(o, "alphabet", json_integer(p->alphabet)))
		goto fail;
	if (p->huffman ? json_object_set_new(o, "huffman", json_integer((json_int_t)p->table_bytes))
		       : json_object_set_new(o, "width", json_integer(p->width)))
		goto fail;
	if (json_object_set_new(o, "bytes", json_integer((json_int_t)p->bytes)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

char *lt_pack_desc_json(const lt_pack_desc *d, size_t *len, lt_err *err)
{
	char *text = NULL;
	json_t *root = json_object(), *shape, *idx;
	/* each set_new takes its value's reference, also on failure */
	if (!root || json_object_set_new(root, "pack", json_integer(1)) ||
	    json_object_set_new(root, "shape", shape = json_array()))
		goto nomem;
	for (int i = 0; i < d->ndim; i++)
		if (json_array_append_new(shape, json_integer(d->shape[i])))
			goto nomem;
	if (json_object_set_new(root, "kind", json_string(d->plain ? "f32" : kind_names[d->kind])))
		goto nomem;
	if (!d->plain && (json_object_set_new(root, "bits", json_integer(d->bits)) ||
			  json_object_set_new(root, "groups", json_integer(d->groups))))
		goto nomem;
	if (!d->plain && d->kind == LT_SCHEME_AFFINE && json_object_set_new(root, "qmin", json_integer(d->qmin)))
		goto nomem;
	if (!d->plain && d->kind == LT_SCHEME_CODEBOOK && json_object_set_new(root, "k", json_integer(d->k)))
		goto nomem;
	if (json_object_set_new(root, "present", json_integer(d->present)) ||
	    json_object_set_new(root, "index", json_string(index_names[d->index])))
		goto nomem;
	if ((d->index == LT_PACK_REL || d->index == LT_PACK_HOLES) &&
	    json_object_set_new(root, "gap_bits", json_integer(d->gap_bits)))
		goto nomem;
	if (json_object_set_new(root, "idx", idx = json_array()))
		goto nomem;
	for (int i = 0; i < d->n_idx; i++)
		if (json_array_append_new(idx, part_json(&d->idx[i], 0)))
			goto nomem;
	if (json_object_set_new(root, "codes", part_json(&d->codes, d->plain)) ||
	    json_object_set_new(root, "table", json_integer((json_int_t)d->bytes[LT_PACK_TABLE])))
		goto nomem;
	size_t n = json_dumpb(root, NULL, 0, JSON_COMPACT);
	if (n == 0 || !(text = lt_malloc(n + 1)) || json_dumpb(root, text, n, JSON_COMPACT) != n)
		goto nomem;
	text[n] = '\0';
	json_decref(root);
	if (len)
		*len = n;
	return text;
nomem:
	lt_free(text);
	json_decref(root);
	lt_err_set(err, LT_ENOMEM, "out of memory writing a pack description");
	return NULL;
}

/* ---- packing -------------------------------------------------------------- */

void lt_packed_free(lt_packed *p)
{
	if (!p)
		return;
	for (int i = 0; i < LT_PACK_STREAMS; i++)
		lt_free(p->stream[i]);
	lt_free(p->json);
	lt_free(p);
}

lt_packed *lt_pack(const lt_pack_src *src, lt_err *err)
{
	struct src c;
	struct plan pl;
	if (check_src(src, &c, err) || make_plan(&c, &pl, err))
		return NULL;
	lt_packed *p = lt_calloc(1, sizeof *p);
	if (!p)
		goto nomem;
	p->desc = pl.d;
	for (int i = 0; i < LT_PACK_STREAMS; i++)
		if (!(p->stream[i] = lt_malloc(pl.d.bytes[i] ? (size_t)pl.d.bytes[i] : 1)))
			goto nomem;
	if (write_idx(&c, &pl, p->stream[LT_PACK_IDX], err) || write_codes(&c, &pl, p->stream[LT_PACK_CODES], err))
		goto fail;
	write_table(c.s, p->stream[LT_PACK_TABLE]);
	if (!(p->json = lt_pack_desc_json(&pl.d, &p->json_len, err)))
		goto fail;
	p->total = p->json_len;
	for (int i = 0; i < LT_PACK_STREAMS; i++)
		p->total += pl.d.bytes[i];
	plan_free(&pl);
	return p;
nomem:
	lt_err_set(err, LT_ENOMEM, "out of memory packing a tensor");
fail:
	plan_free(&pl);
	lt_packed_free(p);
	return NULL;
}

int lt_pack_estimate(const lt_pack_src *src, lt_pack_desc *desc, uint64_t *bytes, lt_err *err)
{
	struct src c;
	struct plan pl;
	int rc;
	*bytes = 0;
	if ((rc = check_src(src, &c, err)) || (rc = make_plan(&c, &pl, err)))
		return rc;
	size_t n;
	char *json = lt_pack_desc_json(&pl.d, &n, err);
	if (json) {
		*bytes = n;
		for (int i = 0; i < LT_PACK_STREAMS; i++)
			*bytes += pl.d.bytes[i];
		if (desc)
			*desc = pl.d;
	}
	lt_free(json);
	plan_free(&pl);
	return json ? 0 : LT_ENOMEM;
}

/* ---- checking a description ------------------------------------------------ */

static int check_part(const lt_pack_part *p, const char *what, int64_t max_n, uint32_t max_alpha, lt_err *err)
{
	if (p->n < 0 || p->n > max_n)
		return lt_err_set(err, LT_EFORMAT, "%s has %lld symbols (0 to %lld possible)", what,
				  (long long)p->n, (long long)max_n);
	if (p->alphabet < 1 || p->alphabet > max_alpha)
		return lt_err_set(err, LT_EFORMAT, "%s has an alphabet of %u symbols (1 to %u possible)", what,
				  p->alphabet, max_alpha);
	if (p->huffman != 0 && p->huffman != 1)
		return lt_err_set(err, LT_EFORMAT, "%s has a bad coding", what);
	if (p->bytes > (uint64_t)MAX_NUMEL)
		return lt_err_set(err, LT_EFORMAT, "%s claims %llu bytes", what, (unsigned long long)p->bytes);
	if (!p->huffman) {
		if (p->width < 0 || p->width > 16 || p->alphabet > 1u << p->width)
			return lt_err_set(err, LT_EFORMAT, "%s: %d-bit symbols cannot hold an alphabet of %u",
					  what, p->width, p->alphabet);
		if (p->table_bytes)
			return lt_err_set(err, LT_EFORMAT, "%s is fixed width but has a code table", what);
		size_t need = lt_fixed_bytes(p->n, p->width);
		if (p->bytes != need)
			return lt_err_set(err, LT_EFORMAT, "%s: %lld symbols of %d bits take %zu bytes, not %llu",
					  what, (long long)p->n, p->width, need, (unsigned long long)p->bytes);
		return 0;
	}
	if (p->table_bytes < 1 || p->table_bytes > p->bytes)
		return lt_err_set(err, LT_EFORMAT, "%s: a code table of %llu bytes in a part of %llu", what,
				  (unsigned long long)p->table_bytes, (unsigned long long)p->bytes);
	uint64_t payload = p->bytes - p->table_bytes;
	if ((uint64_t)p->n > payload * 8 || (p->n == 0 && payload))
		return lt_err_set(err, LT_EFORMAT, "%s: %lld Huffman-coded symbols cannot take %llu bytes", what,
				  (long long)p->n, (unsigned long long)payload);
	return 0;
}

/* Everything in d that does not need the streams; d->bytes must be the
 * stream lengths the parts add up to. */
static int check_desc(const lt_pack_desc *d, int64_t limit, lt_err *err)
{
	int64_t numel;
	char sb[160];
	if (d->ndim < 0 || d->ndim > LT_MAX_DIMS)
		return lt_err_set(err, LT_EFORMAT, "the packed tensor has %d dimensions (at most %d)", d->ndim,
				  LT_MAX_DIMS);
	for (int i = 0; i < d->ndim; i++)
		if (d->shape[i] < 0)
			return lt_err_set(err, LT_EFORMAT, "the packed tensor's shape has a negative dimension");
	if (lt_shape_numel(d->ndim, d->shape, limit < MAX_NUMEL ? limit : MAX_NUMEL, &numel, err))
		return lt_err_set(err, LT_ERANGE, "the packed tensor's shape %s has more than %lld elements",
				  lt_shape_format(d->ndim, d->shape, sb, sizeof sb),
				  (long long)(limit < MAX_NUMEL ? limit : MAX_NUMEL));
	if (d->numel != numel)
		return lt_err_set(err, LT_EFORMAT, "the description gives %lld elements for shape %s",
				  (long long)d->numel, lt_shape_format(d->ndim, d->shape, sb, sizeof sb));
	if (d->plain != 0 && d->plain != 1)
		return lt_err_set(err, LT_EFORMAT, "the description's kind is unclear");
	if (!d->plain) {
		if (d->kind < LT_SCHEME_AFFINE || d->kind > LT_SCHEME_BF16)
			return lt_err_set(err, LT_EFORMAT, "unknown scheme kind %d", (int)d->kind);
		if (d->bits < 1 || d->bits > 16 ||
		    ((d->kind == LT_SCHEME_F16 || d->kind == LT_SCHEME_BF16) && d->bits != 16))
			return lt_err_set(err, LT_EFORMAT, "a %s scheme of %d bits", kind_names[d->kind], d->bits);
		if (d->groups < 1 || d->groups > (numel ? numel : 1) || numel % d->groups)
			return lt_err_set(err, LT_EFORMAT, "%lld groups do not divide %lld elements",
					  (long long)d->groups, (long long)numel);
		if (d->kind == LT_SCHEME_CODEBOOK && (d->k < 1 || d->k > 1 << d->bits))
			return lt_err_set(err, LT_EFORMAT, "a codebook of %d entries for %d-bit codes", d->k, d->bits);
		if (d->kind == LT_SCHEME_AFFINE && (d->qmin < -MAX_QMIN || d->qmin > MAX_QMIN))
			return lt_err_set(err, LT_EFORMAT, "affine qmin %d is outside +-%d", (int)d->qmin, MAX_QMIN);
		/* groups * k * 4 would overflow for a hostile groups and k */
		if ((uint64_t)d->groups > (uint64_t)MAX_NUMEL / (8 * (uint64_t)(d->k > 0 ? d->k : 1)))
			return lt_err_set(err, LT_EFORMAT, "a table of %lld groups of %d entries is too large",
					  (long long)d->groups, d->k);
	}
	if (d->present < 0 || d->present > numel)
		return lt_err_set(err, LT_EFORMAT, "%lld present elements in a tensor of %lld", (long long)d->present,
				  (long long)numel);
	uint64_t idx_bytes = 0;
	switch (d->index) {
	case LT_PACK_DENSE:
		if (d->present != numel)
			return lt_err_set(err, LT_EFORMAT, "a dense index with %lld of %lld elements present",
					  (long long)d->present, (long long)numel);
		if (d->n_idx != 0)
			return lt_err_set(err, LT_EFORMAT, "a dense index has no index parts");
		break;
	case LT_PACK_REL:
	case LT_PACK_HOLES: {
		if (d->gap_bits < 1 || d->gap_bits > 16)
			return lt_err_set(err, LT_EFORMAT, "gap width %d (1 to 16 bits allowed)", d->gap_bits);
		if (d->n_idx != 1)
			return lt_err_set(err, LT_EFORMAT, "a %s index has one part", index_names[d->index]);
		int64_t marked = d->index == LT_PACK_REL ? d->present : numel - d->present;
		int64_t m = ((int64_t)1 << d->gap_bits) - 1;
		int rc = check_part(&d->idx[0], "the index", marked + numel / m, 1u << d->gap_bits, err);
		if (rc)
			return rc;
		if (d->idx[0].alphabet != 1u << d->gap_bits)
			return lt_err_set(err, LT_EFORMAT, "the index alphabet is %u, not 2^%d", d->idx[0].alphabet,
					  d->gap_bits);
		if (d->idx[0].n < marked)
			return lt_err_set(err, LT_EFORMAT, "%lld index symbols cannot place %lld elements",
					  (long long)d->idx[0].n, (long long)marked);
		break;
	}
	case LT_PACK_CSR: {
		int64_t rows = csr_rows(d->ndim, d->shape), cols = rows ? numel / rows : 0;
		if (numel == 0 || cols > 65536)
			return lt_err_set(err, LT_EFORMAT, "no CSR index for shape %s",
					  lt_shape_format(d->ndim, d->shape, sb, sizeof sb));
		if (d->n_idx != 2)
			return lt_err_set(err, LT_EFORMAT, "a CSR index has two parts");
		uint32_t most = (uint32_t)(cols < 65535 ? cols + 1 : 65536);
		int rc = check_part(&d->idx[0], "the CSR row lengths", rows, most, err);
		if (!rc)
			rc = check_part(&d->idx[1], "the CSR columns", d->present, (uint32_t)cols, err);
		if (rc)
			return rc;
		if (d->idx[0].n != rows || d->idx[1].n != d->present)
			return lt_err_set(err, LT_EFORMAT, "a CSR index needs %lld row lengths and %lld columns, "
					  "not %lld and %lld", (long long)rows, (long long)d->present,
					  (long long)d->idx[0].n, (long long)d->idx[1].n);
		break;
	}
	default:
		return lt_err_set(err, LT_EFORMAT, "unknown index encoding %d", (int)d->index);
	}
	for (int i = 0; i < d->n_idx; i++)
		idx_bytes += d->idx[i].bytes;
	const lt_pack_part *cp = &d->codes;
	if (d->plain) {
		if (cp->n != d->present || cp->huffman || cp->width != 32 || cp->alphabet || cp->table_bytes ||
		    cp->bytes != 4 * (uint64_t)d->present)
			return lt_err_set(err, LT_EFORMAT, "the values of %lld present elements take %llu bytes as f32",
					  (long long)d->present, 4 * (unsigned long long)d->present);
	} else {
		int rc = check_part(cp, "the codes", d->present, scheme_alphabet(d->kind, d->bits, d->k), err);
		if (rc)
			return rc;
		if (cp->n != d->present)
			return lt_err_set(err, LT_EFORMAT, "%lld codes for %lld present elements", (long long)cp->n,
					  (long long)d->present);
	}
	uint64_t want[LT_PACK_STREAMS] = {idx_bytes, cp->bytes, table_stream_bytes(d->plain, d->kind, d->groups, d->k)};
	for (int i = 0; i < LT_PACK_STREAMS; i++)
		if (d->bytes[i] != want[i])
			return lt_err_set(err, LT_EFORMAT, "the %s stream is given as %llu bytes but its parts "
					  "take %llu", stream_names[i], (unsigned long long)d->bytes[i],
					  (unsigned long long)want[i]);
	return 0;
}

/* ---- parsing a description ------------------------------------------------- */

static int only_keys(json_t *o, const char *what, const char *const *keys, lt_err *err)
{
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v) {
		int known = 0;
		for (int i = 0; keys[i] && !known; i++)
			known = strcmp(key, keys[i]) == 0;
		if (!known) {
			char kb[40];
			size_t j = 0;
			for (; key[j] && j < sizeof kb - 1; j++)
				kb[j] = key[j] >= 0x20 && key[j] < 0x7f ? key[j] : '?';
			kb[j] = '\0';
			return lt_err_set(err, LT_EFORMAT, "%s has an unknown key \"%s%s\"", what, kb,
					  key[j] ? "..." : "");
		}
	}
	return 0;
}

static int get_int(json_t *o, const char *what, const char *key, int64_t lo, int64_t hi, int64_t *out,
		   lt_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return lt_err_set(err, LT_EFORMAT, "%s has no \"%s\"", what, key);
	if (!json_is_integer(v))
		return lt_err_set(err, LT_EFORMAT, "%s: \"%s\" is not an integer", what, key);
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return lt_err_set(err, LT_EFORMAT, "%s: \"%s\" is %lld, outside %lld to %lld", what, key,
				  (long long)x, (long long)lo, (long long)hi);
	*out = (int64_t)x;
	return 0;
}

static int parse_part(json_t *o, const char *what, int raw, lt_pack_part *p, lt_err *err)
{
	static const char *const keys[] = {"n", "alphabet", "width", "huffman", "bytes", NULL};
	static const char *const raw_keys[] = {"n", "width", "bytes", NULL};
	int64_t v;
	int rc;
	if (!json_is_object(o))
		return lt_err_set(err, LT_EFORMAT, "%s is not a JSON object", what);
	if ((rc = only_keys(o, what, raw ? raw_keys : keys, err)) ||
	    (rc = get_int(o, what, "n", 0, MAX_NUMEL, &p->n, err)) ||
	    (rc = get_int(o, what, "bytes", 0, MAX_NUMEL, &v, err)))
		return rc;
	p->bytes = (uint64_t)v;
	if (!raw) {
		if ((rc = get_int(o, what, "alphabet", 1, LT_HUFF_MAX_SYMS, &v, err)))
			return rc;
		p->alphabet = (uint32_t)v;
	}
	int has_width = json_object_get(o, "width") != NULL, has_huff = json_object_get(o, "huffman") != NULL;
	if (has_width == has_huff)
		return lt_err_set(err, LT_EFORMAT, "%s needs exactly one of \"width\" and \"huffman\"", what);
	if (has_huff) {
		p->huffman = 1;
		if ((rc = get_int(o, what, "huffman", 1, MAX_NUMEL, &v, err)))
			return rc;
		p->table_bytes = (uint64_t)v;
	} else {
		if ((rc = get_int(o, what, "width", 0, 32, &v, err)))
			return rc;
		p->width = (int)v;
	}
	return 0;
}

int lt_pack_desc_parse(const char *text, size_t len, int64_t limit, lt_pack_desc *d, lt_err *err)
{
	static const char *const keys[] = {"pack", "shape", "kind", "bits", "groups", "qmin", "k", "present",
					   "index", "gap_bits", "idx", "codes", "table", NULL};
	const char *what = "the pack description";
	json_t *root = NULL;
	int rc;
	int64_t v;
	memset(d, 0, sizeof *d);
	if (memchr(text, '\0', len)) {
		rc = lt_err_set(err, LT_EFORMAT, "%s contains a NUL byte", what);
		goto out;
	}
	json_error_t jerr;
	if (!(root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr))) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			rc = lt_err_set(err, LT_ENOMEM, "out of memory parsing %s", what);
		else {
			/* jansson's text may quote the file's bytes */
			char tb[JSON_ERROR_TEXT_LENGTH];
			size_t j = 0;
			for (; jerr.text[j] && j < sizeof tb - 1; j++)
				tb[j] = jerr.text[j] >= 0x20 && jerr.text[j] < 0x7f ? jerr.text[j] : '?';
			tb[j] = '\0';
			rc = lt_err_set(err, LT_EFORMAT, "%s is not valid JSON: %s (byte %d)", what, tb, jerr.position);
		}
		goto out;
	}
	if (!json_is_object(root)) {
		rc = lt_err_set(err, LT_EFORMAT, "%s is not a JSON object", what);
		goto out;
	}
	if ((rc = only_keys(root, what, keys, err)) || (rc = get_int(root, what, "pack", 1, 1, &v, err)))
		goto out;
	json_t *shape = json_object_get(root, "shape");
	if (!json_is_array(shape) || json_array_size(shape) > LT_MAX_DIMS) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: \"shape\" is not an array of at most %d integers", what,
				LT_MAX_DIMS);
		goto out;
	}
	d->ndim = (int)json_array_size(shape);
	for (int i = 0; i < d->ndim; i++) {
		json_t *x = json_array_get(shape, (size_t)i);
		if (!json_is_integer(x) || json_integer_value(x) < 0) {
			rc = lt_err_set(err, LT_EFORMAT, "%s: shape[%d] is not a non-negative integer", what, i);
			goto out;
		}
		d->shape[i] = (int64_t)json_integer_value(x);
	}
	char sb[160];
	int64_t cap = limit < MAX_NUMEL ? limit : MAX_NUMEL;
	if (lt_shape_numel(d->ndim, d->shape, cap, &d->numel, err)) {
		rc = lt_err_set(err, LT_ERANGE, "the packed tensor's shape %s has more than %lld elements",
				lt_shape_format(d->ndim, d->shape, sb, sizeof sb), (long long)cap);
		goto out;
	}

	json_t *kind = json_object_get(root, "kind");
	const char *ks = json_is_string(kind) ? json_string_value(kind) : NULL;
	d->plain = ks && strcmp(ks, "f32") == 0;
	int found = d->plain;
	for (int i = 0; ks && !found && i < 4; i++)
		if (strcmp(ks, kind_names[i]) == 0) {
			d->kind = (lt_scheme_kind)i;
			found = 1;
		}
	if (!found) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: \"kind\" is not one of f32, affine, codebook, f16, bf16", what);
		goto out;
	}
	int want_qmin = !d->plain && d->kind == LT_SCHEME_AFFINE, want_k = !d->plain && d->kind == LT_SCHEME_CODEBOOK;
	if ((!!json_object_get(root, "bits") != !d->plain) || (!!json_object_get(root, "groups") != !d->plain) ||
	    (!!json_object_get(root, "qmin") != want_qmin) || (!!json_object_get(root, "k") != want_k)) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: the scheme keys do not match kind \"%s\"", what, ks);
		goto out;
	}
	if (!d->plain) {
		if ((rc = get_int(root, what, "bits", 1, 16, &v, err)))
			goto out;
		d->bits = (int)v;
		if ((rc = get_int(root, what, "groups", 1, MAX_NUMEL, &d->groups, err)))
			goto out;
		if (want_qmin) {
			if ((rc = get_int(root, what, "qmin", -MAX_QMIN, MAX_QMIN, &v, err)))
				goto out;
			d->qmin = (int32_t)v;
		}
		if (want_k) {
			if ((rc = get_int(root, what, "k", 1, 65536, &v, err)))
				goto out;
			d->k = (int)v;
		}
	}
	if ((rc = get_int(root, what, "present", 0, MAX_NUMEL, &d->present, err)))
		goto out;

	json_t *index = json_object_get(root, "index");
	const char *is = json_is_string(index) ? json_string_value(index) : NULL;
	found = 0;
	for (int i = LT_PACK_DENSE; is && !found && i <= LT_PACK_CSR; i++)
		if (strcmp(is, index_names[i]) == 0) {
			d->index = (lt_pack_index)i;
			found = 1;
		}
	if (!found) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: \"index\" is not one of dense, rel, holes, csr", what);
		goto out;
	}
	int gaps = d->index == LT_PACK_REL || d->index == LT_PACK_HOLES;
	if (!!json_object_get(root, "gap_bits") != gaps) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: \"gap_bits\" goes with a rel or holes index only", what);
		goto out;
	}
	if (gaps) {
		if ((rc = get_int(root, what, "gap_bits", 1, 16, &v, err)))
			goto out;
		d->gap_bits = (int)v;
	}
	json_t *idx = json_object_get(root, "idx");
	size_t want_parts = d->index == LT_PACK_DENSE ? 0 : d->index == LT_PACK_CSR ? 2 : 1;
	if (!json_is_array(idx) || json_array_size(idx) != want_parts) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: \"idx\" is not an array of %zu parts", what, want_parts);
		goto out;
	}
	d->n_idx = (int)want_parts;
	for (int i = 0; i < d->n_idx; i++) {
		if ((rc = parse_part(json_array_get(idx, (size_t)i), i ? "the second index part" : "the index part",
				     0, &d->idx[i], err)))
			goto out;
		d->bytes[LT_PACK_IDX] += d->idx[i].bytes;
	}
	if ((rc = parse_part(json_object_get(root, "codes"), "the codes part", d->plain, &d->codes, err)) ||
	    (rc = get_int(root, what, "table", 0, MAX_NUMEL, &v, err)))
		goto out;
	d->bytes[LT_PACK_CODES] = d->codes.bytes;
	d->bytes[LT_PACK_TABLE] = (uint64_t)v;
	rc = check_desc(d, limit, err);
out:
	json_decref(root);
	return rc;
}

/* ---- decoding --------------------------------------------------------------- */

/* Where decoded elements go. */
struct sink {
	float *values, *mask;
	lt_scheme *s;          /* NULL for plain */
	const uint16_t *codes; /* scheme: one per present element */
	const uint8_t *raw;    /* plain: f32 little-endian per present element */
};

static inline void emit(const struct sink *k, int64_t pos, int64_t j)
{
	if (k->s) {
		uint16_t c = k->codes[j];
		k->values[pos] = lt_scheme_value(k->s, pos / k->s->group_len, c);
		k->s->codes[pos] = c;
	} else {
		uint32_t v = get_le32(k->raw + 4 * j);
		memcpy(&k->values[pos], &v, 4);
	}
	if (k->mask)
		k->mask[pos] = 1.0f;
}

static int decode_part(const lt_pack_part *p, const uint8_t *in, uint16_t *out, const char *what, lt_err *err)
{
	int rc = p->huffman ? lt_huff_decode_part(in, (size_t)p->bytes, (size_t)p->table_bytes, p->alphabet, p->n,
						  out, err)
			    : lt_fixed_unpack(in, (size_t)p->bytes, p->n, p->width, p->alphabet, out, err);
	return rc ? lt_err_prefix(err, "%s", what) : 0;
}

/* Walk gap symbols (rel: present elements; holes: absent ones). */
static int walk_gaps(const lt_pack_desc *d, const uint16_t *sym, const struct sink *k, lt_err *err)
{
	const int64_t m = ((int64_t)1 << d->gap_bits) - 1, n = d->idx[0].n, numel = d->numel;
	const int rel = d->index == LT_PACK_REL;
	int64_t cur = 0, j = 0, next = 0; /* next: the first element not yet emitted (holes) */
	for (int64_t t = 0; t < n; t++) {
		int64_t s = sym[t];
		if (s == m) {
			cur += m;
			if (cur > numel)
				return lt_err_set(err, LT_EFORMAT, "the index skips past the last element");
			if (t == n - 1)
				return lt_err_set(err, LT_EFORMAT, "the index ends with a filler");
			continue;
		}
		int64_t pos = cur + s;
		if (pos >= numel)
			return lt_err_set(err, LT_EFORMAT, "the index places an element at %lld of %lld",
					  (long long)pos, (long long)numel);
		cur = pos + 1;
		if (rel) {
			if (j >= d->present)
				return lt_err_set(err, LT_EFORMAT, "the index places more than %lld elements",
						  (long long)d->present);
			emit(k, pos, j++);
		} else {
			if (j + (pos - next) > d->present)
				return lt_err_set(err, LT_EFORMAT, "the index leaves more than %lld elements present",
						  (long long)d->present);
			for (; next < pos; next++)
				emit(k, next, j++);
			next = pos + 1;
		}
	}
	if (!rel) {
		if (j + (numel - next) != d->present)
			return lt_err_set(err, LT_EFORMAT, "the index leaves %lld elements present, not %lld",
					  (long long)(j + numel - next), (long long)d->present);
		for (; next < numel; next++)
			emit(k, next, j++);
	}
	if (j != d->present)
		return lt_err_set(err, LT_EFORMAT, "the index places %lld elements, not %lld", (long long)j,
				  (long long)d->present);
	return 0;
}

static int walk_csr(const lt_pack_desc *d, const uint16_t *rows, const uint16_t *cols, const struct sink *k,
		    lt_err *err)
{
	const int64_t nrows = d->idx[0].n, ncols = d->numel / nrows;
	int64_t total = 0;
	for (int64_t r = 0; r < nrows; r++) {
		if (rows[r] > ncols)
			return lt_err_set(err, LT_EFORMAT, "CSR row %lld has %u elements in %lld columns",
					  (long long)r, rows[r], (long long)ncols);
		total += rows[r];
	}
	if (total != d->present)
		return lt_err_set(err, LT_EFORMAT, "the CSR rows hold %lld elements, not %lld", (long long)total,
				  (long long)d->present);
	for (int64_t r = 0, j = 0; r < nrows; r++) {
		int64_t prev = -1;
		for (uint32_t t = 0; t < rows[r]; t++, j++) {
			int64_t c = cols[j];
			if (c <= prev || c >= ncols)
				return lt_err_set(err, LT_EFORMAT, "CSR row %lld: column %lld does not follow %lld",
						  (long long)r, (long long)c, (long long)prev);
			prev = c;
			emit(k, r * ncols + c, j);
		}
	}
	return 0;
}

static void read_table(lt_scheme *s, const uint8_t *in)
{
	uint32_t v;
	if (s->kind == LT_SCHEME_AFFINE) {
		for (int64_t g = 0; g < s->groups; g++, in += 4) {
			v = get_le32(in);
			memcpy(&s->scale[g], &v, 4);
		}
		for (int64_t g = 0; g < s->groups; g++, in += 4)
			s->zero_point[g] = (int32_t)get_le32(in);
	} else if (s->kind == LT_SCHEME_CODEBOOK) {
		for (int64_t i = 0; i < s->groups * s->k; i++, in += 4) {
			v = get_le32(in);
			memcpy(&s->table[i], &v, 4);
		}
	}
}

int lt_unpack(const lt_pack_desc *d, const uint8_t *const stream[LT_PACK_STREAMS],
	      const size_t len[LT_PACK_STREAMS], int64_t limit, float *values, float *mask,
	      lt_scheme **scheme, lt_err *err)
{
	static const uint8_t none[1];
	const uint8_t *in[LT_PACK_STREAMS];
	lt_scheme *s = NULL;
	uint16_t *sym[2] = {NULL, NULL}, *codes = NULL;
	int rc;
	if (scheme)
		*scheme = NULL;
	if ((rc = check_desc(d, limit, err)))
		return rc;
	for (int i = 0; i < LT_PACK_STREAMS; i++) {
		if (len[i] != d->bytes[i])
			return lt_err_set(err, LT_EFORMAT, "the %s stream is %zu bytes but the description says %llu",
					  stream_names[i], len[i], (unsigned long long)d->bytes[i]);
		if (len[i] && !stream[i])
			return lt_err_set(err, LT_EINVAL, "the %s stream is missing", stream_names[i]);
		in[i] = stream[i] ? stream[i] : none;
	}
	if (!d->plain) {
		if (!(s = lt_scheme_new(d->kind, d->bits, d->numel, d->groups, d->k ? d->k : 1, err)))
			return err ? err->code : LT_ENOMEM;
		s->qmin = d->qmin;
		read_table(s, in[LT_PACK_TABLE]);
		/* affine zero points come from the file: keep lt_scheme_value's
		 * arithmetic within int32 */
		for (int64_t g = 0; d->kind == LT_SCHEME_AFFINE && g < s->groups; g++)
			if (s->zero_point[g] < -MAX_ZERO_POINT || s->zero_point[g] > MAX_ZERO_POINT) {
				rc = lt_err_set(err, LT_EFORMAT, "zero point %d of group %lld is outside +-2^30",
						(int)s->zero_point[g], (long long)g);
				goto fail;
			}
	}
	/* every count below was checked against the shape and stream sizes */
	const uint8_t *at = in[LT_PACK_IDX];
	for (int i = 0; i < d->n_idx; i++) {
		if (!(sym[i] = lt_malloc_array(d->idx[i].n ? (size_t)d->idx[i].n : 1, sizeof *sym[i])))
			goto nomem;
		if ((rc = decode_part(&d->idx[i], at, sym[i], "the index", err)))
			goto fail;
		at += d->idx[i].bytes;
	}
	if (!d->plain) {
		if (!(codes = lt_malloc_array(d->present ? (size_t)d->present : 1, sizeof *codes)))
			goto nomem;
		if ((rc = decode_part(&d->codes, in[LT_PACK_CODES], codes, "the codes", err)))
			goto fail;
	}
	memset(values, 0, (size_t)d->numel * sizeof *values);
	if (mask)
		memset(mask, 0, (size_t)d->numel * sizeof *mask);
	struct sink k = {values, mask, s, codes, in[LT_PACK_CODES]};
	switch (d->index) {
	case LT_PACK_AUTO: /* refused by check_desc */
		break;
	case LT_PACK_DENSE:
		for (int64_t i = 0; i < d->numel; i++)
			emit(&k, i, i);
		break;
	case LT_PACK_REL:
	case LT_PACK_HOLES:
		rc = walk_gaps(d, sym[0], &k, err);
		break;
	case LT_PACK_CSR:
		rc = walk_csr(d, sym[0], sym[1], &k, err);
		break;
	}
	if (rc)
		goto fail;
	lt_free(sym[0]);
	lt_free(sym[1]);
	lt_free(codes);
	if (scheme)
		*scheme = s;
	else
		lt_scheme_free(s);
	return 0;
nomem:
	rc = lt_err_set(err, LT_ENOMEM, "out of memory unpacking a tensor");
fail:
	lt_free(sym[0]);
	lt_free(sym[1]);
	lt_free(codes);
	lt_scheme_free(s);
	return rc;
}
