/* Keys: SHA-256 names are deterministic, separate every field, and round-trip as hex. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "cache/key.h"
#include "hftest.h"

static bool same(const struct hf_key *a, const struct hf_key *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

static void test_image_keys(void)
{
	struct hf_key a, b;
	key_image("stat:/v.mp4:10:1.0", 0, 1000, "png:level=1", &a);
	key_image("stat:/v.mp4:10:1.0", 0, 1000, "png:level=1", &b);
	CHECK(same(&a, &b));
	key_image("stat:/v.mp4:10:1.0", 0, 1001, "png:level=1", &b);
	CHECK(!same(&a, &b)); /* another frame */
	key_image("stat:/v.mp4:10:1.0", 1, 1000, "png:level=1", &b);
	CHECK(!same(&a, &b)); /* another stream */
	key_image("stat:/v.mp4:10:1.0", 0, 1000, "png:level=2", &b);
	CHECK(!same(&a, &b)); /* other encoder settings change the bytes */
	key_image("stat:/v.mp4:11:1.0", 0, 1000, "png:level=1", &b);
	CHECK(!same(&a, &b)); /* another source */
	/* field boundaries are not ambiguous */
	key_segment("ab", "c", "png", &a);
	key_segment("a", "bc", "png", &b);
	CHECK(!same(&a, &b));
	/* kinds are separate namespaces */
	key_string("path", "x", &a);
	key_string("index", "x", &b);
	CHECK(!same(&a, &b));
}

static void test_hex(void)
{
	struct hf_key a, b;
	char hex[HF_KEY_HEXLEN + 1];
	key_string("path", "/home/me/clip.mp4", &a);
	key_hex(&a, hex);
	CHECK_EQ_INT(strlen(hex), 64);
	CHECK_EQ_INT(key_from_hex(hex, &b), 0);
	CHECK(same(&a, &b));
	hex[10] = 'g';
	CHECK_EQ_INT(key_from_hex(hex, &b), -EINVAL);
	hex[10] = 'A'; /* only lowercase is produced and accepted */
	CHECK_EQ_INT(key_from_hex(hex, &b), -EINVAL);
}

static void test_file_sha(void)
{
	char path[] = "/tmp/hfkeyXXXXXX";
	int fd = mkstemp(path);
	struct hf_key k;
	char hex[HF_KEY_HEXLEN + 1];
	if (!CHECK(fd >= 0))
		return;
	CHECK_EQ_INT(write(fd, "abc", 3), 3);
	CHECK_EQ_INT(key_file(fd, &k), 0);
	key_hex(&k, hex);
	/* SHA-256("abc"), FIPS 180-2 appendix B.1 */
	CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	close(fd);
	unlink(path);
}

int main(void)
{
	test_image_keys();
	test_hex();
	test_file_sha();
	return hftest_done();
}
