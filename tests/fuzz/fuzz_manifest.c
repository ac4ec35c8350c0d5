/*
 * fuzz_manifest: manifest_read on any file, as the store and gc read a segment's manifest.
 * A manifest it accepts holds values in range and survives a round trip through the store's
 * own writer (store_partial_put into a scratch store): read back, it has the same values.
 *
 *   tests/fuzz/corpus/manifest: manifests the program wrote (png and jpg segments, names
 *   with '%', '@' and newlines, a partial one) and near misses.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/key.h"
#include "cache/store.h"
#include "fuzz.h"

static char scratch_dir[64];
static struct store *store;

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[PATH_MAX];

	if (!d) {
		unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		remove_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

static void remove_store(void)
{
	store_close(&store);
	remove_tree(scratch_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	fuzz_file_init();
	snprintf(scratch_dir, sizeof(scratch_dir), "%s/hffuzz-store.XXXXXX", dir);
	if (!mkdtemp(scratch_dir) || store_open(scratch_dir, NULL, &store, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", scratch_dir, err);
		abort();
	}
	atexit(remove_store);
	return 0;
}

/* The one manifest file under STORE/seg/ (whatever the layout names it); NULL if none. */
static bool find_written(char *path, size_t len)
{
	char seg[PATH_MAX], sub[PATH_MAX];
	DIR *d, *s;
	struct dirent *de, *fe;
	bool found = false;

	snprintf(seg, sizeof(seg), "%s/seg", scratch_dir);
	if (!(d = opendir(seg)))
		return false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", seg, de->d_name);
		if (!(s = opendir(sub)))
			continue;
		while ((fe = readdir(s)))
			if (fe->d_name[0] != '.') {
				snprintf(path, len, "%s/%s", sub, fe->d_name);
				found = true;
				break;
			}
		closedir(s);
	}
	closedir(d);
	return found;
}

static bool same_manifest(const struct manifest *a, const struct manifest *b)
{
	return strcmp(a->segment, b->segment) == 0 && strcmp(a->source, b->source) == 0 &&
	       strcmp(a->identity, b->identity) == 0 && a->count == b->count &&
	       a->width == b->width && a->height == b->height && strcmp(a->ext, b->ext) == 0 &&
	       a->nimages == b->nimages &&
	       memcmp(a->image, b->image, a->nimages * sizeof(*a->image)) == 0 &&
	       memcmp(a->size, b->size, a->nimages * sizeof(*a->size)) == 0 &&
	       memcmp(a->first, b->first, a->nimages * sizeof(*a->first)) == 0;
}

/* Runs of slots as store.h describes them, and manifest_image_of finding them. */
static void check_runs(const struct manifest *m)
{
	FUZZ_CHECK(m->count > 0 && m->nimages >= 1 && m->nimages <= (uint64_t)m->count);
	FUZZ_CHECK(m->image && m->size && m->first && m->first[0] == 0);
	for (size_t i = 0; i < m->nimages; i++) {
		int64_t end = i + 1 < m->nimages ? m->first[i + 1] : m->count;

		FUZZ_CHECK(m->first[i] < end && end <= m->count);
		if (i < 64 || i + 64 > m->nimages) {
			FUZZ_CHECK(manifest_image_of(m, m->first[i]) == i);
			FUZZ_CHECK(manifest_image_of(m, end - 1) == i);
		}
	}
}

static void check_round_trip(const struct manifest *m)
{
	struct manifest *back = NULL;
	struct hf_key segkey;
	char path[PATH_MAX], seg[PATH_MAX];
	int ret;

	key_string("fuzz", "segment", &segkey);
	ret = store_partial_put(store, &segkey, m);
	if (ret == -ENAMETOOLONG)
		return;
	FUZZ_CHECK(ret == 0);
	FUZZ_CHECK(find_written(path, sizeof(path)));
	ret = manifest_read(path, &back);
	if (ret != 0)
		fprintf(stderr, "the store's own manifest does not read back: %d\n", ret);
	FUZZ_CHECK(ret == 0 && back != NULL);
	FUZZ_CHECK(same_manifest(m, back));
	manifest_free(&back);
	snprintf(seg, sizeof(seg), "%s/seg", scratch_dir);
	remove_tree(seg);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest *m = NULL;
	int ret;

	ret = manifest_read(fuzz_file_write(data, size), &m);
	if (ret < 0) {
		FUZZ_CHECK(ret == -EINVAL || ret == -ENOMEM);
		FUZZ_CHECK(m == NULL);
		return 0;
	}
	FUZZ_CHECK(m != NULL && m->segment && m->source && m->identity);
	check_runs(m);
	FUZZ_CHECK(memchr(m->ext, '\0', sizeof(m->ext)) != NULL);
	check_round_trip(m);
	manifest_free(&m);
	FUZZ_CHECK(m == NULL);
	return 0;
}
