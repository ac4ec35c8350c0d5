/*
 * ctl_json: a small JSON reader for what hfmount writes (.hfstats, .hfinfo).
 *
 * A document is parsed whole into a tree of values; lookups never fail hard: asking a
 * missing key, the wrong type or an index out of range gives NULL (or the caller's
 * default), so readers of a newer or older daemon's JSON simply see fewer fields.
 * Numbers are kept as double (exact for integers up to 2^53). Strings are UTF-8 with
 * escapes resolved; a string holding \u0000 ends there. Not thread-safe per tree.
 */
#ifndef HF_CTL_JSON_H
#define HF_CTL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json;

/* Parses text[0..len) (one value, surrounded by whitespace only). 0 or -EINVAL with a
 * sentence in err (where and what), or -ENOMEM. *out owns the tree. */
int json_parse(const char *text, size_t len, struct json **out, char *err, size_t errlen);

/* Reads and parses a whole file. 0, or -errno of the open/read (err is its strerror), or
 * as json_parse. err never names the path: the caller does. */
int json_load(const char *path, struct json **out, char *err, size_t errlen);

/*
 * Reads DIR/NAME, a mount's own file (.hfstats, .hfinfo). 0, or -1 with a sentence in
 * msg: DIR's error, "DIR " + not_ours when DIR has no NAME, or NAME's error.
 */
int json_load_in(const char *dir, const char *name, const char *not_ours, struct json **out,
		 char *msg, size_t len);

/* The "error" sentence SEGMENT/.hfinfo gives now, or fallback, into buf. */
void json_info_error(const char *seg, const char *fallback, char *buf, size_t len);

/* Frees a tree; accepts NULL and clears the pointer. */
void json_free(struct json **j);

enum json_type json_type(const struct json *j);

/* The member `key` of an object, or NULL (not an object, or no such key). */
const struct json *json_get(const struct json *obj, const char *key);

/* Members of an object / elements of an array: count (0 for other types), then the
 * i-th value and, for objects, its key (NULL otherwise or out of range). */
size_t json_count(const struct json *j);
const struct json *json_at(const struct json *j, size_t i);
const char *json_key_at(const struct json *j, size_t i);

/* The value as a C type, or the default when j is NULL or of another type. */
const char *json_string(const struct json *j, const char *dflt);
double json_number(const struct json *j, double dflt);
bool json_bool(const struct json *j, bool dflt);

/* A whole non-negative number (a counter, a size) that fits uint64_t: true with *v. */
bool json_u64(const struct json *j, uint64_t *v);

#endif
