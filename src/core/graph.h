/* The executable layer graph.
 *
 * A graph is a list of nodes in execution order. Values are numbered: value 0
 * is the graph input and node i produces value i + 1. Each node names the
 * values it reads, so a node may read any earlier value; a sequential model is
 * the special case where node i reads value i. This is what lets ONNX-style
 * DAGs (Add, MatMul, ...) join later without changing the engine.
 *
 * Shapes are per sample (no batch dimension). Parameters are referenced by
 * tensor name ("fc1.weight") and resolved against a model when run, so a
 * staged tensor swap needs no graph change. */
#ifndef LT_GRAPH_H
#define LT_GRAPH_H

#include <stdint.h>

#include "core/err.h"

typedef enum {
	LT_OP_LINEAR,
	LT_OP_CONV2D,
	LT_OP_MAXPOOL2D,
	LT_OP_AVGPOOL2D,
	LT_OP_RELU,
	LT_OP_TANH,
	LT_OP_SIGMOID,
	LT_OP_FLATTEN,
	LT_OP_SOFTMAX,
	LT_OP_BATCHNORM1D,
	LT_OP_BATCHNORM2D,
	LT_OP_DROPOUT,
	LT_OP_COUNT
} lt_op;

#define LT_NODE_MAX_INPUTS 4
#define LT_NODE_MAX_PARAMS 4
#define LT_SHAPE_MAX 4

/* Parameter slots; which ones an op uses is fixed per op. */
enum { LT_P_WEIGHT, LT_P_BIAS, LT_P_MEAN, LT_P_VAR };

typedef struct lt_node {
	lt_op op;
	char *name;                       /* layer name, e.g. "conv1" */
	int n_inputs;
	int inputs[LT_NODE_MAX_INPUTS];   /* value ids */
	char *params[LT_NODE_MAX_PARAMS]; /* tensor names or NULL */

	/* Attributes (meaning depends on op). */
	int64_t in_features, out_features;  /* linear; in/out channels for conv, bn features */
	int kernel[2], stride[2], padding[2];
	float eps, momentum;                /* batchnorm */
	float p;                            /* dropout */
	/* Activation sparsity: outputs with |y| < act_threshold become exact
	 * zeros, in inference and in training (their gradient is zero too).
	 * 0: none. Any op but the identities (flatten, dropout). */
	float act_threshold;

	/* Inferred by lt_graph_infer. */
	int out_ndim;
	int64_t out_shape[LT_SHAPE_MAX];
	int64_t out_numel;
	int64_t macs;                       /* multiply-accumulates per sample */
} lt_node;

typedef struct lt_graph {
	int in_ndim;
	int64_t in_shape[LT_SHAPE_MAX];
	int64_t in_numel;
	int n_nodes;
	lt_node *nodes;
	/* Input preprocessing: x = (pixel / scale - mean[c]) / std[c]. */
	float scale;
	int n_norm;                         /* 0, 1 (all channels) or channels */
	float mean[16], std[16];
} lt_graph;

const char *lt_op_name(lt_op op);
int lt_op_parse(const char *name, lt_op *out);
/* 1 when op passes its input through unchanged at inference (flatten,
 * dropout): such nodes share their input's buffer and take no threshold. */
int lt_op_is_identity(lt_op op);

/* 0 when t is a valid activation threshold for node i (finite, >= 0, and 0
 * on flatten/dropout); else LT_EINVAL with err naming the layer. */
int lt_graph_check_act_threshold(const lt_graph *g, int i, double t, lt_err *err);

/* Parse architecture JSON (see docs in man/lathe-arch.5). Returns a new graph
 * (caller frees with lt_graph_free) or NULL with err naming the bad layer. */
lt_graph *lt_graph_from_json(const char *json, lt_err *err);
/* Serialise to JSON; malloc'd string, caller frees. NULL on ENOMEM. */
char *lt_graph_to_json(const lt_graph *g, lt_err *err);
void lt_graph_free(lt_graph *g);
/* A deep copy (caller frees), or NULL with err on ENOMEM. */
lt_graph *lt_graph_clone(const lt_graph *g, lt_err *err);

/* Shape of value v (0 = input) after inference. */
int lt_graph_value_ndim(const lt_graph *g, int v);
const int64_t *lt_graph_value_shape(const lt_graph *g, int v);
int64_t lt_graph_value_numel(const lt_graph *g, int v);

/* 1 when no node from index v on reads a value below v, so the graph's
 * tail can run from value v alone (always true for v = 0). */
int lt_graph_is_cut(const lt_graph *g, int v);

/* Output shape per sample (the last node's value). */
int64_t lt_graph_out_numel(const lt_graph *g);
int64_t lt_graph_macs(const lt_graph *g);

#endif
