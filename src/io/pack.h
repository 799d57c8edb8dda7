/* The packed model format's encoding layer: one tensor as Deep
 * Compression stores it (Han et al. 2016): where the present (unpruned)
 * elements are, their codes, and what the codes decode to, each part in
 * fixed width or Huffman coded, whichever is smaller.
 *
 * A packed tensor is three byte streams (lt_pack_stream_name: idx, codes,
 * table; io/packed.c stores them one after another as one U8 tensor) plus
 * a description, a compact JSON object saying everything needed to decode
 * them. Nothing else is needed: the packed
 * size (lt_pack_estimate) is the three streams plus the JSON text.
 *
 * Streams:
 *   idx    where the present elements are (empty when all are): the
 *          index parts, one after another, each byte-aligned
 *   codes  one code per present element, in element order (for a plain
 *          f32 tensor: the present values, 4 bytes little-endian each)
 *   table  what codes mean: affine: groups f32 scales then groups int32
 *          zero points; codebook: groups * k f32 entries; little-endian;
 *          empty for f16, bf16 and plain f32
 * A part is a sequence of symbols below its alphabet, either fixed width
 * (huffman.h bit order: LSB first) or a Huffman code-length table
 * (lt_huff_table_write) followed by the Huffman-coded symbols.
 *
 * Index encodings (the packer computes all, keeps the smallest):
 *   dense  every element is present: no index part
 *   rel    relative indices as in Deep Compression: per present element,
 *          the count of absent elements since the previous present one,
 *          in b bits (b = 1..16: every width up to the first that needs
 *          no filler is tried). A gap of 2^b - 1 or more is bridged by
 *          fillers: the symbol 2^b - 1 means "skip 2^b - 1 elements,
 *          nothing present" and lives in the index part only (it takes no
 *          code, unlike Han's zero-valued filler weights). Absent elements
 *          after the last present one take no symbol. b = 1 in fixed width
 *          is a bitmap up to the last present element; a small b with
 *          Huffman-coded symbols approaches the entropy of random gaps.
 *   holes  the same over the ABSENT elements, for tensors where nearly
 *          everything is present (it costs bits per pruned element, not
 *          per kept one); "dense" is holes with no holes
 *   csr    the tensor as a matrix of rows = shape[0] (1 for a scalar or a
 *          vector) by cols = numel / rows: part 1 the present count of
 *          each row (the row pointers' differences), part 2 the column of
 *          each present element, increasing within a row. Only when cols
 *          <= 65,536 and no row holds 65,536 present elements.
 *
 * The description (JSON, keys in this order, all values integers or
 * strings):
 *   {"pack":1, "shape":[300,784],
 *    "kind":"codebook",     f32 | affine | codebook | f16 | bf16
 *    "bits":6, "groups":1,  schemes only
 *    "qmin":-8,             affine only
 *    "k":64,                codebook only
 *    "present":18816,       elements not pruned
 *    "index":"rel",         dense | rel | holes | csr
 *    "gap_bits":4,          rel and holes only
 *    "idx":[PART...],       0 parts (dense), 1 (rel, holes), 2 (csr)
 *    "codes":PART,
 *    "table":256}           bytes of the table stream
 * with PART = {"n":SYMBOLS,"alphabet":A,"width":W,"bytes":B} for fixed
 * width or {"n":SYMBOLS,"alphabet":A,"huffman":T,"bytes":B} for a
 * Huffman part whose first T of B bytes are its code-length table. The
 * codes part of a plain f32 tensor is {"n":N,"width":32,"bytes":4N}.
 * The idx stream is the sum of its parts' bytes. Alphabets: rel and holes
 * 2^gap_bits; CSR row lengths the longest row + 1, columns the last used
 * column + 1; codes the largest code + 1 (at most k, or 2^bits). A fixed
 * width is the fewest bits that hold the alphabet (0 for one symbol).
 * The size counted is this JSON text; stored as a string value (say in
 * safetensors metadata) it grows by the escaping of its quotes. */
#ifndef LT_PACK_H
#define LT_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/tensor.h"
#include "core/scheme.h"

/* The streams, in the order of lt_packed.stream and lt_unpack's arrays. */
enum { LT_PACK_IDX, LT_PACK_CODES, LT_PACK_TABLE, LT_PACK_STREAMS };

/* "idx", "codes" or "table"; NULL for another i. */
const char *lt_pack_stream_name(int i);

/* Index encodings; AUTO (only in LT_PACK_FORCE) picks the smallest. */
typedef enum { LT_PACK_AUTO, LT_PACK_DENSE, LT_PACK_REL, LT_PACK_HOLES, LT_PACK_CSR } lt_pack_index;

/* lt_pack_src.flags: elements whose value is exactly zero (+0 or -0;
 * for a scheme, whose code decodes to zero) are absent too, so a pruned
 * tensor read from a file without its mask still packs sparsely. They
 * decode as +0. */
#define LT_PACK_ZEROS 1u
/* lt_pack_src.flags: use this index encoding instead of the smallest, to
 * compare encodings (LT_EINVAL if it cannot be used: dense with absent
 * elements, csr outside its limits). */
#define LT_PACK_FORCE(index) ((unsigned)(index) << 4)

/* What to pack. The arrays are borrowed for the call. */
typedef struct lt_pack_src {
	int ndim;
	const int64_t *shape;
	const lt_scheme *scheme; /* NULL: a plain f32 tensor */
	const float *values;     /* plain: numel values; ignored with a scheme */
	const float *mask;       /* numel; 0 = pruned (absent). NULL: none */
	unsigned flags;          /* LT_PACK_ZEROS, LT_PACK_FORCE */
} lt_pack_src;

/* One part of a stream. */
typedef struct lt_pack_part {
	int64_t n;            /* symbols */
	uint32_t alphabet;    /* every symbol is below it; 0 for raw f32 */
	int huffman;          /* 1: Huffman coded, 0: fixed width */
	int width;            /* fixed: bits per symbol (0..16; 32 raw f32) */
	uint64_t table_bytes; /* Huffman: its code-length table's bytes */
	uint64_t bytes;       /* the whole part */
} lt_pack_part;

/* The description as a struct (lt_pack_desc_json writes it). */
typedef struct lt_pack_desc {
	int ndim;
	int64_t shape[LT_MAX_DIMS];
	int64_t numel;
	int plain;           /* 1: f32 values; 0: a scheme's codes */
	lt_scheme_kind kind; /* scheme only: kind, bits, groups, qmin, k */
	int bits;
	int64_t groups;
	int32_t qmin;
	int k;
	int64_t present;
	lt_pack_index index;
	int gap_bits;        /* rel, holes */
	int n_idx;           /* index parts: 0, 1 or 2 */
	lt_pack_part idx[2];
	lt_pack_part codes;
	uint64_t bytes[LT_PACK_STREAMS]; /* each stream's length */
} lt_pack_desc;

/* A packed tensor: the description, its JSON text and the streams, all
 * owned (lt_packed_free). */
typedef struct lt_packed {
	lt_pack_desc desc;
	uint8_t *stream[LT_PACK_STREAMS]; /* never NULL, desc.bytes[i] bytes */
	char *json;                       /* NUL-terminated, json_len bytes */
	size_t json_len;
	uint64_t total;                   /* streams + json_len */
} lt_packed;

/* Pack one tensor. The scheme's codes must be valid for it (below k for a
 * codebook, below 2^bits for affine; absent elements' codes are not
 * read). NULL with err: LT_EINVAL (bad shape, a scheme that does not
 * match it, a code out of range, no values for a plain tensor, an affine
 * qmin outside +-65536 or zero point outside +-2^30), LT_ENOMEM. */
lt_packed *lt_pack(const lt_pack_src *src, lt_err *err);

/* The exact byte count lt_pack would give (lt_packed.total), without
 * producing the streams: the same choices are made, only the bytes are
 * not written. desc (may be NULL) gets the description lt_pack would
 * give. Errors as lt_pack. */
int lt_pack_estimate(const lt_pack_src *src, lt_pack_desc *desc, uint64_t *bytes, lt_err *err);

/* NULL is a no-op. */
void lt_packed_free(lt_packed *p);

/* The description as compact JSON (the format above), lt_malloc'd,
 * NUL-terminated; *len (may be NULL) gets its length. NULL with err
 * (LT_ENOMEM). */
char *lt_pack_desc_json(const lt_pack_desc *d, size_t *len, lt_err *err);

/* Parse and check a description read from a file (len bytes of JSON, no
 * NUL needed). Strict: unknown or missing keys, wrong types, values out of
 * range and counts that do not fit the shape are LT_EFORMAT; a shape of
 * more than limit elements is LT_ERANGE. d then passes lt_unpack's checks
 * of the description itself. */
int lt_pack_desc_parse(const char *json, size_t len, int64_t limit, lt_pack_desc *d, lt_err *err);

/* Decode a packed tensor: stream[i] (len[i] bytes, may be NULL when 0)
 * as described by d, which is checked again first (as lt_pack_desc_parse
 * checks it; a shape over limit elements is LT_ERANGE), then each stream
 * length against it and every symbol as it is used. values (numel
 * floats) gets every element: lt_scheme_value of its code where present
 * (the original f32 for a plain tensor), +0 elsewhere. mask (numel, may
 * be NULL) gets 1 where present, 0 elsewhere. *scheme (may be NULL)
 * gets a new scheme (caller frees with lt_scheme_free; NULL for a plain
 * tensor) whose codes are those of the present elements and 0 elsewhere.
 * Temporary memory is bounded by the shape and the stream sizes.
 * LT_EFORMAT with a sentence for anything malformed, LT_ERANGE, LT_ENOMEM;
 * on error *scheme is NULL and values/mask are undefined. */
int lt_unpack(const lt_pack_desc *d, const uint8_t *const stream[LT_PACK_STREAMS],
	      const size_t len[LT_PACK_STREAMS], int64_t limit, float *values, float *mask,
	      lt_scheme **scheme, lt_err *err);

#endif
