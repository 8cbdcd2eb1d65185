/* A tiny unit-test runner: CHECK records a failure and goes on; each
 * test_<module>.c exposes one suite function that main.c calls. */
#ifndef AM_TEST_H
#define AM_TEST_H

#include <stdio.h>
#include <string.h>

extern int am_test_failed_checks;
extern int am_test_passed, am_test_failed;

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "    FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
			am_test_failed_checks++;                                             \
		}                                                                            \
	} while (0)
#define CHECK_STR(a, b)                                                                      \
	do {                                                                                 \
		const char *a_ = (a), *b_ = (b);                                             \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                     \
			fprintf(stderr, "    FAIL %s:%d: %s == \"%s\" (got \"%s\")\n", __FILE__, \
				__LINE__, #a, b_ ? b_ : "(null)", a_ ? a_ : "(null)");       \
			am_test_failed_checks++;                                             \
		}                                                                            \
	} while (0)
#define CHECK_INT(a, b)                                                                      \
	do {                                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);                          \
		if (a_ != b_) {                                                              \
			fprintf(stderr, "    FAIL %s:%d: %s == %lld (got %lld)\n", __FILE__,     \
				__LINE__, #a, b_, a_);                                       \
			am_test_failed_checks++;                                             \
		}                                                                            \
	} while (0)

/* Runs one test function and counts it. */
#define RUN(fn)                                                                              \
	do {                                                                                 \
		int before_ = am_test_failed_checks;                                         \
		fn();                                                                        \
		if (am_test_failed_checks == before_) {                                      \
			am_test_passed++;                                                    \
			printf("ok   %s\n", #fn);                                                \
		} else {                                                                     \
			am_test_failed++;                                                    \
			printf("FAIL %s\n", #fn);                                                \
		}                                                                            \
	} while (0)

/* The path of a file under tests/fixtures (tests run from the repo root). */
#define FIXTURE(p) ("tests/fixtures/" p)
char *am_test_read_file(const char *path);

struct am_store;
/* A fresh database in /tmp named after tag and the pid; path gets its name. */
struct am_store *am_test_db_open(const char *tag, char *path, size_t size);
/* Closes it and removes its files. */
void am_test_db_drop(struct am_store *s, const char *path);

#endif
