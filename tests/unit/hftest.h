/*
 * hftest: the smallest assertion kit for the unit tests. Header only; each test
 * program includes it once and ends main() with `return hftest_done();`.
 *
 * CHECK(cond)            counts a pass, or prints "file:line: CHECK(cond) failed".
 * CHECK_EQ_INT(a, b)     compares as long long and prints both values on failure.
 * CHECK_EQ_STR(a, b)     compares with strcmp (NULL equals only NULL).
 * hftest_done()          prints "N passed, M failed"; returns 0 iff M == 0.
 *
 * Each macro evaluates to true when the check passed, so a test can stop early:
 *	if (!CHECK(f != NULL)) return;
 */
#ifndef HF_TEST_H
#define HF_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int hftest_passed;
static int hftest_failed;

static inline bool hftest_check(bool ok, const char *file, int line, const char *expr)
{
	if (ok) {
		hftest_passed++;
	} else {
		hftest_failed++;
		fprintf(stderr, "%s:%d: CHECK(%s) failed\n", file, line, expr);
	}
	return ok;
}

static inline bool hftest_check_int(long long a, long long b, const char *file, int line,
				    const char *ea, const char *eb)
{
	if (a == b) {
		hftest_passed++;
		return true;
	}
	hftest_failed++;
	fprintf(stderr, "%s:%d: CHECK_EQ_INT(%s, %s) failed: %lld != %lld\n", file, line, ea, eb, a,
		b);
	return false;
}

static inline bool hftest_check_str(const char *a, const char *b, const char *file, int line,
				    const char *ea, const char *eb)
{
	if ((a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0)) {
		hftest_passed++;
		return true;
	}
	hftest_failed++;
	fprintf(stderr, "%s:%d: CHECK_EQ_STR(%s, %s) failed: \"%s\" != \"%s\"\n", file, line, ea,
		eb, a ? a : "(null)", b ? b : "(null)");
	return false;
}

static inline int hftest_done(void)
{
	printf("%d passed, %d failed\n", hftest_passed, hftest_failed);
	return hftest_failed == 0 ? 0 : 1;
}

#define CHECK(cond) hftest_check(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ_INT(a, b)                                                                         \
	hftest_check_int((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_EQ_STR(a, b) hftest_check_str((a), (b), __FILE__, __LINE__, #a, #b)

#endif
