/*
 * conf: turns the INI file, the environment and command-line options into one
 * plain struct hf_conf.
 *
 * Precedence, highest first: command line (conf_set_option), environment
 * (conf_apply_env, HFMOUNT_<SECTION>_<KEY>), file (conf_load_file), defaults
 * (conf_defaults). Callers apply them lowest first: defaults, file, env, options.
 *
 * Every function that can fail returns 0 or a negative errno and, on failure,
 * writes one human sentence into err (naming file, line, key and what is allowed
 * where they apply). Warnings (unknown keys) go to the warn callback, never fail.
 * Nothing here is thread-safe; configuration is built once at start-up.
 */
#ifndef HF_CONF_H
#define HF_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#define HF_GROUP_MAX 64

enum hf_identity { HF_IDENTITY_STAT, HF_IDENTITY_CONTENT };
enum hf_png_filter { HF_PNG_FILTER_NONE, HF_PNG_FILTER_SUB, HF_PNG_FILTER_UP, HF_PNG_FILTER_AVG,
		     HF_PNG_FILTER_PAETH, HF_PNG_FILTER_ALL };
enum hf_png_strategy { HF_PNG_STRATEGY_DEFAULT, HF_PNG_STRATEGY_FILTERED, HF_PNG_STRATEGY_HUFFMAN,
		       HF_PNG_STRATEGY_RLE, HF_PNG_STRATEGY_FIXED };
enum hf_png_deflate { HF_PNG_DEFLATE_LIBDEFLATE, HF_PNG_DEFLATE_ZLIB, HF_PNG_DEFLATE_FAST };
enum hf_log_level { HF_LOG_ERROR, HF_LOG_WARN, HF_LOG_INFO, HF_LOG_DEBUG };

struct hf_conf {
	/* [store] */
	uint64_t max_size;       /* bytes; default 10G */
	uint64_t min_free;       /* bytes; default 1G */
	enum hf_identity identity; /* default stat */
	bool fsync;              /* fsync images and manifests before rename; default off */
	char store_group[HF_GROUP_MAX]; /* group sharing the store, "" = private; default "" */
	/* [decode] */
	int threads;             /* encoder threads, 0 = one per core; default 0 */
	bool eager;              /* extract a whole segment once touched; default true */
	int png_level;           /* zlib level 0..9; default 1 */
	enum hf_png_filter png_filter;     /* default up */
	enum hf_png_strategy png_strategy; /* default rle; zlib only */
	enum hf_png_deflate png_deflate;   /* default fast (decode/fastpng); libdeflate; zlib honours strategy */
	int jpeg_q;              /* mjpeg qscale 1..31 (like ffmpeg -q:v); default 2 */
	uint64_t memory;         /* bytes of frames in flight, 0 = unbounded; default 256M */
	uint64_t max_pixels;     /* largest picture decoded (width x height), 0 = unbounded; default 64M = 8192x8192 */
	/* [fs] */
	char source_root[PATH_MAX]; /* absolute, no trailing slash except "/"; default "/" */
	double attr_timeout;     /* seconds, >= 0; default 86400 */
	/* [log] */
	enum hf_log_level log_level; /* default info */
};

typedef void (*conf_warn_fn)(void *arg, const char *msg);

/* Fills every field with its default. */
void conf_defaults(struct hf_conf *c);

/*
 * Reads an INI file with iniparser. Unknown sections/keys are warnings
 * ("FILE:LINE: unknown key [section] key"); a bad value is an error
 * ("FILE:LINE: [decode] png_level = 12: expected an integer 0..9").
 * An unreadable file is an error naming the file and strerror.
 */
int conf_load_file(struct hf_conf *c, const char *path, conf_warn_fn warn, void *warn_arg,
		   char *err, size_t errlen);

/*
 * Applies HFMOUNT_<SECTION>_<KEY> variables from envp (NULL-terminated,
 * "NAME=VALUE"), e.g. HFMOUNT_DECODE_PNG_LEVEL=3. Unknown HFMOUNT_ names warn.
 */
int conf_apply_env(struct hf_conf *c, char *const envp[], conf_warn_fn warn, void *warn_arg,
		   char *err, size_t errlen);

/*
 * Sets one key given as "key" or "section.key" (keys are unique across sections),
 * as from "-o png_level=3". origin names where it came from for error messages
 * (e.g. "-o"). Returns -ENOENT for a key that does not exist (err says so),
 * -EINVAL for a bad value.
 */
int conf_set_option(struct hf_conf *c, const char *key, const char *value, const char *origin,
		    char *err, size_t errlen);

/*
 * Every layer below the command line, lowest first: defaults, then the INI file (path, or
 * the default path when that file exists), then the environment envp. As hfmount and
 * hfctl both configure themselves. 0, or as conf_load_file / conf_apply_env.
 */
int conf_load(struct hf_conf *c, const char *path, char *const envp[], conf_warn_fn warn,
	      void *warn_arg, char *err, size_t errlen);

/* Writes $XDG_CONFIG_HOME/hfmount/hfmount.ini (or ~/.config/...) into buf. 0 or -ENAMETOOLONG. */
int conf_default_path(char *buf, size_t len);

/* Parses "10G", "512M", "1048576", "1.5G" (powers of 1024; K M G T). 0 or -EINVAL. */
int conf_parse_size(const char *s, uint64_t *out);

/* The gid of a group given by name (that exists) or number (gid may be NULL); -ENOENT. */
int conf_group_id(const char *group, gid_t *gid);

/* Short names of the enums, as written in the INI file ("up", "rle", "stat", "info"). */
const char *conf_png_filter_name(enum hf_png_filter f);
const char *conf_png_strategy_name(enum hf_png_strategy s);
const char *conf_png_deflate_name(enum hf_png_deflate d);

#endif
