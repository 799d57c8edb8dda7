/* Opening files by content: models (safetensors) and datasets (IDX). */
#ifndef LT_OPEN_H
#define LT_OPEN_H

#include "core/err.h"
#include "core/model.h"

typedef enum { LT_FILE_UNKNOWN, LT_FILE_SAFETENSORS, LT_FILE_IDX } lt_file_kind;

/* Look at the first bytes of path (not its name) to tell the format.
 * Returns LT_FILE_UNKNOWN with err set when the file cannot be read or is
 * of no known format. */
lt_file_kind lt_file_sniff(const char *path, lt_err *err);

/* Open a model file: tensors mapped lazily, metadata, and the graph when the
 * file carries an architecture (weights-only otherwise). A packed file
 * (io/packed.h) is decoded to the values it was saved with. New reference,
 * or NULL with err (message does not repeat the path). */
lt_model *lt_model_open(const char *path, lt_err *err);

/* Save a model (tensors, metadata, and the graph as LT_ARCH_META_KEY)
 * atomically as safetensors. */
int lt_model_save(lt_model *m, const char *path, lt_err *err);

/* How to save: as values (plain safetensors), packed (io/packed.h), or
 * packed exactly when that makes the file smaller (quantized, shared or
 * pruned tensors): the size the workbench reports is then the file's. */
typedef enum { LT_SAVE_AUTO, LT_SAVE_PLAIN, LT_SAVE_PACKED } lt_save_form;
/* Save in that form; *packed (may be NULL) says which was written. */
int lt_model_save_as(lt_model *m, const char *path, lt_save_form form, int *packed, lt_err *err);

#endif
