/*
 * ctl_json: how hfctl reads what hfmount writes (.hfstats, .hfinfo), through jansson.
 *
 * Values are jansson's json_t; read them with jansson's own getters (json_object_get,
 * json_array_get, json_array_size, json_object_foreach...), which give NULL or 0 for a
 * missing key, another type or an index out of range, so readers of a newer or older
 * daemon's JSON simply see fewer fields. The few reads jansson has no default for are
 * here. Documents are parsed with every number as a double (exact for integers up to
 * 2^53; no integer is too big to read) and \u0000 allowed (a string holding it ends
 * there). A tree is freed with ctl_json_free (or json_decref). Not thread-safe per tree.
 */
#ifndef HF_CTL_JSON_H
#define HF_CTL_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses text[0..len): one value, surrounded by whitespace only. 0, or -EINVAL with a
 * sentence in err ("bad JSON at line L, column C: what"), or -ENOMEM. *out is the
 * caller's (json_decref). */
int ctl_json_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen);

/* Reads and parses a whole file. 0, or -errno of the open/read (err is its strerror), or
 * as ctl_json_parse. err never names the path: the caller does. */
int ctl_json_load(const char *path, json_t **out, char *err, size_t errlen);

/*
 * Reads DIR/NAME, a mount's own file (.hfstats, .hfinfo). 0, or -1 with a sentence in
 * msg: DIR's error, "DIR " + not_ours when DIR has no NAME, or NAME's error.
 */
int ctl_json_load_in(const char *dir, const char *name, const char *not_ours, json_t **out,
		     char *msg, size_t len);

/* The "error" sentence SEGMENT/.hfinfo gives now, or fallback, into buf. */
void ctl_json_info_error(const char *seg, const char *fallback, char *buf, size_t len);

/* json_decref, and clears the caller's pointer; accepts NULL. */
void ctl_json_free(json_t **j);

/* The value as a C type, or the default when j is NULL or of another type. The string
 * lives as long as j. */
const char *ctl_json_str(const json_t *j, const char *dflt);
double ctl_json_num(const json_t *j, double dflt);

/* A whole non-negative number (a counter, a size) that fits uint64_t: true with *v. */
bool ctl_json_u64(const json_t *j, uint64_t *v);

#endif
