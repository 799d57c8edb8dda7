#include "core/model.h"

#include <string.h>

#include "core/mem.h"

/* A growable array of (name, value) pairs in insertion order, with an
 * open-addressing hash index so that files with tens of thousands of tensors
 * load in linear time. */
struct entry {
	char *name;
	lt_tensor *tensor; /* tensors only */
	char *value;       /* metadata only */
};

struct list {
	struct entry *items;
	size_t n, cap;
	size_t *slots;     /* item index + 1, 0 = empty; nslots is a power of 2 */
	size_t nslots;
};

struct lt_model {
	int refs;              /* atomic: a worker thread may hold references */
	struct list tensors;
	struct list meta;
	lt_graph *graph;
	int graph_from_meta; /* graph is exactly what LT_ARCH_META_KEY says */
};

static size_t hash_name(const char *s)
{
	size_t h = 1469598103934665603u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static struct entry *list_find(const struct list *l, const char *name)
{
	if (!l->nslots)
		return NULL;
	for (size_t i = hash_name(name) & (l->nslots - 1);; i = (i + 1) & (l->nslots - 1)) {
		size_t k = l->slots[i];
		if (!k)
			return NULL;
		if (strcmp(l->items[k - 1].name, name) == 0)
			return &l->items[k - 1];
	}
}

static void index_insert(struct list *l, size_t item)
{
	size_t i = hash_name(l->items[item].name) & (l->nslots - 1);
	while (l->slots[i])
		i = (i + 1) & (l->nslots - 1);
	l->slots[i] = item + 1;
}

/* Keep the index at most half full. */
static int index_grow(struct list *l, lt_err *err)
{
	if (2 * (l->n + 1) <= l->nslots)
		return 0;
	size_t nslots = l->nslots ? l->nslots * 2 : 32;
	size_t *slots = lt_calloc(nslots, sizeof *slots);
	if (!slots)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	lt_free(l->slots);
	l->slots = slots;
	l->nslots = nslots;
	for (size_t i = 0; i < l->n; i++)
		index_insert(l, i);
	return 0;
}

static struct entry *list_push(struct list *l, const char *name, lt_err *err)
{
	if (index_grow(l, err))
		return NULL;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct entry *items = lt_realloc(l->items, cap * sizeof *items);
		if (!items) {
			lt_err_set(err, LT_ENOMEM, "out of memory");
			return NULL;
		}
		l->items = items;
		l->cap = cap;
	}
	char *copy = lt_strdup(name);
	if (!copy) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	struct entry *e = &l->items[l->n];
	memset(e, 0, sizeof *e);
	e->name = copy;
	index_insert(l, l->n++);
	return e;
}

static void list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		lt_free(l->items[i].name);
		lt_tensor_unref(l->items[i].tensor);
		lt_free(l->items[i].value);
	}
	lt_free(l->items);
	lt_free(l->slots);
}

lt_model *lt_model_new(lt_err *err)
{
	lt_model *m = lt_calloc(1, sizeof *m);
	if (!m) {
		lt_err_set(err, LT_ENOMEM, "out of memory");
		return NULL;
	}
	m->refs = 1;
	return m;
}

lt_model *lt_model_ref(lt_model *m)
{
	if (m)
		__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

void lt_model_unref(lt_model *m)
{
	if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	list_free(&m->tensors);
	list_free(&m->meta);
	lt_graph_free(m->graph);
	lt_free(m);
}

int lt_model_add_tensor(lt_model *m, const char *name, lt_tensor *t, lt_err *err)
{
	if (list_find(&m->tensors, name))
		return lt_err_set(err, LT_EINVAL, "duplicate tensor name '%s'", name);
	struct entry *e = list_push(&m->tensors, name, err);
	if (!e)
		return LT_ENOMEM;
	e->tensor = lt_tensor_ref(t);
	return 0;
}

int lt_model_set_tensor(lt_model *m, const char *name, lt_tensor *t, lt_err *err)
{
	struct entry *e = list_find(&m->tensors, name);
	if (!e)
		return lt_model_add_tensor(m, name, t, err);
	lt_tensor_ref(t);
	lt_tensor_unref(e->tensor);
	e->tensor = t;
	return 0;
}

lt_tensor *lt_model_tensor(const lt_model *m, const char *name)
{
	struct entry *e = list_find(&m->tensors, name);
	return e ? e->tensor : NULL;
}

size_t lt_model_tensor_count(const lt_model *m) { return m->tensors.n; }
const char *lt_model_tensor_name(const lt_model *m, size_t i) { return m->tensors.items[i].name; }
lt_tensor *lt_model_tensor_at(const lt_model *m, size_t i) { return m->tensors.items[i].tensor; }

int lt_model_set_meta(lt_model *m, const char *key, const char *value, lt_err *err)
{
	char *copy = lt_strdup(value);
	if (!copy)
		return lt_err_set(err, LT_ENOMEM, "out of memory");
	struct entry *e = list_find(&m->meta, key);
	if (!e && !(e = list_push(&m->meta, key, err))) {
		lt_free(copy);
		return LT_ENOMEM;
	}
	lt_free(e->value);
	e->value = copy;
	return 0;
}

const char *lt_model_meta(const lt_model *m, const char *key)
{
	struct entry *e = list_find(&m->meta, key);
	return e ? e->value : NULL;
}

void lt_model_del_meta(lt_model *m, const char *key)
{
	struct list *l = &m->meta;
	struct entry *e = list_find(l, key);
	if (!e)
		return;
	size_t i = (size_t)(e - l->items);
	lt_free(e->name);
	lt_free(e->value);
	memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof *l->items);
	l->n--;
	/* Indices moved: rebuild the hash index (metadata lists are short). */
	memset(l->slots, 0, l->nslots * sizeof *l->slots);
	for (size_t k = 0; k < l->n; k++)
		index_insert(l, k);
}

size_t lt_model_meta_count(const lt_model *m) { return m->meta.n; }
const char *lt_model_meta_key(const lt_model *m, size_t i) { return m->meta.items[i].name; }
const char *lt_model_meta_value(const lt_model *m, size_t i) { return m->meta.items[i].value; }

lt_graph *lt_model_graph(const lt_model *m)
{
	return m->graph;
}

/* Expected parameter shapes per op, so that a graph that disagrees with the
 * file's tensors is refused when the model opens, not during evaluation. */
static int check_param(const lt_model *m, const lt_node *n, int slot,
		       int ndim, const int64_t *shape, lt_err *err)
{
	const char *pname = n->params[slot];
	if (!pname)
		return 0;
	lt_tensor *t = lt_model_tensor(m, pname);
	if (!t)
		return lt_err_set(err, LT_EFORMAT, "layer '%s' needs tensor '%s', which the file lacks",
				  n->name, pname);
	int64_t numel;
	if (lt_shape_numel(ndim, shape, INT64_MAX, &numel, err))
		return err ? err->code : LT_ERANGE;
	int same = lt_tensor_ndim(t) == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = lt_tensor_shape(t)[i] == shape[i];
	if (!same) {
		char want[96], got[96];
		return lt_err_set(err, LT_EFORMAT, "tensor '%s' has shape %s but layer '%s' needs %s",
				  pname, lt_shape_format(lt_tensor_ndim(t), lt_tensor_shape(t), got, sizeof got),
				  n->name, lt_shape_format(ndim, shape, want, sizeof want));
	}
	return 0;
}

static int check_graph(const lt_model *m, const lt_graph *g, lt_err *err)
{
	for (int i = 0; i < g->n_nodes; i++) {
		const lt_node *n = &g->nodes[i];
		int rc = 0;
		switch (n->op) {
		case LT_OP_LINEAR: {
			int64_t w[2] = {n->out_features, n->in_features};
			rc = check_param(m, n, LT_P_WEIGHT, 2, w, err);
			if (!rc)
				rc = check_param(m, n, LT_P_BIAS, 1, &n->out_features, err);
			break;
		}
		case LT_OP_CONV2D: {
			int64_t w[4] = {n->out_features, n->in_features, n->kernel[0], n->kernel[1]};
			rc = check_param(m, n, LT_P_WEIGHT, 4, w, err);
			if (!rc)
				rc = check_param(m, n, LT_P_BIAS, 1, &n->out_features, err);
			break;
		}
		case LT_OP_BATCHNORM1D:
		case LT_OP_BATCHNORM2D:
			for (int s = 0; s < 4 && !rc; s++)
				rc = check_param(m, n, s, 1, &n->in_features, err);
			break;
		default:
			break;
		}
		if (rc)
			return rc;
	}
	return 0;
}

int lt_model_set_graph(lt_model *m, lt_graph *g, lt_err *err)
{
	if (g) {
		int rc = check_graph(m, g, err);
		if (rc)
			return rc;
	}
	lt_graph_free(m->graph);
	m->graph = g;
	m->graph_from_meta = 0;
	return 0;
}

int lt_model_graph_in_meta(const lt_model *m)
{
	return m->graph_from_meta;
}

int lt_model_load_arch(lt_model *m, lt_err *err)
{
	const char *json = lt_model_meta(m, LT_ARCH_META_KEY);
	if (!json)
		return 0;
	lt_graph *g = lt_graph_from_json(json, err);
	if (!g)
		return lt_err_prefix(err, "architecture (%s)", LT_ARCH_META_KEY);
	int rc = lt_model_set_graph(m, g, err);
	if (rc) {
		lt_graph_free(g);
		return rc;
	}
	m->graph_from_meta = 1;
	return 0;
}

lt_model *lt_model_copy(const lt_model *m, lt_err *err)
{
	lt_model *c = lt_model_new(err);
	if (!c)
		return NULL;
	for (size_t i = 0; i < m->tensors.n; i++)
		if (lt_model_add_tensor(c, m->tensors.items[i].name, m->tensors.items[i].tensor, err))
			goto fail;
	for (size_t i = 0; i < m->meta.n; i++)
		if (lt_model_set_meta(c, m->meta.items[i].name, m->meta.items[i].value, err))
			goto fail;
	if (m->graph && !(c->graph = lt_graph_clone(m->graph, err)))
		goto fail;
	c->graph_from_meta = m->graph_from_meta;
	return c;
fail:
	lt_model_unref(c);
	return NULL;
}

int64_t lt_model_param_count(const lt_model *m)
{
	int64_t n = 0;
	for (size_t i = 0; i < m->tensors.n; i++)
		n += lt_tensor_numel(m->tensors.items[i].tensor);
	return n;
}

size_t lt_model_nbytes(const lt_model *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->tensors.n; i++)
		n += lt_tensor_nbytes(m->tensors.items[i].tensor);
	return n;
}
