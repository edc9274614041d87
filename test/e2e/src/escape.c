/* Escape attempts run inside a sandbox by test/e2e/escape_test.go. Each
 * mode tries to reach a file outside the container's mounts and prints
 * whatever it manages to read, so the test can look for the host canary's
 * secret in the output.
 *
 *   escape opath PATH       O_PATH (with and without O_NOFOLLOW), then
 *                           reopen through /proc/self/fd/N and read
 *   escape read PATH...     open and read each path
 *   escape race DIR SECS    one thread swaps DIR/d (a directory) with
 *                           DIR/s (a symlink) by renames in a loop while
 *                           another opens DIR/d/canary and reads it
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void dump(const char *what, int fd) {
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		printf("%s: read: %s\n", what, strerror(errno));
		return;
	}
	buf[n] = 0;
	printf("%s: read %zd bytes: %s\n", what, n, buf);
}

static void readpath(const char *p) {
	int fd = open(p, O_RDONLY);
	if (fd < 0) {
		printf("%s: open: %s\n", p, strerror(errno));
		return;
	}
	dump(p, fd);
	close(fd);
}

static void opath(const char *p) {
	int flags[] = {O_PATH, O_PATH | O_NOFOLLOW};
	for (int i = 0; i < 2; i++) {
		int fd = open(p, flags[i]);
		if (fd < 0) {
			printf("%s (O_PATH%s): %s\n", p, i ? "|O_NOFOLLOW" : "", strerror(errno));
			continue;
		}
		char link[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		int rfd = open(link, O_RDONLY);
		if (rfd < 0) {
			printf("%s via %s: %s\n", p, link, strerror(errno));
		} else {
			dump(link, rfd);
			close(rfd);
		}
		/* openat relative to the O_PATH FD, with ".." */
		rfd = openat(fd, "../../../../../../../../canary", O_RDONLY);
		if (rfd >= 0) {
			dump("openat(O_PATH fd, ../..)", rfd);
			close(rfd);
		}
		close(fd);
	}
}

static const char *dir;
static volatile int stop;

static void *swapper(void *arg) {
	char d[4096], s[4096], t[4096];
	snprintf(d, sizeof(d), "%s/d", dir);
	snprintf(s, sizeof(s), "%s/s", dir);
	snprintf(t, sizeof(t), "%s/t", dir);
	while (!stop) {
		rename(d, t); /* the directory aside */
		rename(s, d); /* the symlink where the directory was */
		rename(d, s); /* and back */
		rename(t, d);
	}
	return NULL;
}

static int race(int secs) {
	pthread_t th;
	if (pthread_create(&th, NULL, swapper, NULL) != 0) {
		printf("pthread_create failed\n");
		return 1;
	}
	char p[4096];
	snprintf(p, sizeof(p), "%s/d/canary", dir);
	long opens = 0, decoys = 0, leaks = 0;
	time_t end = time(NULL) + secs;
	while (time(NULL) < end) {
		int fd = open(p, O_RDONLY);
		if (fd < 0)
			continue;
		opens++;
		char buf[256];
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n < 0)
			continue;
		buf[n] = 0;
		if (strncmp(buf, "decoy", 5) == 0) {
			decoys++;
		} else {
			leaks++;
			printf("LEAK: %s\n", buf);
		}
	}
	stop = 1;
	pthread_join(th, NULL);
	printf("race: %ld opens, %ld decoys, %ld other\n", opens, decoys, leaks);
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "opath") == 0) {
		for (int i = 2; i < argc; i++)
			opath(argv[i]);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "read") == 0) {
		for (int i = 2; i < argc; i++)
			readpath(argv[i]);
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "race") == 0) {
		dir = argv[2];
		return race(atoi(argv[3]));
	}
	fprintf(stderr, "usage: escape opath|read PATH... | race DIR SECS\n");
	return 2;
}
