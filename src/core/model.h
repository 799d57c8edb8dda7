/* A model: named tensors in file order, string metadata, and optionally an
 * executable graph (absent for weights-only files). */
#ifndef LT_MODEL_H
#define LT_MODEL_H

#include <stddef.h>

#include "core/err.h"
#include "core/graph.h"
#include "core/tensor.h"

typedef struct lt_model lt_model;

/* Empty model (no tensors, no metadata, no graph). NULL on ENOMEM. */
lt_model *lt_model_new(lt_err *err);
lt_model *lt_model_ref(lt_model *m);
void lt_model_unref(lt_model *m);

/* Add a tensor under a unique name; the model takes its own reference.
 * LT_EINVAL if the name exists. */
int lt_model_add_tensor(lt_model *m, const char *name, lt_tensor *t, lt_err *err);
/* Replace the tensor stored under name (takes a reference, drops the old). */
int lt_model_set_tensor(lt_model *m, const char *name, lt_tensor *t, lt_err *err);
/* Borrowed tensor by name, or NULL. */
lt_tensor *lt_model_tensor(const lt_model *m, const char *name);
size_t lt_model_tensor_count(const lt_model *m);
/* Borrowed name / tensor at index i (file order). */
const char *lt_model_tensor_name(const lt_model *m, size_t i);
lt_tensor *lt_model_tensor_at(const lt_model *m, size_t i);

/* Metadata (string -> string, insertion order). set replaces a key. */
int lt_model_set_meta(lt_model *m, const char *key, const char *value, lt_err *err);
const char *lt_model_meta(const lt_model *m, const char *key);
/* Remove a key (no-op if absent); the others keep their order. */
void lt_model_del_meta(lt_model *m, const char *key);
size_t lt_model_meta_count(const lt_model *m);
const char *lt_model_meta_key(const lt_model *m, size_t i);
const char *lt_model_meta_value(const lt_model *m, size_t i);

/* The graph, or NULL for a weights-only model. Borrowed. */
lt_graph *lt_model_graph(const lt_model *m);
/* Give the model a graph (ownership passes; the old one is freed). The
 * graph is checked against the tensors (names, shapes); on failure nothing
 * changes and the caller keeps g. */
int lt_model_set_graph(lt_model *m, lt_graph *g, lt_err *err);

/* 1 when the graph came from the model's LT_ARCH_META_KEY and has not been
 * replaced since, so saving can keep the user's JSON as it was written. */
int lt_model_graph_in_meta(const lt_model *m);

/* Metadata key that carries the architecture JSON. */
#define LT_ARCH_META_KEY "lathe.arch"

/* Build the graph from metadata key LT_ARCH_META_KEY, if present. A model
 * without the key stays weights-only and this returns 0. */
int lt_model_load_arch(lt_model *m, lt_err *err);

/* A new model sharing m's tensors (each gains a reference, so writing to
 * one must first replace it: see lt_tensor_shared), with copies of the
 * metadata and the graph. NULL with err on ENOMEM. */
lt_model *lt_model_copy(const lt_model *m, lt_err *err);

/* Totals over all tensors. */
int64_t lt_model_param_count(const lt_model *m);
size_t lt_model_nbytes(const lt_model *m);

#endif
