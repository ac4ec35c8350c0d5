/*
 * fs: the FUSE low-level adapter. Mirrors source_root read-only, adds segment
 * directories next to videos, .hfinfo in each and .hfstats at the root, and replies
 * to frame lookups asynchronously when the engine has the image. Files are opened by the
 * kernel without a request where it can; a changed video is noticed and dropped.
 * No libav types here; all frame work goes through the engine.
 */
#ifndef HF_FS_H
#define HF_FS_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse_lowlevel.h>

#include "conf/conf.h"
#include "fs/engine.h"

struct hf_fs;

/* mountpoint must be absolute and canonical; it is hidden from the mirror. */
int fs_new(const struct hf_conf *conf, const char *mountpoint, struct hf_fs **out);

/*
 * Attaches the engine and starts the source watch and the read-ahead of stored frames
 * (after daemonizing: they start threads). Call after fs_session_new.
 */
void fs_set_engine(struct hf_fs *fs, struct engine *e);

/*
 * Stops the source watch and the read-ahead; call when the session loop has ended, before
 * the session goes. A second call does nothing.
 */
void fs_stop(struct hf_fs *fs);

/* The session for these args, with fs as its userdata. NULL on failure (libfuse says why). */
struct fuse_session *fs_session_new(struct hf_fs *fs, struct fuse_args *args);

/* Frees the node table; accepts NULL and clears the caller's pointer. */
void fs_free(struct hf_fs **fs);

#endif
