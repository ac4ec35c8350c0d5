/*
 * key: SHA-256 names for everything in the store, over a canonical encoding of
 * exactly what changes the named bytes (length-prefixed fields, a schema version).
 * Pure functions, thread-safe.
 */
#ifndef HF_KEY_H
#define HF_KEY_H

#include <stddef.h>
#include <stdint.h>

#define HF_SCHEMA 1
#define HF_KEY_HEXLEN 64

struct hf_key {
	unsigned char b[32];
};

/* Writes 64 lowercase hex digits and a NUL into out (65 bytes). */
void key_hex(const struct hf_key *k, char *out);

/* Parses 64 hex digits. 0 or -EINVAL. */
int key_from_hex(const char *hex, struct hf_key *k);

/*
 * The image of one source frame: source identity (see engine), stream index, the frame's
 * pts in the stream time base, and the canonical output format (image_opts_canon).
 */
void key_image(const char *source_id, int stream, int64_t pts, const char *format_canon,
	       struct hf_key *out);

/* A segment manifest: source identity, canonical segment values and output format. */
void key_segment(const char *source_id, const char *segment_canon, const char *format_canon,
		 struct hf_key *out);

/* Any other name: kind ("path", "index") and one string. */
void key_string(const char *kind, const char *s, struct hf_key *out);

/* SHA-256 of a whole file's bytes, read from fd from offset 0. 0 or -errno. */
int key_file(int fd, struct hf_key *out);

#endif
