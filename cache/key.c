#include "cache/key.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct hasher {
	EVP_MD_CTX *ctx;
};

static void h_begin(struct hasher *h, const char *kind)
{
	char hdr[64];
	h->ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
	snprintf(hdr, sizeof(hdr), "hfmount:%s:schema=%d", kind, HF_SCHEMA);
	EVP_DigestUpdate(h->ctx, hdr, strlen(hdr) + 1);
}

/* Length-prefixed so that no two field lists encode alike. */
static void h_field(struct hasher *h, const char *s)
{
	char len[24];
	int n = snprintf(len, sizeof(len), "%zu:", strlen(s));
	EVP_DigestUpdate(h->ctx, len, (size_t)n);
	EVP_DigestUpdate(h->ctx, s, strlen(s));
}

static void h_end(struct hasher *h, struct hf_key *out)
{
	unsigned int n = 0;
	EVP_DigestFinal_ex(h->ctx, out->b, &n);
	EVP_MD_CTX_free(h->ctx);
}

void key_hex(const struct hf_key *k, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[k->b[i] >> 4];
		out[2 * i + 1] = digits[k->b[i] & 15];
	}
	out[64] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int key_from_hex(const char *hex, struct hf_key *k)
{
	for (int i = 0; i < 32; i++) {
		int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		k->b[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void key_image(const char *source_id, int stream, int64_t pts, const char *format_canon,
	       struct hf_key *out)
{
	struct hasher h;
	char num[48];
	h_begin(&h, "image");
	h_field(&h, source_id);
	snprintf(num, sizeof(num), "stream=%d", stream);
	h_field(&h, num);
	snprintf(num, sizeof(num), "pts=%" PRId64, pts);
	h_field(&h, num);
	h_field(&h, format_canon);
	h_end(&h, out);
}

void key_segment(const char *source_id, const char *segment_canon, const char *format_canon,
		 struct hf_key *out)
{
	struct hasher h;
	h_begin(&h, "segment");
	h_field(&h, source_id);
	h_field(&h, segment_canon);
	h_field(&h, format_canon);
	h_end(&h, out);
}

void key_string(const char *kind, const char *s, struct hf_key *out)
{
	struct hasher h;
	h_begin(&h, kind);
	h_field(&h, s);
	h_end(&h, out);
}

int key_file(int fd, struct hf_key *out)
{
	unsigned char buf[1 << 16];
	unsigned int n = 0;
	off_t off = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ret = 0;

	if (!ctx)
		return -ENOMEM;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (;;) {
		ssize_t r = pread(fd, buf, sizeof(buf), off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (r == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)r);
		off += r;
	}
	if (ret == 0)
		EVP_DigestFinal_ex(ctx, out->b, &n);
	EVP_MD_CTX_free(ctx);
	return ret;
}
