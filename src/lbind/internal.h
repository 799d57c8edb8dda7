/* Shared between the binding files of the lathe module (not installed). */
#ifndef LT_LBIND_INTERNAL_H
#define LT_LBIND_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>

#include "core/tensor.h"
#include "data/dataset.h"
#include "work/bench.h"

#define LT_MT_TENSOR "lathe.Tensor"
#define LT_MT_MODEL "lathe.Model"
#define LT_MT_LAYER "lathe.Layer"

/* A model opened from Lua: the bench plus where it came from. */
typedef struct lmodel {
	lt_bench *bench;     /* NULL once closed */
	char *path;
} lmodel;

/* A tensor value. Bound tensors name a tensor of a model's stage and are
 * looked up on every use, so they always show the staged values; free
 * tensors own their lt_tensor. Either may be a strided view. */
typedef struct ltensor {
	lt_bench *bench;     /* bound: the bench (a reference) */
	char *name;          /* bound: tensor name */
	lt_tensor *own;      /* free: the tensor (a reference) */
	char *expr;          /* bound: Lua expression after `model` for the journal */
	int is_view;
	int64_t offset;      /* view: first element */
	int ndim;
	int64_t shape[LT_MAX_DIMS];
	int64_t strides[LT_MAX_DIMS];
	lt_dtype write_dtype; /* stored dtype before the write in progress */
	size_t charged;       /* free: bytes counted against the sandbox */
} ltensor;

/* Per-state data: open benches (for atomic calls), data directory, loaded
 * splits. Created on first use. */
struct lstate;
struct lstate *lt_lstate(lua_State *L);
int lt_lstate_add_bench(lua_State *L, lt_bench *b);
void lt_lstate_remove_bench(lua_State *L, lt_bench *b);
/* Loaded (cached) Fashion-MNIST split limited to `limit` items (0 = all)
 * in *view (borrowed, valid while the state lives). Raises on failure. */
void lt_lstate_dataset(lua_State *L, const char *split, int64_t limit, lt_dataset *view);
const char *lt_lstate_data_dir(lua_State *L);
/* Free tensors live outside the Lua heap, so a sandbox counts them
 * separately: lt_lstate_check raises if `bytes` more would pass the
 * sandbox's memory limit (together with the Lua heap); add / release
 * keep the count. No-ops outside a sandbox. */
void lt_lstate_check(lua_State *L, const char *fname, size_t bytes);
void lt_lstate_add_bytes(lua_State *L, size_t bytes);
void lt_lstate_release_bytes(lua_State *L, size_t bytes);

/* Raise a Lua error for an lt_err ("fname: message"). */
int lt_lraise(lua_State *L, const char *fname, const lt_err *err);
/* Check that the table at idx (or nil) has only the given option names;
 * raises "fname: unknown option 'x' (expected one of: ...)". */
void lt_check_opts(lua_State *L, int idx, const char *fname, const char *const *names);
/* Optional typed options (the table at idx may be nil). */
double lt_opt_number(lua_State *L, int idx, const char *fname, const char *key, double def);
lua_Integer lt_opt_integer(lua_State *L, int idx, const char *fname, const char *key, lua_Integer def);
const char *lt_opt_string(lua_State *L, int idx, const char *fname, const char *key, const char *def);
int lt_opt_bool(lua_State *L, int idx, const char *fname, const char *key, int def);

/* A userdata type: metatable `name` with the metamethods in meta, the
 * methods as __methods, __index the C function index (with the methods
 * table as its upvalue: methods first, then fields) and the field names
 * in __fields (for completion). */
void lt_make_type(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods,
		  lua_CFunction index, const char *const *fields);
/* obj:kernel(opts) as lathe.kernel(obj, opts): call kernel with the two
 * arguments at 1 and 2; returns its one result. */
int lt_call_kernel(lua_State *L, lua_CFunction kernel);

/* Tensors. */
void lt_open_tensor(lua_State *L);                 /* metatable; leaves nothing */
ltensor *lt_push_free_tensor(lua_State *L, lt_tensor *t);  /* takes a reference */
ltensor *lt_push_bound_tensor(lua_State *L, lt_bench *b, const char *name);
ltensor *lt_check_tensor(lua_State *L, int idx);
/* The tensor a bound/free value currently refers to (borrowed); raises if
 * it is gone or the view no longer fits. */
lt_tensor *lt_tensor_target(lua_State *L, ltensor *t);
/* Module functions implemented in ltensor.c. */
int lt_l_tensor_new(lua_State *L);
int lt_l_zeros(lua_State *L);

/* Models and layers. */
void lt_open_model(lua_State *L);
lmodel *lt_check_model(lua_State *L, int idx);
lt_bench *lt_model_bench(lua_State *L, lmodel *m);
int lt_l_open(lua_State *L);
int lt_l_prune(lua_State *L);
int lt_l_cast(lua_State *L);
int lt_l_finetune(lua_State *L);
int lt_l_sensitivity(lua_State *L);
int lt_l_prune_structured(lua_State *L);
int lt_l_prune_nm(lua_State *L);
int lt_l_threshold_activations(lua_State *L);
int lt_l_choose_sparsities(lua_State *L);
int lt_l_quantize(lua_State *L);
int lt_l_share(lua_State *L);
int lt_l_int8_preview(lua_State *L);
int lt_l_packing(lua_State *L);

/* Shared by the kernel bindings (lmodel.c). The tensors a kernel acts on
 * (a bound tensor, a layer's weight and with opts.bias its bias, or a
 * model's weights, opts.layers to choose): pushes a list of tensor names
 * and sets *bench. */
void lt_collect_targets(lua_State *L, int target, int opts, const char *fname, lt_bench **bench);
/* Raises unless the value at idx is a model, layer or tensor. */
void lt_check_target(lua_State *L, int idx, const char *fname);
/* What the value at idx is, in words for error messages ("a layer"). */
const char *lt_kind_of(lua_State *L, int idx);
/* t[k] = v for the table on top of the stack. */
void lt_set_num(lua_State *L, const char *k, double v);
void lt_set_int(lua_State *L, const char *k, int64_t v);
/* Journal `lathe.FNAME(<target>, <opts>)`. */
void lt_journal_kernel(lua_State *L, lt_bench *b, const char *fname, int target, int opts);

/* A string builder held by a userdata on the stack (its __gc frees the
 * bytes, so a Lua error while building leaks nothing). Unlike luaL_Buffer,
 * other values may be pushed and popped above it while it grows. */
typedef struct lt_sbuf {
	char *p;
	size_t n, cap;
} lt_sbuf;
lt_sbuf *lt_sbuf_new(lua_State *L);             /* pushes the holder */
void lt_sbuf_add(lua_State *L, lt_sbuf *b, const char *s, size_t len);
void lt_sbuf_adds(lua_State *L, lt_sbuf *b, const char *s);
void lt_sbuf_addc(lua_State *L, lt_sbuf *b, char c);
/* Replace the holder (at stack index idx) by the string built. */
void lt_sbuf_result(lua_State *L, lt_sbuf *b, int idx);

/* Journal: append the Lua text of value idx (numbers exactly, strings
 * quoted, tables as constructors with sorted keys, model objects as their
 * expressions) to b. Raises for values that cannot be written. */
void lt_journal_value(lua_State *L, lt_sbuf *b, int idx, int depth);
/* Note `call` on the stage of bench; raises on failure. */
void lt_journal_note(lua_State *L, lt_bench *bench, const char *call);

#endif
