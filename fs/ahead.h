/*
 * ahead: reads stored images from disk ahead of readers that go through a segment in
 * order, on a thread of its own (asking the disk for a file, posix_fadvise WILLNEED,
 * can take a millisecond, which a reply must not wait for). A reader starting frame k
 * has the images of k .. k+depth asked for; frames already asked for are skipped.
 */
#ifndef HF_AHEAD_H
#define HF_AHEAD_H

#include <stdint.h>

#include "fs/engine.h"

struct ahead;

/* Starts the thread. 0 or -errno. */
int ahead_start(int depth, struct ahead **out);

/* A reader started slot of seg (takes its own reference; never blocks: when the queue
 * is full the oldest request is dropped). Accepts a NULL ahead. */
void ahead_note(struct ahead *a, struct segment *seg, int64_t slot);

/* Stops the thread and frees; accepts NULL and clears the caller's pointer. */
void ahead_stop(struct ahead **a);

#endif
