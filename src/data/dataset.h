/* Labelled image datasets read from IDX pairs, and the Fashion-MNIST splits.
 *
 * Pixels stay in their file type when it is u8 (a quarter of the memory of
 * f32); other IDX types are converted to f32 once at load. Batches are
 * produced normalised, as f32, by lt_dataset_get_batch. */
#ifndef LT_DATASET_H
#define LT_DATASET_H

#include <stdint.h>

#include "core/blob.h"
#include "core/err.h"
#include "core/tensor.h"

typedef struct lt_dataset {
	int64_t n;                /* number of items */
	int ndim;                 /* dims per item: 2 ([H,W]) or 3 ([C,H,W]) */
	int64_t item_shape[3];
	int64_t item_numel;       /* product of item_shape */
	lt_dtype dtype;           /* LT_U8 (pixels is set) or LT_F32 (x is set) */
	const uint8_t *pixels;    /* n * item_numel u8 values, row-major, or NULL */
	const float *x;           /* n * item_numel f32 values, or NULL */
	uint8_t *labels;          /* n labels, each < n_classes; owned */
	int n_classes;
	char *source;             /* "PATH[first:end]" description; owned */
	lt_blob *store;           /* owns the bytes pixels / x point into */
} lt_dataset;

/* Load items [first, first+n) of an images/labels IDX pair (either may be
 * gzip) into *out; n < 0 means "to the end". Images must be 3-D (N,H,W) or
 * 4-D (N,C,H,W); labels 1-D of an integer type with the same N. n_classes
 * > 0 requires every label of the file to be below it; 0 derives it as the
 * largest label + 1 (at most 256). Uncompressed u8 pixels are used in place
 * from the file mapping; gzip files are inflated, and a slice of less than
 * half the file is copied so the rest can be freed.
 * Errors: those of lt_idx_load (message prefixed with the file path),
 * LT_EFORMAT (shape, count mismatch, bad label), LT_ERANGE (bad range),
 * LT_ENOMEM. On failure *out is zeroed. Release with lt_dataset_release. */
int lt_dataset_load_idx(const char *images_path, const char *labels_path,
			int n_classes, int64_t first, int64_t n,
			lt_dataset *out, lt_err *err);

/* Write n items starting at item first as f32 into out (n * item_numel
 * values): x = (v / scale - mean[c]) / std[c], where v is the stored value.
 * n_norm is 0 (x = v / scale; mean and std are not read), 1 (mean[0] and
 * std[0] for every value) or C, the channel count of [C,H,W] items (the
 * leading item dimension; 1 for [H,W] items). For f32 datasets pass scale 1.
 * Returns 0, LT_ERANGE (items outside the dataset) or LT_EINVAL (bad n_norm,
 * zero or non-finite scale or std); out is untouched on error. */
int lt_dataset_get_batch(const lt_dataset *d, int64_t first, int64_t n,
			 float scale, const float *mean, const float *std,
			 int n_norm, float *out, lt_err *err);

/* Keep only the first n items (no-op when n < 0 or n >= d->n). */
void lt_dataset_limit(lt_dataset *d, int64_t n);

/* Free what a load gave; zeroes *d. A zeroed struct or NULL is a no-op. */
void lt_dataset_release(lt_dataset *d);

/* ---- Fashion-MNIST ---- */

typedef enum {
	LT_SPLIT_TRAIN,       /* training images except the last 5,000 (55,000) */
	LT_SPLIT_VAL,         /* the last 5,000 training images */
	LT_SPLIT_TEST,        /* the 10,000 t10k images */
	LT_SPLIT_TRAIN_FULL,  /* all 60,000 training images */
	LT_SPLIT_COUNT
} lt_split;

#define LT_FMNIST_CLASSES 10
#define LT_FMNIST_VAL_SIZE 5000
/* Where Debian's dataset-fashion-mnist package installs the files. */
#ifndef LT_FMNIST_SYSTEM_DIR
#define LT_FMNIST_SYSTEM_DIR "/usr/share/datasets/fashion-mnist"
#endif

/* "T-shirt/top", "Trouser", ... "Ankle boot"; "?" outside 0..9. */
const char *lt_fmnist_class_name(int label);

/* "train", "val", "test", "train-full"; "?" for an unknown value. */
const char *lt_split_name(lt_split split);
/* Parse one of the names above; 0, or LT_EINVAL if unknown. */
int lt_split_parse(const char *name, lt_split *out);

/* Load a Fashion-MNIST split into *out (release with lt_dataset_release).
 *
 * File names, each plain or with ".gz" (plain preferred when both exist):
 * train-{images-idx3,labels-idx1}-ubyte, t10k-... for the test split, and
 * optionally val-... holding only the validation slice.
 * A directory has a split when it has both files it needs: train-* for
 * train and train-full, t10k-* for test, and for val either val-* (preferred)
 * or train-* (whose last 5,000 items are taken).
 *
 * With dir set, only dir is used. With dir NULL the first directory having
 * the split wins, searched in this order: each entry of the environment
 * variable LATHE_DATA (':'-separated), each of fallback_dirs (NULL-terminated
 * list, may be NULL), then LT_FMNIST_SYSTEM_DIR. A directory that has the
 * split but whose files are bad gives that error (no silent fallthrough).
 * Errors: LT_EIO when no directory has the split (the message lists where
 * it looked and suggests `apt-get install dataset-fashion-mnist` or
 * --data DIR), else as lt_dataset_load_idx (labels must be below 10). */
int lt_fmnist_load(const char *dir, const char *const *fallback_dirs,
		   lt_split split, lt_dataset *out, lt_err *err);

#endif
