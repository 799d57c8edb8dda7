/* lathe's packed model files: still safetensors, so other tools open them
 * as a set of tensors.
 *
 * A tensor worth packing (one with a coding scheme, or with zeros, whose
 * packed form is smaller) is stored as one U8 tensor NAME.packed holding
 * its three streams one after another (io/pack.h: where the present
 * elements are, their codes, what the codes mean) and a metadata entry
 * "lathe.pack:NAME" holding its description; every other tensor is stored
 * as it is. Loading decodes the packed tensors back to exactly the values
 * saved (bit for bit), with their schemes, in the original order.
 *
 * The size the workbench reports for a model is the size of this file,
 * computed without writing it (lt_packed_measure). */
#ifndef LT_PACKED_H
#define LT_PACKED_H

#include <stdint.h>

#include "core/model.h"
#include "io/pack.h"

#define LT_PACKED_META_PREFIX "lathe.pack:"
#define LT_PACKED_SUFFIX ".packed"

/* How one tensor is stored. */
typedef struct lt_packed_tensor {
	const char *name;     /* borrowed from the model */
	int packed;           /* 1: as streams; 0: as it is */
	uint64_t plain_bytes; /* its bytes stored as it is */
	uint64_t bytes;       /* its streams and description when packed,
			       * else plain_bytes */
	lt_pack_desc desc;    /* packed only */
} lt_packed_tensor;

typedef struct lt_packed_report {
	size_t n;             /* the model's tensors, in order */
	lt_packed_tensor *t;
	uint64_t file_bytes;  /* the whole packed file, header included */
	uint64_t f32_bytes;   /* 4 bytes per element of every tensor */
} lt_packed_report;

/* What the packed file of m would hold, and its exact size, without
 * writing it. r is filled (free with lt_packed_report_free). LT_ENOMEM,
 * or LT_EINVAL when a tensor's scheme does not describe its values. */
int lt_packed_measure(lt_model *m, lt_packed_report *r, lt_err *err);

/* Write m packed to path, atomically as lt_safetensors_save does. r (may
 * be NULL) receives what was written, as lt_packed_measure reports it. */
int lt_packed_save(lt_model *m, const char *path, lt_packed_report *r, lt_err *err);

void lt_packed_report_free(lt_packed_report *r);

/* 1 when a model read from a file holds packed tensors. */
int lt_packed_has(const lt_model *m);

/* A new model with every packed tensor decoded (f32 values, its scheme
 * attached) in place of its streams, and the other tensors and metadata
 * (less the pack entries) as they were. NULL with err: LT_EFORMAT for a
 * description or streams that do not hold together (the message names the
 * tensor), LT_ERANGE, LT_ENOMEM. */
lt_model *lt_packed_unpack(lt_model *m, lt_err *err);

#endif
