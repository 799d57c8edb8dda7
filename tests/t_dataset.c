/* Datasets: IDX pairs, normalised batches, Fashion-MNIST splits and search.
 * Synthetic files go into a fresh temp dir; the real Fashion-MNIST checks
 * run when Debian's dataset-fashion-mnist is installed and are skipped
 * otherwise. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/err.h"
#include "core/mem.h"
#include "data/dataset.h"
#include "io/idx.h"
#include "tap.h"
#include "testutil.h"

static char tmpdir[256];

/* ---- building IDX files ---- */

static const char *path_of(const char *name)
{
	static char path[4][512];
	static int which;
	which = (which + 1) % 4;
	snprintf(path[which], sizeof path[which], "%s/%s", tmpdir, name);
	return path[which];
}

/* Write b to name; gzip it when name ends in .gz. */
static void write_idx(const char *name, const struct buf *b)
{
	const char *path = path_of(name);
	size_t len = strlen(name);
	if (len > 3 && strcmp(name + len - 3, ".gz") == 0) {
		gzFile g = gzopen(path, "wb");
		if (!g || (b->n && gzwrite(g, b->p, (unsigned)b->n) != (int)b->n) || gzclose(g) != Z_OK) {
			fprintf(stderr, "cannot write %s\n", path);
			exit(99);
		}
		return;
	}
	FILE *f = fopen(path, "wb");
	if (!f || (b->n && fwrite(b->p, 1, b->n, f) != b->n) || fclose(f) != 0) {
		perror(path);
		exit(99);
	}
}

static void make_dir(const char *name)
{
	if (mkdir(path_of(name), 0755) != 0) {
		perror(name);
		exit(99);
	}
}

/* n u8 images of h x w with pixel j of item i = (i * 7 + j) & 255. */
static uint8_t pix(int64_t i, int64_t j)
{
	return (uint8_t)((i * 7 + j) & 255);
}

static void write_images(const char *name, uint32_t n, uint32_t h, uint32_t w)
{
	struct buf b = {0};
	uint32_t dims[3] = {n, h, w};
	put_header(&b, LT_IDX_U8, 3, dims);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < h * w; j++) {
			uint8_t v = pix(i, j);
			put(&b, &v, 1);
		}
	write_idx(name, &b);
	free(b.p);
}

/* n u8 labels (i + shift) % 10. */
static void write_labels(const char *name, uint32_t n, int shift)
{
	struct buf b = {0};
	put_header(&b, LT_IDX_U8, 1, &n);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t v = (uint8_t)((i + (uint32_t)shift) % 10);
		put(&b, &v, 1);
	}
	write_idx(name, &b);
	free(b.p);
}

/* Pixels of d items [0, n) equal pix(first + i, j); labels (first+i+shift)%10. */
static int check_items(const lt_dataset *d, int64_t first, int shift)
{
	if (d->dtype != LT_U8 || !d->pixels)
		return 0;
	for (int64_t i = 0; i < d->n; i++) {
		if (d->labels[i] != (first + i + shift) % 10)
			return 0;
		for (int64_t j = 0; j < d->item_numel; j++)
			if (d->pixels[i * d->item_numel + j] != pix(first + i, j))
				return 0;
	}
	return 1;
}

/* ---- lt_dataset_load_idx ---- */

static void test_load_idx(void)
{
	lt_dataset d;
	lt_err err;
	write_images("img7", 7, 2, 3);
	write_labels("lab7", 7, 0);
	write_images("img7.gz", 7, 2, 3);
	write_labels("lab7.gz", 7, 0);

	int rc = lt_dataset_load_idx(path_of("img7"), path_of("lab7"), 0, 0, -1, &d, &err);
	tap_ok(rc == 0 && d.n == 7 && d.ndim == 2 && d.item_shape[0] == 2 && d.item_shape[1] == 3 &&
	       d.item_numel == 6 && d.n_classes == 7 && d.x == NULL && check_items(&d, 0, 0),
	       "7 u8 2x3 images, classes derived as max+1 = %d", rc ? -1 : d.n_classes);
	char want[600];
	snprintf(want, sizeof want, "%s[0:7]", path_of("img7"));
	tap_ok(rc == 0 && strcmp(d.source, want) == 0, "source \"%s\"", rc ? "" : d.source);
	lt_dataset_limit(&d, 3);
	tap_ok(d.n == 3 && check_items(&d, 0, 0), "limit to 3 keeps the first 3");
	lt_dataset_limit(&d, 10);
	lt_dataset_limit(&d, -1);
	tap_ok(d.n == 3, "limit beyond n or negative is a no-op");
	lt_dataset_release(&d);
	lt_dataset_release(&d);
	lt_dataset_release(NULL);

	for (int gz = 0; gz < 2; gz++) {
		const char *img = path_of(gz ? "img7.gz" : "img7");
		const char *lab = path_of(gz ? "lab7.gz" : "lab7");
		rc = lt_dataset_load_idx(img, lab, 10, 2, 3, &d, &err);
		tap_ok(rc == 0 && d.n == 3 && d.n_classes == 10 && check_items(&d, 2, 0),
		       "slice [2:5]%s", gz ? " (gzip: copied)" : " (mapped)");
		lt_dataset_release(&d);
		rc = lt_dataset_load_idx(img, lab, 10, 5, -1, &d, &err);
		tap_ok(rc == 0 && d.n == 2 && check_items(&d, 5, 0), "slice [5:]%s", gz ? " (gzip)" : "");
		lt_dataset_release(&d);
		rc = lt_dataset_load_idx(img, lab, 10, 7, -1, &d, &err);
		tap_ok(rc == 0 && d.n == 0, "empty slice at the end%s", gz ? " (gzip)" : "");
		lt_dataset_release(&d);
	}
	rc = lt_dataset_load_idx(path_of("img7"), path_of("lab7"), 10, 5, 3, &d, &err);
	tap_ok(rc == LT_ERANGE && d.labels == NULL, "slice [5:8] of 7: %s", err.msg);
	rc = lt_dataset_load_idx(path_of("img7"), path_of("lab7"), 10, 8, -1, &d, &err);
	tap_ok(rc == LT_ERANGE, "slice [8:] of 7: %s", err.msg);
	rc = lt_dataset_load_idx(path_of("img7"), path_of("lab7"), 5, 0, -1, &d, &err);
	tap_ok(rc == LT_EFORMAT && strstr(err.msg, "label 5 at index 5 is not in 0..4"),
	       "label over n_classes: %s", err.msg);

	/* Shape and type errors. */
	write_labels("lab6", 6, 0);
	rc = lt_dataset_load_idx(path_of("img7"), path_of("lab6"), 10, 0, -1, &d, &err);
	tap_ok(rc == LT_EFORMAT && strstr(err.msg, "has 7 images but") && strstr(err.msg, "6 labels"),
	       "count mismatch: %s", err.msg);
	rc = lt_dataset_load_idx(path_of("lab7"), path_of("lab7"), 10, 0, -1, &d, &err);
	tap_ok(rc == LT_EFORMAT && strstr(err.msg, "images must be 3-D"), "1-D images: %s", err.msg);
	rc = lt_dataset_load_idx(path_of("img7"), path_of("img7"), 10, 0, -1, &d, &err);
	tap_ok(rc == LT_EFORMAT && strstr(err.msg, "labels must be 1-D"), "3-D labels: %s", err.msg);
	struct buf b = {0};
	uint32_t n7 = 7;
	put_header(&b, LT_IDX_F32, 1, &n7);
	for (int i = 0; i < 7; i++)
		put_be(&b, 0, 4);
	write_idx("labf", &b);
	rc = lt_dataset_load_idx(path_of("img7"), path_of("labf"), 10, 0, -1, &d, &err);
	tap_ok(rc == LT_EFORMAT && strstr(err.msg, "labels must be integers, not f32"), "f32 labels: %s",
	       err.msg);
	b.n = 0;
	put_header(&b, LT_IDX_I8, 1, &n7);
	for (int i = 0; i < 7; i++)
		put_be(&b, i == 4 ? 0xff : 1, 1);
	write_idx("labneg", &b);
	rc = lt_dataset_load_idx(path_of("img7"), path_of("labneg"), 0, 0, -1, &d, &err);
	tap_ok(rc == LT_EFORMAT && strstr(err.msg, "label -1 at index 4"), "negative label: %s", err.msg);
	b.n = 0;
	put_header(&b, LT_IDX_I32, 1, &n7);
	for (int i = 0; i < 7; i++)
		put_be(&b, (uint64_t)(6 - i), 4);
	write_idx("lab32", &b);
	rc = lt_dataset_load_idx(path_of("img7"), path_of("lab32"), 0, 0, -1, &d, &err);
	tap_ok(rc == 0 && d.n_classes == 7 && d.labels[0] == 6 && d.labels[6] == 0, "i32 labels");
	lt_dataset_release(&d);
	free(b.p);

	rc = lt_dataset_load_idx(path_of("nope"), path_of("lab7"), 10, 0, -1, &d, &err);
	tap_ok(rc == LT_EIO && strncmp(err.msg, path_of("nope"), strlen(path_of("nope"))) == 0,
	       "missing images: message starts with the path: %s", err.msg);
	rc = lt_dataset_load_idx(path_of("img7"), path_of("short"), 10, 0, -1, &d, &err);
	tap_ok(rc == LT_EIO && strstr(err.msg, "/short: "), "missing labels: %s", err.msg);
}

/* ---- batches ---- */

static void test_batches(void)
{
	lt_dataset d;
	lt_err err;
	/* All 256 byte values, one per pixel: 4 items of 8x8. */
	struct buf b = {0};
	uint32_t dims[3] = {4, 8, 8};
	put_header(&b, LT_IDX_U8, 3, dims);
	for (int v = 0; v < 256; v++)
		put_be(&b, (uint64_t)(255 - v), 1);
	write_idx("all256", &b);
	b.n = 0;
	uint32_t n4 = 4;
	put_header(&b, LT_IDX_U8, 1, &n4);
	put(&b, "\0\1\2\3", 4);
	write_idx("lab4", &b);
	if (lt_dataset_load_idx(path_of("all256"), path_of("lab4"), 10, 0, -1, &d, &err)) {
		tap_ok(0, "all256 loads: %s", err.msg);
		return;
	}
	float out[256], mean = 0.2860f, std = 0.3530f;
	int ok0 = lt_dataset_get_batch(&d, 0, 4, 255.0f, NULL, NULL, 0, out, &err) == 0;
	for (int i = 0; i < 256; i++)
		ok0 &= out[i] == (float)(255 - i) / 255.0f;
	tap_ok(ok0 && out[0] == 1.0f && out[255] == 0.0f && out[255 - 51] == 0.2f,
	       "n_norm 0: v / 255 exactly (255 -> 1, 51 -> 0.2f, 0 -> 0)");
	int ok1 = lt_dataset_get_batch(&d, 0, 4, 255.0f, &mean, &std, 1, out, &err) == 0;
	for (int i = 0; i < 256; i++)
		ok1 &= out[i] == ((float)(255 - i) / 255.0f - mean) / std;
	tap_ok(ok1, "n_norm 1: (v / 255 - 0.2860) / 0.3530 exactly");
	float half = 0.5f, quarter = 0.25f;
	ok1 = lt_dataset_get_batch(&d, 0, 4, 255.0f, &half, &quarter, 1, out, &err) == 0;
	tap_ok(ok1 && out[0] == 2.0f && out[255] == -2.0f, "mean .5 std .25: 255 -> 2, 0 -> -2");
	ok1 = lt_dataset_get_batch(&d, 2, 1, 1.0f, NULL, NULL, 0, out, &err) == 0;
	tap_ok(ok1 && out[0] == 127.0f && out[63] == 64.0f, "batch from item 2, scale 1");
	tap_ok(lt_dataset_get_batch(&d, 3, 2, 1.0f, NULL, NULL, 0, out, &err) == LT_ERANGE,
	       "batch past the end: %s", err.msg);
	tap_ok(lt_dataset_get_batch(&d, 4, 0, 1.0f, NULL, NULL, 0, out, &err) == 0, "empty batch at the end");
	tap_ok(lt_dataset_get_batch(&d, 0, 1, 0.0f, NULL, NULL, 0, out, &err) == LT_EINVAL,
	       "scale 0: %s", err.msg);
	float zero = 0.0f;
	tap_ok(lt_dataset_get_batch(&d, 0, 1, 1.0f, &mean, &zero, 1, out, &err) == LT_EINVAL,
	       "std 0: %s", err.msg);
	float m3[3] = {0, 0, 0}, s3[3] = {1, 1, 1};
	tap_ok(lt_dataset_get_batch(&d, 0, 1, 1.0f, m3, s3, 3, out, &err) == LT_EINVAL,
	       "3 channel values for 1-channel items: %s", err.msg);
	lt_dataset_release(&d);

	/* 4-D: 2 items of [3,2,2]; per-channel normalisation. */
	b.n = 0;
	uint32_t d4[4] = {2, 3, 2, 2};
	put_header(&b, LT_IDX_U8, 4, d4);
	for (int i = 0; i < 24; i++)
		put_be(&b, (uint64_t)(i * 10), 1);
	write_idx("rgb.gz", &b);
	b.n = 0;
	uint32_t n2 = 2;
	put_header(&b, LT_IDX_U8, 1, &n2);
	put(&b, "\1\0", 2);
	write_idx("lab2", &b);
	if (lt_dataset_load_idx(path_of("rgb.gz"), path_of("lab2"), 0, 0, -1, &d, &err)) {
		tap_ok(0, "rgb loads: %s", err.msg);
		return;
	}
	tap_ok(d.ndim == 3 && d.item_shape[0] == 3 && d.item_shape[2] == 2 && d.item_numel == 12 &&
	       d.n_classes == 2, "4-D images give [3,2,2] items");
	float mc[3] = {0.1f, 0.5f, 0.9f}, sc[3] = {0.2f, 0.3f, 0.7f}, o[24];
	int okc = lt_dataset_get_batch(&d, 0, 2, 255.0f, mc, sc, 3, o, &err) == 0;
	for (int i = 0; i < 24; i++) {
		int c = (i % 12) / 4;
		okc &= o[i] == ((float)(i * 10) / 255.0f - mc[c]) / sc[c];
	}
	tap_ok(okc, "per-channel normalisation uses channel = leading item dim");
	tap_ok(lt_dataset_get_batch(&d, 0, 1, 1.0f, mc, sc, 2, o, &err) == LT_EINVAL, "2 values for 3 channels");
	okc = lt_dataset_get_batch(&d, 1, 1, 255.0f, mc, sc, 1, o, &err) == 0;
	for (int i = 0; i < 12; i++)
		okc &= o[i] == ((float)((12 + i) * 10) / 255.0f - mc[0]) / sc[0];
	tap_ok(okc, "one value for all 3 channels");
	lt_dataset_release(&d);

	/* f32 and i16 images become f32 datasets. */
	b.n = 0;
	uint32_t df[3] = {2, 1, 3};
	put_header(&b, LT_IDX_F32, 3, df);
	float fv[6] = {0.5f, -1.25f, 3.0f, 1e-3f, 100.0f, -0.0f};
	for (int i = 0; i < 6; i++) {
		uint32_t u;
		memcpy(&u, &fv[i], 4);
		put_be(&b, u, 4);
	}
	write_idx("f32img", &b);
	if (lt_dataset_load_idx(path_of("f32img"), path_of("lab2"), 0, 1, 1, &d, &err)) {
		tap_ok(0, "f32 images load: %s", err.msg);
		return;
	}
	float of[3];
	int okf = d.dtype == LT_F32 && d.pixels == NULL && d.x && d.x[0] == fv[3] && d.x[2] == fv[5] &&
		  lt_dataset_get_batch(&d, 0, 1, 1.0f, &half, &quarter, 1, of, &err) == 0;
	for (int i = 0; i < 3; i++)
		okf &= of[i] == (fv[3 + i] / 1.0f - half) / quarter;
	tap_ok(okf, "f32 images: slice kept as f32, (x - .5) / .25");
	lt_dataset_release(&d);
	b.n = 0;
	put_header(&b, LT_IDX_I16, 3, df);
	for (int i = 0; i < 6; i++)
		put_be(&b, (uint16_t)(int16_t)(i * 1000 - 2500), 2);
	write_idx("i16img.gz", &b);
	int rc = lt_dataset_load_idx(path_of("i16img.gz"), path_of("lab2"), 0, 0, -1, &d, &err);
	tap_ok(rc == 0 && d.dtype == LT_F32 && d.x[0] == -2500.0f && d.x[5] == 2500.0f,
	       "i16 images convert to f32");
	lt_dataset_release(&d);
	free(b.p);
}

/* ---- Fashion-MNIST ---- */

static const char *dir_of(const char *name)
{
	return path_of(name);
}

static void test_split_names(void)
{
	static const char *const names[] = {"train", "val", "test", "train-full"};
	int ok = 1;
	for (int s = 0; s < 4; s++) {
		lt_split p;
		ok &= strcmp(lt_split_name((lt_split)s), names[s]) == 0 &&
		      lt_split_parse(names[s], &p) == 0 && p == (lt_split)s;
	}
	lt_split p = LT_SPLIT_TEST;
	tap_ok(ok && lt_split_parse("validation", &p) == LT_EINVAL && p == LT_SPLIT_TEST &&
	       strcmp(lt_split_name(LT_SPLIT_COUNT), "?") == 0, "split names round-trip");
	tap_ok(strcmp(lt_fmnist_class_name(0), "T-shirt/top") == 0 &&
	       strcmp(lt_fmnist_class_name(1), "Trouser") == 0 &&
	       strcmp(lt_fmnist_class_name(5), "Sandal") == 0 &&
	       strcmp(lt_fmnist_class_name(9), "Ankle boot") == 0 &&
	       strcmp(lt_fmnist_class_name(10), "?") == 0 && strcmp(lt_fmnist_class_name(-1), "?") == 0,
	       "class names");
}

static int from_dir(const lt_dataset *d, const char *dir, const char *file)
{
	char want[600];
	snprintf(want, sizeof want, "%s/%s", dir, file);
	return d->source && strncmp(d->source, want, strlen(want)) == 0;
}

static void test_fmnist_synthetic(void)
{
	lt_dataset d;
	lt_err err;
	int rc;
	unsetenv("LATHE_DATA");

	/* full: train (5003, gzip) and t10k (4, plain). */
	make_dir("full");
	write_images("full/train-images-idx3-ubyte.gz", 5003, 2, 2);
	write_labels("full/train-labels-idx1-ubyte.gz", 5003, 0);
	write_images("full/t10k-images-idx3-ubyte", 4, 2, 2);
	write_labels("full/t10k-labels-idx1-ubyte", 4, 3);
	/* slice: only val (6, plain) and t10k (5, gzip), like the bundled one. */
	make_dir("slice");
	write_images("slice/val-images-idx3-ubyte", 6, 2, 2);
	write_labels("slice/val-labels-idx1-ubyte", 6, 5);
	write_images("slice/t10k-images-idx3-ubyte.gz", 5, 2, 2);
	write_labels("slice/t10k-labels-idx1-ubyte.gz", 5, 1);
	/* both: val-* next to train-*: val-* wins. */
	make_dir("both");
	write_images("both/val-images-idx3-ubyte.gz", 2, 2, 2);
	write_labels("both/val-labels-idx1-ubyte.gz", 2, 7);
	write_images("both/train-images-idx3-ubyte", 5001, 2, 2);
	write_labels("both/train-labels-idx1-ubyte", 5001, 0);
	/* bad: test labels out of range for Fashion-MNIST. */
	make_dir("bad");
	write_images("bad/t10k-images-idx3-ubyte", 3, 2, 2);
	struct buf b = {0};
	uint32_t n3 = 3;
	put_header(&b, LT_IDX_U8, 1, &n3);
	put(&b, "\1\12\2", 3);
	write_idx("bad/t10k-labels-idx1-ubyte", &b);
	free(b.p);
	make_dir("empty");
	char full[512], slice[512];
	snprintf(full, sizeof full, "%s", dir_of("full"));
	snprintf(slice, sizeof slice, "%s", dir_of("slice"));

	rc = lt_fmnist_load(full, NULL, LT_SPLIT_TRAIN, &d, &err);
	tap_ok(rc == 0 && d.n == 3 && d.n_classes == 10 && check_items(&d, 0, 0) &&
	       from_dir(&d, full, "train-images-idx3-ubyte.gz[0:3]"),
	       "train = all but the last 5000 of train-*: %s", rc ? err.msg : d.source);
	lt_dataset_release(&d);
	rc = lt_fmnist_load(full, NULL, LT_SPLIT_VAL, &d, &err);
	tap_ok(rc == 0 && d.n == 5000 && check_items(&d, 3, 0) &&
	       from_dir(&d, full, "train-images-idx3-ubyte.gz[3:5003]"),
	       "val = the last 5000 of train-* when there is no val-*: %s", rc ? err.msg : d.source);
	lt_dataset_release(&d);
	rc = lt_fmnist_load(full, NULL, LT_SPLIT_TRAIN_FULL, &d, &err);
	tap_ok(rc == 0 && d.n == 5003 && check_items(&d, 0, 0), "train-full = all of train-*");
	lt_dataset_release(&d);
	rc = lt_fmnist_load(full, NULL, LT_SPLIT_TEST, &d, &err);
	tap_ok(rc == 0 && d.n == 4 && check_items(&d, 0, 3) &&
	       from_dir(&d, full, "t10k-images-idx3-ubyte[0:4]"), "test = t10k-* (plain name)");
	lt_dataset_release(&d);

	rc = lt_fmnist_load(slice, NULL, LT_SPLIT_VAL, &d, &err);
	tap_ok(rc == 0 && d.n == 6 && check_items(&d, 0, 5) && from_dir(&d, slice, "val-images"),
	       "val-only dir: val from val-*");
	lt_dataset_release(&d);
	rc = lt_fmnist_load(slice, NULL, LT_SPLIT_TEST, &d, &err);
	tap_ok(rc == 0 && d.n == 5 && check_items(&d, 0, 1) &&
	       from_dir(&d, slice, "t10k-images-idx3-ubyte.gz"), "val-only dir: test from t10k-*.gz");
	lt_dataset_release(&d);
	rc = lt_fmnist_load(slice, NULL, LT_SPLIT_TRAIN, &d, &err);
	tap_ok(rc == LT_EIO && strstr(err.msg, "no Fashion-MNIST train split in") &&
	       strstr(err.msg, slice) && strstr(err.msg, "apt-get install dataset-fashion-mnist") &&
	       strstr(err.msg, "--data DIR") && d.n == 0,
	       "val-only dir has no train split: %s", err.msg);
	rc = lt_fmnist_load(dir_of("both"), NULL, LT_SPLIT_VAL, &d, &err);
	tap_ok(rc == 0 && d.n == 2 && check_items(&d, 0, 7), "val-* preferred over train-*");
	lt_dataset_release(&d);
	rc = lt_fmnist_load(dir_of("both"), NULL, LT_SPLIT_TRAIN, &d, &err);
	tap_ok(rc == 0 && d.n == 1, "5001 train items leave 1 for train");
	lt_dataset_release(&d);
	rc = lt_fmnist_load(slice, NULL, LT_SPLIT_COUNT, &d, &err);
	tap_ok(rc == LT_EINVAL, "unknown split value: %s", err.msg);

	/* Search: LATHE_DATA entries, then fallbacks, then the system dir. */
	const char *fb_full[] = {full, NULL};
	const char *fb_slice[] = {slice, NULL};
	char env[1200];
	snprintf(env, sizeof env, "%s:%s", dir_of("nonexistent"), slice);
	setenv("LATHE_DATA", env, 1);
	rc = lt_fmnist_load(NULL, fb_full, LT_SPLIT_VAL, &d, &err);
	tap_ok(rc == 0 && from_dir(&d, slice, "val-images"), "LATHE_DATA (2nd entry) before fallbacks");
	lt_dataset_release(&d);
	rc = lt_fmnist_load(NULL, fb_full, LT_SPLIT_TRAIN, &d, &err);
	tap_ok(rc == 0 && from_dir(&d, full, "train-images"),
	       "split missing from LATHE_DATA dirs comes from a fallback");
	lt_dataset_release(&d);
	setenv("LATHE_DATA", "", 1);
	rc = lt_fmnist_load(NULL, fb_slice, LT_SPLIT_TEST, &d, &err);
	tap_ok(rc == 0 && from_dir(&d, slice, "t10k"), "empty LATHE_DATA: fallback dir");
	lt_dataset_release(&d);
	rc = lt_fmnist_load(full, fb_slice, LT_SPLIT_TEST, &d, &err);
	tap_ok(rc == 0 && from_dir(&d, full, "t10k"), "an explicit dir overrides the search");
	lt_dataset_release(&d);
	rc = lt_fmnist_load(dir_of("empty"), fb_slice, LT_SPLIT_TEST, &d, &err);
	tap_ok(rc == LT_EIO && strstr(err.msg, "t10k-images-idx3-ubyte[.gz]"),
	       "an explicit dir without the split does not fall back: %s", err.msg);
	setenv("LATHE_DATA", dir_of("bad"), 1);
	rc = lt_fmnist_load(NULL, fb_full, LT_SPLIT_TEST, &d, &err);
	tap_ok(rc == LT_EFORMAT && strstr(err.msg, "label 10 at index 1 is not in 0..9") && d.n == 0,
	       "a found split with bad files is an error, not skipped: %s", err.msg);

	struct stat st;
	const char *fb_empty[] = {dir_of("empty"), NULL};
	setenv("LATHE_DATA", dir_of("nonexistent"), 1);
	if (stat(LT_FMNIST_SYSTEM_DIR "/t10k-labels-idx1-ubyte.gz", &st) == 0 ||
	    stat(LT_FMNIST_SYSTEM_DIR "/t10k-labels-idx1-ubyte", &st) == 0) {
		rc = lt_fmnist_load(NULL, fb_empty, LT_SPLIT_TEST, &d, &err);
		tap_ok(rc == 0 && from_dir(&d, LT_FMNIST_SYSTEM_DIR, "t10k"),
		       "the system dir is searched last");
		lt_dataset_release(&d);
		tap_ok(1, "# SKIP not-found message: the system dir has the split");
	} else {
		tap_ok(1, "# SKIP system dir search: " LT_FMNIST_SYSTEM_DIR " not installed");
		rc = lt_fmnist_load(NULL, fb_empty, LT_SPLIT_TEST, &d, &err);
		tap_ok(rc == LT_EIO && strstr(err.msg, dir_of("nonexistent")) &&
		       strstr(err.msg, dir_of("empty")) && strstr(err.msg, LT_FMNIST_SYSTEM_DIR) &&
		       strstr(err.msg, "apt-get install dataset-fashion-mnist"),
		       "not found: says where it looked: %s", err.msg);
	}
	unsetenv("LATHE_DATA");
}

/* The first test label read with zlib alone, independent of our reader. */
static int first_test_label_raw(void)
{
	gzFile g = gzopen(LT_FMNIST_SYSTEM_DIR "/t10k-labels-idx1-ubyte.gz", "rb");
	uint8_t head[9];
	int ok = g && gzread(g, head, 9) == 9;
	if (g)
		gzclose(g);
	return ok && head[2] == 0x08 && head[3] == 1 ? head[8] : -1;
}

static void test_fmnist_real(void)
{
	struct stat st;
	if (stat(LT_FMNIST_SYSTEM_DIR "/t10k-labels-idx1-ubyte.gz", &st) != 0 ||
	    stat(LT_FMNIST_SYSTEM_DIR "/train-images-idx3-ubyte.gz", &st) != 0) {
		tap_ok(1, "# SKIP Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
		return;
	}
	lt_dataset test, train, val, full;
	lt_err err;
	int raw = first_test_label_raw();
	tap_ok(raw == 9, "zlib alone reads the first t10k label as %d (Ankle boot)", raw);

	int rc = lt_fmnist_load(LT_FMNIST_SYSTEM_DIR, NULL, LT_SPLIT_TEST, &test, &err);
	if (rc) {
		tap_ok(0, "real test split loads: %s", err.msg);
		return;
	}
	int per_class[10] = {0}, balanced = 1;
	for (int64_t i = 0; i < test.n; i++)
		per_class[test.labels[i]]++;
	for (int c = 0; c < 10; c++)
		balanced &= per_class[c] == 1000;
	tap_ok(test.n == 10000 && test.ndim == 2 && test.item_shape[0] == 28 && test.item_shape[1] == 28 &&
	       test.n_classes == 10 && test.dtype == LT_U8, "test: 10000 of 28x28 u8, 10 classes");
	tap_ok(test.labels[0] == 9 && strcmp(lt_fmnist_class_name(test.labels[0]), "Ankle boot") == 0 &&
	       test.labels[1] == 2 && test.labels[2] == 1 && test.labels[3] == 1 && test.labels[4] == 6, "test labels start 9 (Ankle boot), 2, 1, 1, 6");
	tap_ok(balanced, "test: 1000 images per class");
	long sum = 0;
	for (int j = 0; j < 784; j++)
		sum += test.pixels[j];
	tap_ok(sum == 33456 && test.pixels[215] != 0 && test.pixels[214] == 0,
	       "first test image: pixel sum %ld (want 33456)", sum);
	float mean = 0.2860f, std = 0.3530f, x[784];
	int okb = lt_dataset_get_batch(&test, 0, 1, 255.0f, &mean, &std, 1, x, &err) == 0;
	for (int j = 0; j < 784; j++)
		okb &= x[j] == ((float)test.pixels[j] / 255.0f - mean) / std;
	tap_ok(okb && x[0] == -mean / std, "first test image normalised exactly");
	lt_dataset_release(&test);

	rc = lt_fmnist_load(LT_FMNIST_SYSTEM_DIR, NULL, LT_SPLIT_TRAIN_FULL, &full, &err);
	if (rc) {
		tap_ok(0, "real train-full loads: %s", err.msg);
		return;
	}
	rc = lt_fmnist_load(LT_FMNIST_SYSTEM_DIR, NULL, LT_SPLIT_TRAIN, &train, &err);
	rc |= lt_fmnist_load(LT_FMNIST_SYSTEM_DIR, NULL, LT_SPLIT_VAL, &val, &err);
	if (rc) {
		tap_ok(0, "real train and val load: %s", err.msg);
		lt_dataset_release(&full);
		return;
	}
	tap_ok(full.n == 60000 && train.n == 55000 && val.n == 5000,
	       "train-full 60000 = train 55000 + val 5000");
	size_t item = 784;
	tap_ok(memcmp(train.pixels, full.pixels, 55000 * item) == 0 &&
	       memcmp(train.labels, full.labels, 55000) == 0, "train is the first 55000 of train-*");
	tap_ok(memcmp(val.pixels, full.pixels + 55000 * item, 5000 * item) == 0 &&
	       memcmp(val.labels, full.labels + 55000, 5000) == 0, "val is the last 5000 of train-*");
	tap_ok(strstr(val.source, "[55000:60000]") &&
	       strstr(train.source, "[0:55000]"), "sources say [0:55000] and [55000:60000]");
	tap_ok(full.labels[0] == 9 && val.labels[0] == 0 && val.labels[1] == 8,
	       "first train label 9, val labels start 0, 8");
	lt_dataset_release(&train);
	lt_dataset_release(&val);
	lt_dataset_release(&full);
}

/* ---- allocation failures ---- */

typedef int (*load_fn)(lt_dataset *d, lt_err *err);

static int load_slice_gz(lt_dataset *d, lt_err *err)
{
	return lt_dataset_load_idx(path_of("img7.gz"), path_of("lab7.gz"), 10, 2, 3, d, err);
}

static int load_f32(lt_dataset *d, lt_err *err)
{
	return lt_dataset_load_idx(path_of("f32img"), path_of("lab2"), 0, 0, -1, d, err);
}

static int load_fm_train(lt_dataset *d, lt_err *err)
{
	return lt_fmnist_load(dir_of("full"), NULL, LT_SPLIT_TRAIN, d, err);
}

static int load_fm_val(lt_dataset *d, lt_err *err)
{
	return lt_fmnist_load(dir_of("full"), NULL, LT_SPLIT_VAL, d, err);
}

static void sweep(const char *what, load_fn fn)
{
	long n;
	int bad = 0, done = 0;
	for (n = 0; n < 1000 && !done; n++) {
		lt_dataset d;
		lt_err err;
		lt_err_clear(&err);
		lt_mem_fail_after(n);
		int rc = fn(&d, &err);
		long made = lt_mem_fail_after(-1);
		if (made <= n) {
			done = 1;
			bad |= rc != 0;
		} else if (rc != LT_ENOMEM || d.labels || d.store || d.source) {
			bad = 1;
			tap_diag("%s: failing allocation %ld gave %d: %s", what, n, rc, err.msg);
		}
		if (rc == 0)
			lt_dataset_release(&d);
	}
	tap_ok(done && !bad, "allocation sweep over %s: %ld sites, each ENOMEM", what, n - 1);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/t_dataset.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 99;
	}
	test_load_idx();
	test_batches();
	test_split_names();
	test_fmnist_synthetic();
	sweep("a gzip slice", load_slice_gz);
	sweep("f32 images", load_f32);
	sweep("fmnist train (copied slice)", load_fm_train);
	sweep("fmnist val (shared buffer)", load_fm_val);
	test_fmnist_real();

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
	return tap_done();
}
