/*
 * fuzz.h: what the harnesses share. FUZZ_CHECK aborts (a libFuzzer crash, input saved) when
 * a property the harness checks does not hold; fuzz_file_* hand an input to code that only
 * reads files, through one temp file per process.
 */
#ifndef HF_FUZZ_H
#define HF_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static char fuzz_path[64] __attribute__((unused));
static int fuzz_fd __attribute__((unused)) = -1;

static inline void fuzz_file_remove(void)
{
	if (fuzz_fd >= 0)
		unlink(fuzz_path);
}

/* Creates the temp file (in /dev/shm when there is one: no disk writes per input). */
static inline void fuzz_file_init(void)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(fuzz_path, sizeof(fuzz_path), "%s/hffuzz.XXXXXX", dir);
	fuzz_fd = mkstemp(fuzz_path);
	if (fuzz_fd < 0) {
		perror(fuzz_path);
		abort();
	}
	atexit(fuzz_file_remove);
}

/* Makes the temp file hold exactly data[0..size) and returns its path. */
static inline const char *fuzz_file_write(const uint8_t *data, size_t size)
{
	size_t done = 0;

	if (ftruncate(fuzz_fd, 0) < 0)
		abort();
	while (done < size) {
		ssize_t n = pwrite(fuzz_fd, data + done, size - done, (off_t)done);

		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	return fuzz_path;
}

/* A NUL-terminated copy of the input (the caller frees it). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
