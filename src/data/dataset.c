#include "data/dataset.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "io/idx.h"

/* Which items of the file to keep, resolved once the count is known. */
struct range {
	int64_t first, n;   /* n < 0: to the end */
	int64_t keep_last;  /* > 0: only the last keep_last items */
	int64_t drop_last;  /* > 0: all but the last drop_last items */
};

static int64_t label_at(const lt_idx *x, int64_t i)
{
	const uint8_t *p = x->data + (size_t)i * x->elem_size;
	switch (x->type_code) {
	case LT_IDX_U8:
		return p[0];
	case LT_IDX_I8:
		return (int8_t)p[0];
	case LT_IDX_I16:
		return (int16_t)(uint16_t)(p[0] << 8 | p[1]);
	default: /* LT_IDX_I32 */
		return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
				 (uint32_t)p[2] << 8 | p[3]);
	}
}

static int load_pair(const char *images_path, const char *labels_path, int n_classes,
		     struct range r, lt_dataset *out, lt_err *err)
{
	lt_idx img, lab;
	lt_dataset d;
	memset(&img, 0, sizeof img);
	memset(&lab, 0, sizeof lab);
	memset(&d, 0, sizeof d);
	memset(out, 0, sizeof *out);
	int rc;

	if (n_classes < 0 || n_classes > 256) {
		rc = lt_err_set(err, LT_EINVAL, "n_classes must be 0 to 256, not %d", n_classes);
		goto fail;
	}
	if ((rc = lt_idx_load(images_path, 0, &img, err))) {
		lt_err_prefix(err, "%s", images_path);
		goto fail;
	}
	if (img.ndim != 3 && img.ndim != 4) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: images must be 3-D (N,H,W) or 4-D (N,C,H,W), not %d-D",
				images_path, img.ndim);
		goto fail;
	}
	if ((rc = lt_idx_load(labels_path, 0, &lab, err))) {
		lt_err_prefix(err, "%s", labels_path);
		goto fail;
	}
	if (lab.ndim != 1) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: labels must be 1-D, not %d-D", labels_path, lab.ndim);
		goto fail;
	}
	if (lab.type_code == LT_IDX_F32 || lab.type_code == LT_IDX_F64) {
		rc = lt_err_set(err, LT_EFORMAT, "%s: labels must be integers, not %s", labels_path,
				lt_idx_type_name(lab.type_code));
		goto fail;
	}
	int64_t count = img.count;
	if (lab.count != count) {
		rc = lt_err_set(err, LT_EFORMAT, "%s has %" PRId64 " images but %s has %" PRId64 " labels",
				images_path, count, labels_path, lab.count);
		goto fail;
	}

	/* Every label of the file must be valid, not only those kept. */
	int64_t max_label = -1;
	for (int64_t i = 0; i < count; i++) {
		int64_t v = label_at(&lab, i);
		if (v < 0 || (n_classes > 0 && v >= n_classes) || v > 255) {
			if (n_classes > 0)
				rc = lt_err_set(err, LT_EFORMAT, "%s: label %" PRId64 " at index %" PRId64
						" is not in 0..%d", labels_path, v, i, n_classes - 1);
			else
				rc = lt_err_set(err, LT_EFORMAT, "%s: label %" PRId64 " at index %" PRId64
						" is not in 0..255", labels_path, v, i);
			goto fail;
		}
		if (v > max_label)
			max_label = v;
	}

	int64_t first = r.first, n = r.n;
	if (r.keep_last > 0) {
		if (count < r.keep_last) {
			rc = lt_err_set(err, LT_ERANGE, "%s has %" PRId64 " items, fewer than the last %" PRId64
					" asked for", images_path, count, r.keep_last);
			goto fail;
		}
		first = count - r.keep_last;
		n = r.keep_last;
	} else if (r.drop_last > 0) {
		if (count <= r.drop_last) {
			rc = lt_err_set(err, LT_ERANGE, "%s has %" PRId64 " items, not more than the %" PRId64
					" held out", images_path, count, r.drop_last);
			goto fail;
		}
		first = 0;
		n = count - r.drop_last;
	}
	if (first < 0 || first > count) {
		rc = lt_err_set(err, LT_ERANGE, "first item %" PRId64 " is outside the %" PRId64
				" items of %s", first, count, images_path);
		goto fail;
	}
	if (n < 0)
		n = count - first;
	if (n > count - first) {
		rc = lt_err_set(err, LT_ERANGE, "items %" PRId64 "..%" PRId64 " are outside the %" PRId64
				" items of %s", first, first + n, count, images_path);
		goto fail;
	}

	d.n = n;
	d.ndim = img.ndim - 1;
	for (int i = 0; i < d.ndim; i++)
		d.item_shape[i] = img.dims[i + 1];
	d.item_numel = img.item_numel;
	d.n_classes = n_classes > 0 ? n_classes : (int)(max_label + 1);
	size_t numel = (size_t)(n * img.item_numel); /* <= the file's numel */
	size_t off = (size_t)(first * img.item_numel);

	if (!(d.labels = lt_malloc((size_t)n))) {
		rc = lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	for (int64_t i = 0; i < n; i++)
		d.labels[i] = (uint8_t)label_at(&lab, first + i);

	if (img.type_code == LT_IDX_U8) {
		d.dtype = LT_U8;
		if (!img.compressed || 2 * n >= count) {
			d.store = lt_blob_ref(img.blob);
			d.pixels = img.data + off;
		} else {
			/* A small slice of an inflated buffer: copy it and let the
			 * rest go. */
			uint8_t *buf = lt_malloc(numel);
			if (!buf) {
				rc = lt_err_set(err, LT_ENOMEM, "out of memory for %zu pixels", numel);
				goto fail;
			}
			memcpy(buf, img.data + off, numel);
			if (!(d.store = lt_blob_wrap(buf, numel, err))) {
				rc = LT_ENOMEM;
				goto fail;
			}
			d.pixels = lt_blob_data(d.store);
		}
	} else {
		d.dtype = LT_F32;
		float *buf = numel <= SIZE_MAX / 4 ? lt_alloc_aligned(numel * 4) : NULL;
		if (!buf) {
			rc = lt_err_set(err, LT_ENOMEM, "out of memory for %zu values", numel);
			goto fail;
		}
		lt_idx_get_f32(&img, (int64_t)off, (int64_t)numel, buf);
		if (!(d.store = lt_blob_wrap(buf, numel * 4, err))) {
			rc = LT_ENOMEM;
			goto fail;
		}
		d.x = (const float *)(const void *)lt_blob_data(d.store);
	}

	int len = snprintf(NULL, 0, "%s[%" PRId64 ":%" PRId64 "]", images_path, first, first + n);
	if (len < 0 || !(d.source = lt_malloc((size_t)len + 1))) {
		rc = lt_err_set(err, LT_ENOMEM, "out of memory");
		goto fail;
	}
	snprintf(d.source, (size_t)len + 1, "%s[%" PRId64 ":%" PRId64 "]", images_path, first, first + n);

	lt_idx_release(&img);
	lt_idx_release(&lab);
	*out = d;
	return 0;
fail:
	lt_dataset_release(&d);
	lt_idx_release(&img);
	lt_idx_release(&lab);
	return rc;
}

int lt_dataset_load_idx(const char *images_path, const char *labels_path,
			int n_classes, int64_t first, int64_t n,
			lt_dataset *out, lt_err *err)
{
	struct range r = {first, n, 0, 0};
	return load_pair(images_path, labels_path, n_classes, r, out, err);
}

int lt_dataset_get_batch(const lt_dataset *d, int64_t first, int64_t n,
			 float scale, const float *mean, const float *std,
			 int n_norm, float *out, lt_err *err)
{
	if (first < 0 || n < 0 || first > d->n || n > d->n - first)
		return lt_err_set(err, LT_ERANGE, "items %" PRId64 "..%" PRId64
				  " are outside the %" PRId64 " items of the dataset",
				  first, first + n, d->n);
	int64_t channels = d->ndim == 3 ? d->item_shape[0] : 1;
	if (n_norm != 0 && n_norm != 1 && n_norm != channels)
		return lt_err_set(err, LT_EINVAL, "%d normalisation values for %" PRId64
				  " channels (give 0, 1 or %" PRId64 ")", n_norm, channels, channels);
	if (!isfinite(scale) || scale == 0.0f)
		return lt_err_set(err, LT_EINVAL, "scale must be finite and non-zero");
	for (int c = 0; c < n_norm; c++) {
		if (!isfinite(mean[c]) || !isfinite(std[c]) || std[c] == 0.0f)
			return lt_err_set(err, LT_EINVAL, "channel %d: mean must be finite and std"
					  " finite and non-zero", c);
	}
	if (d->item_numel == 0 || n == 0)
		return 0;

	/* One group per normalised channel; a single group otherwise. */
	int64_t groups = n_norm > 1 ? n_norm : 1;
	size_t plane = (size_t)(d->item_numel / groups);
	size_t item = (size_t)d->item_numel;
	for (int64_t g = 0; g < groups; g++) {
		float m = n_norm ? mean[n_norm > 1 ? g : 0] : 0.0f;
		float s = n_norm ? std[n_norm > 1 ? g : 0] : 1.0f;
		float *dst0 = out + (size_t)g * plane;
		if (d->dtype == LT_U8) {
			float lut[256];
			for (int v = 0; v < 256; v++)
				lut[v] = n_norm ? ((float)v / scale - m) / s : (float)v / scale;
			const uint8_t *src0 = d->pixels + (size_t)first * item + (size_t)g * plane;
			for (int64_t i = 0; i < n; i++) {
				const uint8_t *src = src0 + (size_t)i * item;
				float *dst = dst0 + (size_t)i * item;
				for (size_t j = 0; j < plane; j++)
					dst[j] = lut[src[j]];
			}
		} else {
			const float *src0 = d->x + (size_t)first * item + (size_t)g * plane;
			for (int64_t i = 0; i < n; i++) {
				const float *src = src0 + (size_t)i * item;
				float *dst = dst0 + (size_t)i * item;
				if (n_norm)
					for (size_t j = 0; j < plane; j++)
						dst[j] = (src[j] / scale - m) / s;
				else
					for (size_t j = 0; j < plane; j++)
						dst[j] = src[j] / scale;
			}
		}
	}
	return 0;
}

void lt_dataset_limit(lt_dataset *d, int64_t n)
{
	if (n >= 0 && n < d->n)
		d->n = n;
}

void lt_dataset_release(lt_dataset *d)
{
	if (!d)
		return;
	lt_blob_unref(d->store);
	lt_free(d->labels);
	lt_free(d->source);
	memset(d, 0, sizeof *d);
}

/* ---- Fashion-MNIST ---- */

static const char *const fmnist_classes[LT_FMNIST_CLASSES] = {
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

const char *lt_fmnist_class_name(int label)
{
	return label >= 0 && label < LT_FMNIST_CLASSES ? fmnist_classes[label] : "?";
}

static const char *const split_names[LT_SPLIT_COUNT] = {
	[LT_SPLIT_TRAIN] = "train", [LT_SPLIT_VAL] = "val",
	[LT_SPLIT_TEST] = "test", [LT_SPLIT_TRAIN_FULL] = "train-full",
};

const char *lt_split_name(lt_split split)
{
	return (unsigned)split < LT_SPLIT_COUNT ? split_names[split] : "?";
}

int lt_split_parse(const char *name, lt_split *out)
{
	for (int s = 0; s < LT_SPLIT_COUNT; s++) {
		if (strcmp(name, split_names[s]) == 0) {
			*out = (lt_split)s;
			return 0;
		}
	}
	return LT_EINVAL;
}

#define PATH_BUF 4096

/* DIR/PREFIX-PART-ubyte or the same with .gz (plain preferred) into buf
 * when it is a regular file; 1 if found. */
static int find_file(const char *dir, const char *prefix, const char *part, char *buf)
{
	static const char *const exts[] = {"", ".gz"};
	for (int e = 0; e < 2; e++) {
		struct stat st;
		int k = snprintf(buf, PATH_BUF, "%s/%s-%s-ubyte%s", dir, prefix, part, exts[e]);
		if (k < 0 || k >= PATH_BUF)
			return 0;
		if (stat(buf, &st) == 0 && S_ISREG(st.st_mode))
			return 1;
	}
	return 0;
}

static int find_pair(const char *dir, const char *prefix, char *img, char *lab)
{
	return find_file(dir, prefix, "images-idx3", img) &&
	       find_file(dir, prefix, "labels-idx1", lab);
}

/* If dir has the split, fill the two paths and the range and return 1. */
static int dir_has_split(const char *dir, lt_split split, char *img, char *lab,
			 struct range *r)
{
	struct range all = {0, -1, 0, 0};
	*r = all;
	switch (split) {
	case LT_SPLIT_TEST:
		return find_pair(dir, "t10k", img, lab);
	case LT_SPLIT_TRAIN_FULL:
		return find_pair(dir, "train", img, lab);
	case LT_SPLIT_TRAIN:
		r->drop_last = LT_FMNIST_VAL_SIZE;
		return find_pair(dir, "train", img, lab);
	case LT_SPLIT_VAL:
		if (find_pair(dir, "val", img, lab))
			return 1;
		r->keep_last = LT_FMNIST_VAL_SIZE;
		return find_pair(dir, "train", img, lab);
	default:
		return 0;
	}
}

/* Append ", WHAT" (or "WHAT" first) to the list of places searched. */
static void note_dir(char *list, size_t size, const char *what, size_t what_len)
{
	size_t len = strlen(list);
	if (len + 1 >= size)
		return;
	snprintf(list + len, size - len, "%s%.*s", len ? ", " : "", (int)what_len, what);
}

static int try_dir(const char *dir, lt_split split, char *img, char *lab,
		   lt_dataset *out, lt_err *err, int *found)
{
	struct range r;
	*found = dir_has_split(dir, split, img, lab, &r);
	if (!*found)
		return 0;
	return load_pair(img, lab, LT_FMNIST_CLASSES, r, out, err);
}

int lt_fmnist_load(const char *dir, const char *const *fallback_dirs,
		   lt_split split, lt_dataset *out, lt_err *err)
{
	memset(out, 0, sizeof *out);
	if ((unsigned)split >= LT_SPLIT_COUNT)
		return lt_err_set(err, LT_EINVAL, "unknown split %d", (int)split);
	static const char *const needs[LT_SPLIT_COUNT] = {
		[LT_SPLIT_TRAIN] = "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]",
		[LT_SPLIT_TRAIN_FULL] = "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]",
		[LT_SPLIT_TEST] = "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]",
		[LT_SPLIT_VAL] = "val-* or train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]",
	};
	char img[PATH_BUF], lab[PATH_BUF], one[PATH_BUF], looked[256] = "";
	int found, rc;

	if (dir) {
		if ((rc = try_dir(dir, split, img, lab, out, err, &found)) || found)
			return rc;
		return lt_err_set(err, LT_EIO, "no Fashion-MNIST %s split in %s (it needs %s); "
				  "install it with `apt-get install dataset-fashion-mnist` or pass --data DIR",
				  lt_split_name(split), dir, needs[split]);
	}

	const char *env = getenv("LATHE_DATA");
	while (env && *env) {
		const char *end = strchr(env, ':');
		size_t len = end ? (size_t)(end - env) : strlen(env);
		if (len > 0 && len < PATH_BUF) {
			memcpy(one, env, len);
			one[len] = '\0';
			note_dir(looked, sizeof looked, one, len);
			if ((rc = try_dir(one, split, img, lab, out, err, &found)) || found)
				return rc;
		}
		env = end ? end + 1 : NULL;
	}
	for (size_t i = 0; fallback_dirs && fallback_dirs[i]; i++) {
		note_dir(looked, sizeof looked, fallback_dirs[i], strlen(fallback_dirs[i]));
		if ((rc = try_dir(fallback_dirs[i], split, img, lab, out, err, &found)) || found)
			return rc;
	}
	note_dir(looked, sizeof looked, LT_FMNIST_SYSTEM_DIR, strlen(LT_FMNIST_SYSTEM_DIR));
	if ((rc = try_dir(LT_FMNIST_SYSTEM_DIR, split, img, lab, out, err, &found)) || found)
		return rc;
	return lt_err_set(err, LT_EIO, "no Fashion-MNIST %s split found (looked in %s for %s); "
			  "install it with `apt-get install dataset-fashion-mnist` or pass --data DIR",
			  lt_split_name(split), looked, needs[split]);
}
