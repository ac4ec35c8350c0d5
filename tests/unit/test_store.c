/* Store: atomic puts, manifests that round-trip and refuse zero frames, leftovers cleaned. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/store.h"

#define PNG13 "\x89PNG\r\n\x1a\n12345"
#include "hftest.h"

static char dir[] = "/tmp/hfstoreXXXXXX";

static int count_files(const char *sub)
{
	char path[512];
	DIR *d;
	struct dirent *de;
	int n = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void seen(void *arg, const char *name)
{
	snprintf(arg, 256, "%s", name);
}

int main(void)
{
	struct store *st = NULL;
	struct store_opts so = {.fsync = true};
	struct hf_key k1, k2, sk;
	struct manifest m = {0}, *got = NULL;
	char err[256], path[512], name[256] = "";
	uint64_t size = 0, images, bytes;
	int fd;

	if (!CHECK(mkdtemp(dir) != NULL))
		return hftest_done();
	/* a dead writer's temp file is removed at open; a name that is not hfmount's is not */
	CHECK_EQ_INT(store_open(dir, &so, &st, err, sizeof(err)), 0);
	store_close(&st);
	{
		char host[64] = "";
		pid_t dead = fork();
		if (dead == 0)
			_exit(0);
		waitpid(dead, NULL, 0);
		gethostname(host, sizeof(host) - 1);
		for (char *p = host; *p; p++)
			if (*p == '.' || *p == '/')
				*p = '_';
		snprintf(path, sizeof(path), "%s/tmp/%s.%d.7", dir, host, (int)dead);
		close(open(path, O_CREAT | O_WRONLY, 0644));
	}
	snprintf(path, sizeof(path), "%s/tmp/garbage", dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	CHECK_EQ_INT(store_open(dir, &so, &st, err, sizeof(err)), 0);
	CHECK_EQ_INT(count_files("tmp"), 1);
	CHECK_EQ_INT(unlink(path), 0);
	/* private: 0700 directories, 0600 files */
	{
		struct stat sb;
		CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 07777) == 0700);
		snprintf(path, sizeof(path), "%s/hfmount-store", dir);
		CHECK(stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0600);
	}

	key_string("t", "one", &k1);
	key_string("t", "two", &k2);
	CHECK_EQ_INT(store_image_size(st, &k1, "png", &size), -ENOENT);
	CHECK_EQ_INT(store_image_put(st, &k1, "png", PNG13, 13), 0);
	CHECK_EQ_INT(store_image_put(st, &k1, "png", PNG13, 13), 0); /* idempotent */
	CHECK_EQ_INT(store_image_size(st, &k1, "png", &size), 0);
	CHECK_EQ_INT(size, 13);
	store_usage(st, &images, &bytes);
	CHECK_EQ_INT(images, 1);
	CHECK_EQ_INT(bytes, 13);
	fd = store_image_open(st, &k1, "png", 13);
	CHECK(fd >= 0);
	if (fd >= 0) {
		char b[16] = {0};
		CHECK_EQ_INT(read(fd, b, sizeof(b)), 13);
		CHECK_EQ_STR(b + 8, "12345");
		close(fd);
	}
	/* checked: the wrong size or the wrong header is damage, removed and never served */
	CHECK_EQ_INT(store_image_open(st, &k1, "png", 54374), -ENOENT);
	CHECK_EQ_INT(store_image_size(st, &k1, "png", &size), -ENOENT);
	CHECK_EQ_INT(store_image_put(st, &k1, "png", "12345", 5), 0);
	CHECK_EQ_INT(store_image_open(st, &k1, "png", 0), -ENOENT);
	CHECK_EQ_INT(store_image_size(st, &k1, "png", &size), -ENOENT);
	CHECK_EQ_INT(store_image_put(st, &k1, "jpg", "\xff\xd8\xff\xe0", 4), 0);
	fd = store_image_open(st, &k1, "jpg", 4);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_EQ_INT(store_image_put(st, &k1, "png", PNG13, 13), 0);
	CHECK_EQ_INT(count_files("tmp"), 0);

	/* manifests: written only when every image exists, never with zero frames */
	key_string("t", "segment", &sk);
	m.segment = "we@ird+name.mp4@1.5+2@30";
	m.source = "/videos/we@ird+name.mp4";
	m.identity = "stat:/videos/we@ird+name.mp4:1:2.0";
	m.count = 2;
	m.width = 320;
	m.height = 240;
	strcpy(m.ext, "png");
	m.image = (struct hf_key[]){k1, k2};
	m.size = (uint64_t[]){13, 3};
	m.first = (int64_t[]){0, 1};
	m.nimages = 2;
	CHECK_EQ_INT(store_manifest_put(st, &sk, &m), -ENOENT); /* k2 missing */
	CHECK_EQ_INT(store_image_put(st, &k2, "png", "abc", 3), 0);
	CHECK_EQ_INT(store_manifest_put(st, &sk, &m), 0);
	CHECK_EQ_INT(store_manifest_get(st, m.source, &sk, &got), 0);
	if (CHECK(got != NULL)) {
		CHECK_EQ_STR(got->segment, m.segment);
		CHECK_EQ_STR(got->identity, m.identity);
		CHECK_EQ_INT(got->count, 2);
		CHECK_EQ_INT(got->size[1], 3);
		CHECK(memcmp(&got->image[1], &k2, sizeof(k2)) == 0);
		manifest_free(&got);
		CHECK(got == NULL);
	}
	CHECK_EQ_INT(store_manifest_list(st, m.source, m.identity, seen, name), 0);
	CHECK_EQ_STR(name, m.segment);
	name[0] = 0;
	CHECK_EQ_INT(store_manifest_list(st, m.source, "stat:other", seen, name), 0);
	CHECK_EQ_STR(name, ""); /* a changed source does not list old segments */
	m.count = 0;
	CHECK_EQ_INT(store_manifest_put(st, &sk, &m), -EINVAL);

	/*
	 * A manifest grows with its images, not its slots: 10^7 slots over two images is two
	 * lines; slots map to images by runs. Runs that disagree with the count are refused.
	 */
	{
		struct stat sb;
		char mp[1024], hexp[HF_KEY_HEXLEN + 1], hexs[HF_KEY_HEXLEN + 1];
		struct hf_key pk, big;
		key_string("t", "big", &big);
		m.count = 10000000;
		m.first = (int64_t[]){0, 9999999};
		CHECK_EQ_INT(store_manifest_put(st, &big, &m), 0);
		key_string("path", m.source, &pk);
		key_hex(&pk, hexp);
		key_hex(&big, hexs);
		snprintf(mp, sizeof(mp), "%s/seg/%.32s/%s.seg", dir, hexp, hexs);
		CHECK(stat(mp, &sb) == 0 && sb.st_size < 1000);
		CHECK_EQ_INT(store_manifest_get(st, m.source, &big, &got), 0);
		if (CHECK(got != NULL)) {
			CHECK_EQ_INT(got->count, 10000000);
			CHECK_EQ_INT(got->nimages, 2);
			CHECK_EQ_INT(manifest_image_of(got, 0), 0);
			CHECK_EQ_INT(manifest_image_of(got, 9999998), 0);
			CHECK_EQ_INT(manifest_image_of(got, 9999999), 1);
			manifest_free(&got);
		}
		m.first = (int64_t[]){0, 10000000}; /* past the last slot */
		CHECK_EQ_INT(store_manifest_put(st, &big, &m), -EINVAL);
		m.first = (int64_t[]){1, 2}; /* slot 0 shows nothing */
		CHECK_EQ_INT(store_manifest_put(st, &big, &m), -EINVAL);
		m.first = (int64_t[]){0, 1};
		m.count = 2;
		/* schema 1 (a line per slot) is still read, as runs */
		{
			FILE *f = fopen(mp, "w");
			char h1[HF_KEY_HEXLEN + 1], h2[HF_KEY_HEXLEN + 1];
			key_hex(&k1, h1);
			key_hex(&k2, h2);
			fprintf(f,
				"hfmount-manifest 1\nsegment a\nsource %s\nidentity x\ncount 4\n"
				"width 2\nheight 2\next png\n%s 13\n%s 13\n%s 13\n%s 3\nend\n",
				m.source, h1, h1, h1, h2);
			fclose(f);
		}
		CHECK_EQ_INT(store_manifest_get(st, m.source, &big, &got), 0);
		if (CHECK(got != NULL)) {
			CHECK_EQ_INT(got->count, 4);
			CHECK_EQ_INT(got->nimages, 2);
			CHECK_EQ_INT(got->first[1], 3);
			CHECK_EQ_INT(manifest_image_of(got, 2), 0);
			CHECK_EQ_INT(manifest_image_of(got, 3), 1);
			CHECK_EQ_INT(got->size[1], 3);
			manifest_free(&got);
		}
		unlink(mp);
	}

	/* a damaged manifest is not a hit */
	{
		char hexp[HF_KEY_HEXLEN + 1];
		struct hf_key pk;
		FILE *f;
		DIR *d;
		struct dirent *de;
		key_string("path", m.source, &pk);
		key_hex(&pk, hexp);
		snprintf(path, sizeof(path), "%s/seg/%.32s", dir, hexp);
		d = opendir(path);
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.') {
				char p2[1024];
				snprintf(p2, sizeof(p2), "%s/%s", path, de->d_name);
				f = fopen(p2, "w");
				fputs("hfmount-manifest 1\nsegment x\n", f);
				fclose(f);
			}
		if (d)
			closedir(d);
		CHECK_EQ_INT(store_manifest_get(st, m.source, &sk, &got), -EINVAL);
		CHECK_EQ_INT(store_manifest_get(st, m.source, &sk, &got), -ENOENT);
	}
	store_close(&st);
	CHECK(st == NULL);
	store_close(&st);

	/* a store of another schema is refused */
	snprintf(path, sizeof(path), "%s/hfmount-store", dir);
	{
		FILE *f = fopen(path, "w");
		fputs("hfmount store schema 999\n", f);
		fclose(f);
	}
	CHECK(store_open(dir, &so, &st, err, sizeof(err)) < 0);
	CHECK(strstr(err, "schema") != NULL);

	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		CHECK_EQ_INT(system(cmd), 0);
	}
	return hftest_done();
}
