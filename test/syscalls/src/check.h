/*
 * check.h: the few macros every conformance program shares.
 *
 * Each program runs a list of checks and ends with one line,
 * "N passed, N failed", which the Go harness parses. A failed check prints
 * its own line first so a failure names itself without a debugger. The
 * helpers avoid stdio buffering surprises across fork by flushing before
 * any fork the program makes (see check_fork).
 */
#ifndef VEIL_CHECK_H
#define VEIL_CHECK_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_passed, check_failed;

/* CHECK records one boolean outcome; the errno at the time of a failure is
 * printed because it is usually the most useful clue. */
#define CHECK(cond, name)                                                   \
	do {                                                                \
		int saved_errno_ = errno;                                   \
		if (cond) {                                                 \
			check_passed++;                                     \
		} else {                                                    \
			check_failed++;                                     \
			printf("FAIL: %s (%s:%d, errno=%d %s)\n", (name),   \
			       __FILE__, __LINE__, saved_errno_,            \
			       strerror(saved_errno_));                     \
			fflush(stdout);                                     \
		}                                                           \
		errno = saved_errno_;                                       \
	} while (0)

/* CHECK_ERR asserts that an expression returned -1 with a given errno. */
#define CHECK_ERR(expr, want, name)                                         \
	do {                                                                \
		errno = 0;                                                  \
		long r_ = (long)(expr);                                     \
		int e_ = errno;                                             \
		if (r_ == -1 && e_ == (want)) {                             \
			check_passed++;                                     \
		} else {                                                    \
			check_failed++;                                     \
			printf("FAIL: %s (%s:%d, got %ld errno=%d %s, "     \
			       "want errno=%d %s)\n",                       \
			       (name), __FILE__, __LINE__, r_, e_,          \
			       strerror(e_), (want), strerror(want));       \
			fflush(stdout);                                     \
		}                                                           \
	} while (0)

/* check_tmpdir is where a program may create files: TEST_TMPDIR if set,
 * else /tmp, which is a writable tmpfs inside the sandbox. */
static inline const char *check_tmpdir(void)
{
	const char *d = getenv("TEST_TMPDIR");
	return (d && *d) ? d : "/tmp";
}

/* check_path builds a unique path under the temp dir; the PID keeps
 * concurrent runs of the same program apart. */
static inline void check_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/veil-%d-%s", check_tmpdir(), (int)getpid(), name);
}

/* check_fork flushes stdio before forking so buffered output is not
 * printed twice. */
static inline pid_t check_fork(void)
{
	fflush(stdout);
	fflush(stderr);
	return fork();
}

static inline int check_summary(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	fflush(stdout);
	return check_failed ? 1 : 0;
}

#endif
