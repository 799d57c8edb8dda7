/* Bit-level coding for the packed model format (io/pack.h): a bit writer
 * and reader over byte buffers, fixed-width packing of small symbols, and
 * canonical Huffman codes whose lengths are limited to LT_HUFF_MAX_LEN.
 *
 * Bit order is LSB first, as in deflate: bit k of a stream is bit k % 8
 * of byte k / 8, and a field of n bits written at bit k has its least
 * significant bit at k. A stream ends with zero bits up to a whole byte.
 * Huffman code words go out first bit first in that order, so the
 * canonical code (assigned most significant bit first, by length and then
 * by symbol) is stored bit-reversed; the decoder indexes a table with the
 * next bits as they lie in the low end of its bit buffer.
 *
 * Everything that reads bytes treats them as untrusted: a malformed code
 * table or stream gives LT_EFORMAT and a sentence, never a read outside
 * the buffer. */
#ifndef LT_HUFFMAN_H
#define LT_HUFFMAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* The longest code word the encoder makes and the decoder accepts. 20
 * bits code any alphabet of up to 65,536 symbols; the lengths only reach
 * it for very skewed counts (a Fibonacci-like histogram over millions of
 * symbols), and then cost a fraction of a percent. */
#define LT_HUFF_MAX_LEN 20
/* The largest alphabet (symbols are uint16). */
#define LT_HUFF_MAX_SYMS 65536u

/* ---- bit writer ---------------------------------------------------------- */

/* Writes into buf (cap bytes). With buf NULL it only counts, which is how
 * sizes are measured without producing bytes. Writing past cap drops the
 * bytes and sets overflow; the count goes on. */
typedef struct lt_bitw {
	uint8_t *buf;
	size_t cap;
	size_t pos;   /* bytes flushed (or counted) */
	uint64_t acc; /* pending bits, the oldest in the low end */
	int n;        /* pending bits: fewer than 32 between calls */
	int overflow;
} lt_bitw;

void lt_bitw_init(lt_bitw *w, uint8_t *buf, size_t cap);
/* Not for direct use: moves 32 pending bits into the buffer. */
void lt_bitw_flush32(lt_bitw *w);

/* Append the low n bits (0..32) of v. */
static inline void lt_bitw_put(lt_bitw *w, uint32_t v, int n)
{
	w->acc |= ((uint64_t)v & ((1ull << n) - 1)) << w->n;
	w->n += n;
	if (w->n >= 32)
		lt_bitw_flush32(w);
}

/* Bits written so far. */
uint64_t lt_bitw_bits(const lt_bitw *w);
/* Pad with zeros to a whole byte and flush; returns the stream's bytes. */
size_t lt_bitw_finish(lt_bitw *w);

/* ---- bit reader ---------------------------------------------------------- */

/* Reads buf[0..len). Reading past the end yields zero bits and is
 * reported by lt_bitr_end, so a loop need not test every read. */
typedef struct lt_bitr {
	const uint8_t *start, *p, *end;
	uint64_t acc;
	int n;       /* valid bits in acc */
	size_t over; /* zero bytes supplied past the end */
} lt_bitr;

void lt_bitr_init(lt_bitr *r, const uint8_t *buf, size_t len);
/* The next n bits (0..32). */
uint32_t lt_bitr_get(lt_bitr *r, int n);
/* Bits consumed so far. */
uint64_t lt_bitr_tell(const lt_bitr *r);
/* 1 once a read has gone past the end of the buffer. */
int lt_bitr_overrun(const lt_bitr *r);
/* The stream must end here: nothing read past its end, at most 7 bits
 * left in its last byte and those zero. LT_EFORMAT ("WHAT ends early" or
 * "WHAT has N bytes left over") otherwise. */
int lt_bitr_end(const lt_bitr *r, const char *what, lt_err *err);

/* ---- fixed width --------------------------------------------------------- */

/* Bytes of n symbols of width bits (0..16): ceil(n * width / 8), or
 * SIZE_MAX if that overflows. Width 0 holds a one-symbol alphabet. */
size_t lt_fixed_bytes(int64_t n, int width);

/* Pack n symbols of width bits (0..16) into out, which holds
 * lt_fixed_bytes(n, width) bytes; bits above the width are dropped. */
void lt_fixed_pack(const uint16_t *sym, int64_t n, int width, uint8_t *out);

/* Unpack n symbols of width bits (0..16) from in (exactly
 * lt_fixed_bytes(n, width) bytes, padding bits zero) into out. Every
 * symbol must be below alphabet. LT_EFORMAT with a sentence otherwise. */
int lt_fixed_unpack(const uint8_t *in, size_t len, int64_t n, int width, uint32_t alphabet,
		    uint16_t *out, lt_err *err);

/* ---- canonical Huffman codes --------------------------------------------- */

/* Optimal code lengths for symbols 0..nsym-1 (nsym <= LT_HUFF_MAX_SYMS)
 * with counts freq, none longer than maxlen (1..LT_HUFF_MAX_LEN), by
 * package-merge: the result minimises sum(freq * len) among all prefix
 * codes within the limit, so it equals plain Huffman whenever the limit
 * does not bind. Unused symbols get length 0; a single used symbol gets
 * length 1; with two or more the code is complete (Kraft sum 1). len has
 * nsym entries. LT_EINVAL (nsym or maxlen out of range, more used symbols
 * than 2^maxlen, counts summing past 2^56), LT_ENOMEM. */
int lt_huff_lengths(const uint64_t *freq, uint32_t nsym, int maxlen, uint8_t *len, lt_err *err);

/* sum(freq[s] * len[s]): the bits the symbols take coded with len. */
uint64_t lt_huff_bits(const uint64_t *freq, const uint8_t *len, uint32_t nsym);

/* Whether len (nsym entries) is a usable code: lengths 0..LT_HUFF_MAX_LEN,
 * at least one used, and either complete (Kraft sum exactly 1) or one
 * symbol of length 1. LT_EFORMAT saying which rule fails. */
int lt_huff_check(const uint8_t *len, uint32_t nsym, lt_err *err);

/* Canonical code words for len (which lt_huff_check accepts), bit-reversed
 * for lt_bitw_put(w, code[s], len[s]). code has nsym entries. */
void lt_huff_codes(const uint8_t *len, uint32_t nsym, uint32_t *code);

/* The code-length table serialised: run-length and delta tokens over the
 * symbols in order (a length equal to the previous used one costs one
 * bit, a step of one three bits, a run of unused symbols 4 to 36 bits),
 * padded to a byte. The alphabet size is not stored: the reader is told
 * it. table_size is the byte count; table_write writes it into out (cap
 * bytes) and returns the count, or 0 if cap is too small. */
size_t lt_huff_table_size(const uint8_t *len, uint32_t nsym);
size_t lt_huff_table_write(const uint8_t *len, uint32_t nsym, uint8_t *out, size_t cap);
/* Read a table of nsym lengths from exactly size bytes of in and check it
 * (lt_huff_check). LT_EFORMAT for a bad token, a run past the alphabet,
 * a length out of range, leftover bytes, or a bad code. */
int lt_huff_table_read(const uint8_t *in, size_t size, uint32_t nsym, uint8_t *len, lt_err *err);

/* Encode n symbols with the code len (nsym entries, accepted by
 * lt_huff_check) into out (cap bytes); *written gets the bytes (the
 * exact size is ceil(lt_huff_bits / 8)). LT_EINVAL for a symbol without
 * a code word or too small a buffer, LT_ENOMEM. */
int lt_huff_encode(const uint16_t *sym, int64_t n, const uint8_t *len, uint32_t nsym,
		   uint8_t *out, size_t cap, size_t *written, lt_err *err);

/* A table-driven decoder for one code (opaque). */
typedef struct lt_huff_dec lt_huff_dec;

/* A decoder for len (nsym entries); checks the code first (lt_huff_check).
 * NULL with err (LT_EFORMAT, LT_EINVAL for nsym out of range, LT_ENOMEM). */
lt_huff_dec *lt_huff_dec_new(const uint8_t *len, uint32_t nsym, lt_err *err);
/* NULL is a no-op. */
void lt_huff_dec_free(lt_huff_dec *d);

/* Decode exactly n symbols from in (size bytes) into out. The stream must
 * end with the last symbol (lt_bitr_end's rule). LT_EFORMAT for a bit
 * pattern that is no code word, a stream that ends early or has bytes
 * left over. */
int lt_huff_decode(const lt_huff_dec *d, const uint8_t *in, size_t size, int64_t n, uint16_t *out,
		   lt_err *err);

/* A table of table_bytes bytes followed by a payload, as the packer lays
 * out a Huffman-coded part of size bytes in all: read the table for an
 * alphabet of nsym symbols, then decode n symbols from the rest. Errors
 * as lt_huff_table_read and lt_huff_decode. */
int lt_huff_decode_part(const uint8_t *in, size_t size, size_t table_bytes, uint32_t nsym, int64_t n,
			uint16_t *out, lt_err *err);

#endif
