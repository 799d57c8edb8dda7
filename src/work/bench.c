#include "work/bench.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "io/packed.h"
#include "io/safetensors.h"
#include "core/rng.h"
#include "kern/blas.h"
#include "nn/forward.h"

#define CACHE_SLOTS 4
#define FIDELITY_SAMPLES 16
#define FIDELITY_SEED 0x6c61746865ULL /* "lathe" */
/* Most memory kept for activations of the committed model (see act_cache). */
#define ACT_BUDGET ((size_t)256 << 20)

/* Cached evaluation of one model state on one data key. */
struct cache_ent {
	char *key;            /* NULL = empty slot */
	uint64_t version;     /* stage cache only */
	lt_metrics m;
};

/* A committed state. Steps form a list from the current one back to the
 * model as opened; marks hold references so an undone step can come back. */
struct step {
	int refs;
	struct step *prev;
	lt_model *model;      /* NULL once beyond the undo limit */
	char *message, *calls;
	int has_metrics;
	lt_metrics metrics;
	int64_t id;
	struct cache_ent cache[CACHE_SLOTS];
	lt_bench_step pub;
};

/* Activations of the committed model at one value of its graph, for every
 * preview image: a staged change that leaves the layers before that value
 * alone is evaluated from there on, skipping the unchanged prefix. They
 * stay valid across commits that leave those layers alone. */
#define ACT_SLOTS 2
struct act_cache {
	lt_model *model;      /* the model they were computed with (a reference) */
	char *key;            /* data key; NULL = empty slot */
	int value;
	int64_t n;
	float *data;
	uint64_t used;        /* for eviction: last use */
};

struct lt_bench {
	int refs;
	struct act_cache act[ACT_SLOTS];
	uint64_t act_clock;
	/* Fidelity of the stage version fid_version (every stage change gets a
	 * new version, commits and undos included). */
	lt_preview fid;
	uint64_t fid_version;
	struct step *head;
	lt_model *stage;
	char *stage_calls;    /* never NULL */
	size_t stage_calls_len;
	int dirty;
	uint64_t version, next_version;
	size_t baseline_bytes;
	int undo_limit;
	int closed;
	struct cache_ent stage_cache[CACHE_SLOTS];
};

struct lt_bench_mark {
	struct step *head;
	lt_model *head_model;
	lt_model *stage;
	char *stage_calls;
	int dirty;
	uint64_t version;
};

static void cache_clear(struct cache_ent *c)
{
	for (int i = 0; i < CACHE_SLOTS; i++) {
		lt_free(c[i].key);
		c[i].key = NULL;
	}
}

static struct cache_ent *cache_find(struct cache_ent *c, const char *key, uint64_t version)
{
	for (int i = 0; i < CACHE_SLOTS; i++)
		if (c[i].key && c[i].version == version && !strcmp(c[i].key, key))
			return &c[i];
	return NULL;
}

/* Store in the first empty slot, else evict slot 0 and shift (oldest out). */
static void cache_put(struct cache_ent *c, const char *key, uint64_t version, const lt_metrics *m)
{
	char *k = lt_strdup(key);
	if (!k)
		return; /* a cache that cannot grow just misses next time */
	int i = 0;
	while (i < CACHE_SLOTS && c[i].key)
		i++;
	if (i == CACHE_SLOTS) {
		lt_free(c[0].key);
		memmove(c, c + 1, (CACHE_SLOTS - 1) * sizeof *c);
		i = CACHE_SLOTS - 1;
	}
	c[i].key = k;
	c[i].version = version;
	c[i].m = *m;
}

static struct step *step_ref(struct step *s)
{
	if (s)
		s->refs++;
	return s;
}

static void step_unref(struct step *s)
{
	while (s && --s->refs == 0) {
		struct step *prev = s->prev;
		lt_model_unref(s->model);
		lt_free(s->message);
		lt_free(s->calls);
		cache_clear(s->cache);
		lt_free(s);
		s = prev;
	}
}

static struct step *step_new(struct step *prev, lt_model *m, const char *message,
			     const char *calls, lt_err *err)
{
	struct step *s = lt_calloc(1, sizeof *s);
	if (!s || !(s->message = lt_strdup(message ? message : "")) ||
	    !(s->calls = lt_strdup(calls ? calls : ""))) {
		if (s) {
			lt_free(s->message);
			lt_free(s);
		}
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	s->refs = 1;
	s->prev = step_ref(prev);
	s->model = lt_model_ref(m);
	s->id = prev ? prev->id + 1 : 0;
	return s;
}

/* A fresh stage equal to the committed model. */
static int reset_stage(lt_bench *b, lt_err *err)
{
	lt_model *c = lt_model_copy(b->head->model, err);
	if (!c)
		return LT_ENOMEM;
	lt_model_unref(b->stage);
	b->stage = c;
	b->stage_calls[0] = '\0';
	b->stage_calls_len = 0;
	b->dirty = 0;
	b->version = b->next_version++;
	return 0;
}

lt_bench *lt_bench_new(lt_model *m, lt_err *err)
{
	lt_bench *b = lt_calloc(1, sizeof *b);
	if (!b || !(b->stage_calls = lt_strdup(""))) {
		lt_free(b);
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	b->refs = 1;
	b->undo_limit = 32;
	b->next_version = 1;
	/* sizes are compared with the model as opened, saved as values */
	uint64_t plain;
	if (lt_safetensors_model_size(m, &plain, err)) {
		lt_bench_unref(b);
		return NULL;
	}
	b->baseline_bytes = (size_t)plain;
	if (!(b->head = step_new(NULL, m, "opened", "", err)) || reset_stage(b, err)) {
		lt_bench_unref(b);
		return NULL;
	}
	return b;
}

lt_bench *lt_bench_ref(lt_bench *b)
{
	if (b)
		b->refs++;
	return b;
}

void lt_bench_unref(lt_bench *b)
{
	if (!b || --b->refs > 0)
		return;
	step_unref(b->head);
	lt_model_unref(b->stage);
	lt_free(b->stage_calls);
	cache_clear(b->stage_cache);
	lt_preview_free(&b->fid);
	for (int i = 0; i < ACT_SLOTS; i++) {
		lt_model_unref(b->act[i].model);
		lt_free(b->act[i].key);
		lt_free(b->act[i].data);
	}
	lt_free(b);
}

lt_model *lt_bench_staged(const lt_bench *b) { return b->stage; }
size_t lt_bench_baseline_bytes(const lt_bench *b) { return b->baseline_bytes; }
void lt_bench_close(lt_bench *b) { b->closed = 1; }
int lt_bench_closed(const lt_bench *b) { return b->closed; }
lt_model *lt_bench_committed(const lt_bench *b) { return b->head->model; }
int lt_bench_dirty(const lt_bench *b) { return b->dirty; }
uint64_t lt_bench_version(const lt_bench *b) { return b->version; }
const char *lt_bench_staged_calls(const lt_bench *b) { return b->stage_calls; }

static void touch(lt_bench *b)
{
	b->dirty = 1;
	b->version = b->next_version++;
}

lt_tensor *lt_bench_writable(lt_bench *b, const char *name, lt_err *err)
{
	lt_tensor *t = lt_model_tensor(b->stage, name);
	if (!t) {
		lt_err_set(err, LT_EINVAL, "no tensor named '%s'", name);
		return NULL;
	}
	if (lt_tensor_shared(t)) {
		lt_tensor *c = lt_tensor_clone(t, err);
		if (!c)
			return NULL;
		int rc = lt_model_set_tensor(b->stage, name, c, err);
		lt_tensor_unref(c);
		if (rc)
			return NULL;
		t = c;
	}
	touch(b);
	return t;
}

int lt_bench_stage_tensor(lt_bench *b, const char *name, lt_tensor *t, lt_err *err)
{
	lt_tensor *old = lt_model_tensor(b->stage, name);
	if (!old)
		return lt_err_set(err, LT_EINVAL, "no tensor named '%s'", name);
	int nd = lt_tensor_ndim(old);
	if (lt_tensor_ndim(t) != nd ||
	    memcmp(lt_tensor_shape(t), lt_tensor_shape(old), (size_t)nd * sizeof(int64_t))) {
		char a[64], c[64];
		return lt_err_set(err, LT_EINVAL, "tensor '%s' is %s; cannot stage a %s tensor", name,
				  lt_shape_format(nd, lt_tensor_shape(old), a, sizeof a),
				  lt_shape_format(lt_tensor_ndim(t), lt_tensor_shape(t), c, sizeof c));
	}
	int rc = lt_model_set_tensor(b->stage, name, t, err);
	if (!rc)
		touch(b);
	return rc;
}

void lt_bench_stage_model(lt_bench *b, lt_model *m)
{
	lt_model_unref(b->stage);
	b->stage = lt_model_ref(m);
	touch(b);
}

int lt_bench_note(lt_bench *b, const char *call, lt_err *err)
{
	size_t n = strlen(call), need = b->stage_calls_len + n + 2;
	char *s = lt_realloc(b->stage_calls, need);
	if (!s)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	memcpy(s + b->stage_calls_len, call, n);
	s[b->stage_calls_len + n] = '\n';
	s[need - 1] = '\0';
	b->stage_calls = s;
	b->stage_calls_len = need - 1;
	b->dirty = 1;
	return 0;
}

/* Release models of steps beyond the undo limit (their journal stays). */
static void apply_undo_limit(lt_bench *b)
{
	if (b->undo_limit <= 0)
		return;
	int depth = 0;
	for (struct step *s = b->head; s; s = s->prev, depth++) {
		if (depth > b->undo_limit && s->model) {
			lt_model_unref(s->model);
			s->model = NULL;
		}
	}
}

/* 1 when the stage holds a tensor object the committed model does not. */
static int tensors_changed(const lt_bench *b)
{
	lt_model *s = b->stage, *c = b->head->model;
	if (lt_model_tensor_count(s) != lt_model_tensor_count(c))
		return 1;
	for (size_t i = 0; i < lt_model_tensor_count(s); i++)
		if (lt_model_tensor(c, lt_model_tensor_name(s, i)) != lt_model_tensor_at(s, i))
			return 1;
	return 0;
}

int lt_bench_commit(lt_bench *b, const char *message, const lt_metrics *metrics, lt_err *err)
{
	/* An accuracy recorded in the file describes the weights it was
	 * measured on; changed weights would carry a false figure. */
	if (tensors_changed(b))
		lt_model_del_meta(b->stage, LT_META_TEST_ACCURACY);
	struct step *s = step_new(b->head, b->stage, message, b->stage_calls, err);
	if (!s)
		return LT_ENOMEM;
	if (metrics) {
		s->has_metrics = 1;
		s->metrics = *metrics;
	}
	/* The stage's cached evaluations now describe the committed state. */
	for (int i = 0; i < CACHE_SLOTS; i++)
		if (b->stage_cache[i].key && b->stage_cache[i].version == b->version)
			cache_put(s->cache, b->stage_cache[i].key, 0, &b->stage_cache[i].m);
	struct step *old = b->head;
	b->head = s;
	if (reset_stage(b, err)) {
		b->head = old;
		step_unref(s);
		return LT_ENOMEM;
	}
	step_unref(old); /* s holds it as prev */
	apply_undo_limit(b);
	return 0;
}

void lt_bench_annotate_head(lt_bench *b, const lt_metrics *metrics)
{
	if (!b->head->has_metrics) {
		b->head->has_metrics = 1;
		b->head->metrics = *metrics;
	}
}

void lt_bench_rollback(lt_bench *b)
{
	lt_err err;
	if (!b->dirty)
		return;
	if (reset_stage(b, &err)) {
		/* No memory for a new stage: undo the staged tensors in place so
		 * the stage still equals the committed model. */
		lt_model *c = b->head->model;
		for (size_t i = 0; i < lt_model_tensor_count(c); i++)
			lt_model_set_tensor(b->stage, lt_model_tensor_name(c, i),
					    lt_model_tensor_at(c, i), &err);
		b->stage_calls[0] = '\0';
		b->stage_calls_len = 0;
		b->dirty = 0;
		b->version = b->next_version++;
	}
}

int lt_bench_undo(lt_bench *b, lt_err *err)
{
	struct step *prev = b->head->prev;
	if (!prev)
		return lt_err_set(err, LT_EINVAL, "nothing to undo: no commits yet");
	if (!prev->model)
		return lt_err_set(err, LT_EINVAL, "cannot undo past the last %d commits (the undo limit)",
				  b->undo_limit);
	struct step *old = b->head;
	b->head = step_ref(prev);
	if (reset_stage(b, err)) {
		step_unref(b->head);
		b->head = old;
		return LT_ENOMEM;
	}
	step_unref(old);
	return 0;
}

void lt_bench_set_undo_limit(lt_bench *b, int n)
{
	b->undo_limit = n < 0 ? 0 : n;
	apply_undo_limit(b);
}

size_t lt_bench_history_len(const lt_bench *b)
{
	return (size_t)b->head->id + 1;
}

const lt_bench_step *lt_bench_history_at(const lt_bench *b, size_t i)
{
	struct step *s = b->head;
	if (i > (size_t)s->id)
		return NULL;
	while ((size_t)s->id > i)
		s = s->prev;
	s->pub.id = s->id;
	s->pub.message = s->message;
	s->pub.calls = s->calls;
	s->pub.has_metrics = s->has_metrics;
	s->pub.metrics = s->metrics;
	s->pub.undoable = s->model != NULL;
	return &s->pub;
}

/* ---- measuring -------------------------------------------------------- */

int lt_model_size_metrics(lt_model *m, size_t baseline_bytes, lt_metrics *out, lt_err *err)
{
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < lt_model_tensor_count(m); i++) {
		lt_tensor *t = lt_model_tensor_at(m, i);
		int64_t n = lt_tensor_numel(t);
		out->params += n;
		out->nonzeros += n - lt_tensor_count_zeros(t);
		out->bytes += lt_tensor_nbytes(t);
	}
	lt_packed_report r;
	int rc = lt_packed_measure(m, &r, err);
	if (rc)
		return rc;
	out->size = (size_t)r.file_bytes;
	lt_packed_report_free(&r);
	out->ratio = out->size ? (double)baseline_bytes / (double)out->size : 0.0;
	return 0;
}

int lt_model_measure(lt_model *m, size_t baseline_bytes, const lt_dataset *data,
		     const lt_eval_opts *eo, lt_metrics *out, lt_err *err)
{
	int rc = lt_model_size_metrics(m, baseline_bytes, out, err);
	if (rc || !data || !data->n || !lt_model_graph(m))
		return rc;
	lt_eval_result r;
	rc = lt_eval_run(m, data, eo, &r, err);
	if (rc)
		return rc;
	out->has_accuracy = 1;
	out->accuracy = r.top1;
	out->loss = r.loss;
	out->images = r.n;
	lt_eval_result_free(&r);
	return 0;
}

/* lt_model_measure with the preview's options; evaluation starts at value
 * from_value with activations from_data when given. */
static int measure(lt_bench *b, lt_model *m, const lt_preview_opts *o, int from_value,
		   const float *from_data, lt_metrics *out, lt_err *err)
{
	lt_eval_opts eo = {.batch = o->batch ? o->batch : 1000, .threads = o->threads,
			   .progress = o->progress, .progress_ud = o->progress_ud,
			   .from_value = from_value, .from_data = from_data};
	return lt_model_measure(m, b->baseline_bytes, o->data, &eo, out, err);
}

/* Graphs equal in structure (the stage's is a copy of the committed one
 * unless a structural change replaced it). */
static int same_graph(const lt_graph *a, const lt_graph *b)
{
	if (a->n_nodes != b->n_nodes || a->in_numel != b->in_numel)
		return 0;
	for (int i = 0; i < a->n_nodes; i++) {
		const lt_node *x = &a->nodes[i], *y = &b->nodes[i];
		if (x->op != y->op || x->out_numel != y->out_numel || x->n_inputs != y->n_inputs ||
		    memcmp(x->inputs, y->inputs, sizeof x->inputs))
			return 0;
		for (int s = 0; s < LT_NODE_MAX_PARAMS; s++)
			if (!x->params[s] != !y->params[s] || (x->params[s] && strcmp(x->params[s], y->params[s])))
				return 0;
	}
	return 1;
}

/* 1 when node i computes the same thing in models a and b (same graphs):
 * the same tensors and the same activation threshold. */
static int same_node(lt_model *a, lt_model *b, int i)
{
	const lt_node *na = &lt_model_graph(a)->nodes[i], *nb = &lt_model_graph(b)->nodes[i];
	if (na->act_threshold != nb->act_threshold)
		return 0;
	for (int s = 0; s < LT_NODE_MAX_PARAMS; s++)
		if (na->params[s] && lt_model_tensor(a, na->params[s]) != lt_model_tensor(b, na->params[s]))
			return 0;
	return 1;
}

/* Index of the first node that differs between two models (n_nodes if
 * none; 0 if the graphs differ). */
static int first_changed_node(lt_model *a, lt_model *b)
{
	lt_graph *ga = lt_model_graph(a), *gb = lt_model_graph(b);
	if (!ga || !gb || !same_graph(ga, gb))
		return 0;
	int i = 0;
	while (i < ga->n_nodes && same_node(a, b, i))
		i++;
	return i;
}

/* 1 when every node before v is the same in models a and b (so the same
 * value v on the same data). */
static int same_prefix(lt_model *a, lt_model *b, int v)
{
	const lt_graph *ga = lt_model_graph(a), *gb = lt_model_graph(b);
	return ga && gb && same_graph(ga, gb) && first_changed_node(a, b) >= v;
}

/* Model m's value v on o->data: from a cache slot when one matches, else
 * computed into the least recently used slot. NULL with *rc = 0 when it
 * would not fit the budget (the caller evaluates in full), or with *rc an
 * error. */
static const float *act_for(lt_bench *b, lt_model *m, const lt_preview_opts *o, const char *key, int v,
			    int *rc, lt_err *err)
{
	struct act_cache *slot = &b->act[0];
	*rc = 0;
	for (int i = 0; i < ACT_SLOTS; i++) {
		struct act_cache *a = &b->act[i];
		if (a->key && a->value == v && !strcmp(a->key, key) && same_prefix(a->model, m, v)) {
			a->used = ++b->act_clock;
			return a->data;
		}
		if (!a->key || a->used < slot->used)
			slot = a;
	}
	const lt_graph *g = lt_model_graph(m);
	const lt_dataset *d = o->data;
	int64_t numel = lt_graph_value_numel(g, v);
	if (d->item_numel != g->in_numel || (double)d->n * (double)numel * 4 > (double)ACT_BUDGET / ACT_SLOTS)
		return NULL;
	/* Start from a cached earlier value when one still holds. */
	const struct act_cache *from = NULL;
	for (int i = 0; i < ACT_SLOTS; i++) {
		const struct act_cache *a = &b->act[i];
		if (a != slot && a->key && a->value < v && !strcmp(a->key, key) &&
		    lt_graph_is_cut(g, a->value) && same_prefix(a->model, m, a->value) &&
		    (!from || a->value > from->value))
			from = a;
	}
	int u = from ? from->value : 0;
	int64_t in_numel = lt_graph_value_numel(g, u);
	size_t count = (size_t)(d->n * numel);
	float *data = lt_malloc_array(count ? count : 1, sizeof *data);
	int batch = o->batch ? o->batch : 1000;
	float *x = from ? NULL : lt_malloc_array((size_t)batch * (size_t)g->in_numel, sizeof *x);
	char *k = lt_strdup(key);
	int have = data && (x || from) && k;
	lt_forward *f = have ? lt_forward_new(m, o->threads, err) : NULL;
	int r = f ? 0 : have ? err->code : lt_err_set(err, LT_ENOMEM, "out of memory");
	for (int64_t first = 0; !r && first < d->n; first += batch) {
		int64_t n = d->n - first < batch ? d->n - first : batch;
		const float *in = from ? from->data + first * in_numel : x;
		if (!from)
			r = lt_dataset_get_batch(d, first, n, g->scale, g->mean, g->std, g->n_norm, x, err);
		if (!r)
			r = lt_forward_run_range(f, u, v, in, n, data + first * numel, err);
		if (!r && o->progress && o->progress(o->progress_ud, first + n, 2 * d->n))
			r = lt_err_set(err, LT_ECANCEL, "cancelled");
	}
	lt_forward_free(f);
	lt_free(x);
	if (r) {
		lt_free(data);
		lt_free(k);
		*rc = r;
		return NULL;
	}
	lt_model_unref(slot->model);
	lt_free(slot->key);
	lt_free(slot->data);
	slot->model = lt_model_ref(m);
	slot->key = k;
	slot->value = v;
	slot->n = d->n;
	slot->data = data;
	slot->used = ++b->act_clock;
	return data;
}

int lt_bench_measure_from(lt_bench *b, lt_model *base, lt_model *variant, const lt_preview_opts *o,
			  lt_metrics *out, lt_err *err)
{
	int v = o->data ? first_changed_node(variant, base) : 0;
	/* nothing differs (v = n_nodes): no prefix worth caching */
	if (v == 0 || v >= lt_model_graph(variant)->n_nodes || !lt_graph_is_cut(lt_model_graph(variant), v))
		return measure(b, variant, o, 0, NULL, out, err);
	int rc;
	const float *act = act_for(b, base, o, o->data_key ? o->data_key : "", v, &rc, err);
	if (rc)
		return rc;
	return act ? measure(b, variant, o, v, act, out, err) : measure(b, variant, o, 0, NULL, out, err);
}

static double gauss(lt_rng *r)
{
	/* Box-Muller; 1 - u keeps the log away from 0. */
	double u = 1.0 - lt_rng_uniform(r), v = lt_rng_uniform(r);
	return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static int fidelity_of(lt_tensor *committed, lt_tensor *staged, lt_fidelity *f, lt_err *err)
{
	const float *w = lt_tensor_data(committed, err), *w2;
	if (!w || !(w2 = lt_tensor_data(staged, err)))
		return err->code;
	int64_t n = lt_tensor_numel(committed);
	double dd = 0, ww = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = (double)w[i] - w2[i];
		dd += d * d;
		ww += (double)w[i] * w[i];
	}
	f->rel_frob = ww > 0 ? sqrt(dd / ww) : (dd > 0 ? INFINITY : 0.0);
	f->rel_out = NAN;
	if (lt_tensor_ndim(committed) < 2 || n > INT32_MAX)
		return 0;
	int rows = (int)lt_tensor_shape(committed)[0], cols = (int)(n / rows);
	float *diff = lt_malloc_array((size_t)n, sizeof *diff);
	float *x = lt_malloc_array((size_t)cols * FIDELITY_SAMPLES, sizeof *x);
	float *y = lt_malloc_array((size_t)rows * FIDELITY_SAMPLES * 2, sizeof *y);
	if (!diff || !x || !y) {
		lt_free(diff);
		lt_free(x);
		lt_free(y);
		return lt_err_set(err, LT_ENOMEM, "out of memory measuring fidelity");
	}
	for (int64_t i = 0; i < n; i++)
		diff[i] = w[i] - w2[i];
	lt_rng r = {FIDELITY_SEED};
	for (size_t i = 0; i < (size_t)cols * FIDELITY_SAMPLES; i++)
		x[i] = (float)gauss(&r);
	float *yd = y + (size_t)rows * FIDELITY_SAMPLES;
	lt_sgemm(0, 0, rows, FIDELITY_SAMPLES, cols, 1.0f, w, cols, x, FIDELITY_SAMPLES, 0.0f, y, FIDELITY_SAMPLES);
	lt_sgemm(0, 0, rows, FIDELITY_SAMPLES, cols, 1.0f, diff, cols, x, FIDELITY_SAMPLES, 0.0f, yd, FIDELITY_SAMPLES);
	double yy = 0, ee = 0;
	for (size_t i = 0; i < (size_t)rows * FIDELITY_SAMPLES; i++) {
		yy += (double)y[i] * y[i];
		ee += (double)yd[i] * yd[i];
	}
	f->rel_out = yy > 0 ? sqrt(ee / yy) : (ee > 0 ? INFINITY : 0.0);
	lt_free(diff);
	lt_free(x);
	lt_free(y);
	return 0;
}

/* dst->fidelity = a copy of src's. */
static int copy_fidelity(lt_preview *dst, const lt_preview *src, lt_err *err)
{
	dst->fidelity = lt_calloc(src->n_fidelity ? src->n_fidelity : 1, sizeof *dst->fidelity);
	if (!dst->fidelity)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	for (size_t i = 0; i < src->n_fidelity; i++) {
		dst->fidelity[i] = src->fidelity[i];
		if (!(dst->fidelity[i].name = lt_strdup(src->fidelity[i].name)))
			return lt_err_set(err, LT_ENOMEM, "out of memory");
		dst->n_fidelity = i + 1;
	}
	return 0;
}

/* Fidelity of every changed tensor, computed once per stage version. */
static int preview_fidelity(lt_bench *b, lt_preview *out, lt_err *err)
{
	if (b->fid.fidelity && b->fid_version == b->version)
		return copy_fidelity(out, &b->fid, err);
	lt_model *c = b->head->model, *s = b->stage;
	size_t n = lt_model_tensor_count(s), k = 0;
	out->fidelity = lt_calloc(n ? n : 1, sizeof *out->fidelity);
	if (!out->fidelity)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *name = lt_model_tensor_name(s, i);
		lt_tensor *ts = lt_model_tensor_at(s, i), *tc = lt_model_tensor(c, name);
		if (!tc || tc == ts || lt_tensor_numel(tc) != lt_tensor_numel(ts))
			continue;
		lt_fidelity *f = &out->fidelity[k];
		if (!(f->name = lt_strdup(name)))
			return lt_err_set(err, LT_ENOMEM, "out of memory");
		out->n_fidelity = ++k;
		int rc = fidelity_of(tc, ts, f, err);
		if (rc)
			return rc;
	}
	/* Keep a copy for the next preview of this version (a cache that
	 * cannot be filled only misses next time). */
	lt_preview_free(&b->fid);
	lt_err ignored;
	if (copy_fidelity(&b->fid, out, &ignored))
		lt_preview_free(&b->fid);
	b->fid_version = b->version;
	return 0;
}

int lt_bench_preview(lt_bench *b, const lt_preview_opts *o, lt_preview *out, lt_err *err)
{
	memset(out, 0, sizeof *out);
	const char *key = o->data ? (o->data_key ? o->data_key : "") : "(size only)";
	struct step *h = b->head;
	struct cache_ent *hit = cache_find(h->cache, key, 0);
	int rc;
	if (hit) {
		out->committed = hit->m;
	} else {
		if ((rc = measure(b, h->model, o, 0, NULL, &out->committed, err)))
			return rc;
		cache_put(h->cache, key, 0, &out->committed);
	}
	if (!b->dirty) {
		out->staged = out->committed;
		out->cached = hit != NULL;
	} else if ((hit = cache_find(b->stage_cache, key, b->version))) {
		out->staged = hit->m;
		out->cached = 1;
	} else {
		if ((rc = lt_bench_measure_from(b, h->model, b->stage, o, &out->staged, err)))
			return rc;
		cache_put(b->stage_cache, key, b->version, &out->staged);
	}
	if ((rc = preview_fidelity(b, out, err))) {
		lt_preview_free(out);
		return rc;
	}
	return 0;
}

void lt_preview_free(lt_preview *p)
{
	for (size_t i = 0; i < p->n_fidelity; i++)
		lt_free(p->fidelity[i].name);
	lt_free(p->fidelity);
	p->fidelity = NULL;
	p->n_fidelity = 0;
}

/* ---- marks ------------------------------------------------------------ */

lt_bench_mark *lt_bench_mark_new(lt_bench *b, lt_err *err)
{
	lt_bench_mark *mk = lt_calloc(1, sizeof *mk);
	if (!mk || !(mk->stage = lt_model_copy(b->stage, err)) ||
	    !(mk->stage_calls = lt_strdup(b->stage_calls))) {
		if (mk)
			lt_model_unref(mk->stage);
		lt_free(mk);
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	mk->head = step_ref(b->head);
	mk->head_model = lt_model_ref(b->head->model);
	mk->dirty = b->dirty;
	mk->version = b->version;
	return mk;
}

void lt_bench_restore(lt_bench *b, lt_bench_mark *mk)
{
	step_unref(b->head);
	b->head = mk->head;
	if (!b->head->model)
		b->head->model = lt_model_ref(mk->head_model);
	lt_model_unref(mk->head_model);
	lt_model_unref(b->stage);
	b->stage = mk->stage;
	lt_free(b->stage_calls);
	b->stage_calls = mk->stage_calls;
	b->stage_calls_len = strlen(mk->stage_calls);
	b->dirty = mk->dirty;
	b->version = mk->version;
	lt_free(mk);
}

void lt_bench_mark_free(lt_bench_mark *mk)
{
	if (!mk)
		return;
	step_unref(mk->head);
	lt_model_unref(mk->head_model);
	lt_model_unref(mk->stage);
	lt_free(mk->stage_calls);
	lt_free(mk);
}
