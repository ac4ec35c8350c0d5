/*
 * fastpng: a deflate encoder made for filtered PNG rows of camera footage: one block with
 * Huffman codes built from this image's byte histogram, and runs of zero bytes (flat areas
 * after filtering) as matches at distance 1. No general match finder, so it runs in a
 * fraction of zlib's or libdeflate's fastest level, and on grainy frames the output is
 * smaller than theirs at level 1 (literals cost what their entropy says).
 * Pure functions over caller buffers; thread-safe.
 */
#ifndef HF_FASTPNG_H
#define HF_FASTPNG_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of output buffer fastpng_zlib() needs for n input bytes. */
size_t fastpng_zlib_bound(size_t n);

/*
 * Writes a complete zlib stream (header, one dynamic-Huffman deflate block, Adler-32) of
 * in[0..n) into out, which holds fastpng_zlib_bound(n) bytes. Returns its length, or 0
 * when memory for the run list cannot be had.
 */
size_t fastpng_zlib(const uint8_t *in, size_t n, uint8_t *out);

#endif
