/*
 * mmapshared: file-backed MAP_SHARED mappings are coherent: a store
 * through a mapping is seen by read(2) and by another process's mapping
 * of the same file, write(2) is seen through mappings, msync works and
 * checks its arguments, MAP_PRIVATE copies are private, and access past
 * the end of a truncated file raises SIGBUS.
 */
#include "check.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char path[512];
static sigjmp_buf jb;
static volatile int got_sigbus;

static void on_bus(int sig)
{
	(void)sig;
	got_sigbus = 1;
	siglongjmp(jb, 1);
}

int main(void)
{
	check_path(path, sizeof path, "mmapshared");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && ftruncate(fd, 8192) == 0, "create an 8 KiB file");
	char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "MAP_SHARED mapping");

	memcpy(m + 100, "mapped", 6);
	char buf[16] = {0};
	CHECK(pread(fd, buf, 6, 100) == 6 && memcmp(buf, "mapped", 6) == 0, "store through the mapping seen by read");
	CHECK(pwrite(fd, "written", 7, 4096) == 7 && memcmp(m + 4096, "written", 7) == 0, "write seen through the mapping");

	/* Another process maps the file and sees and makes changes. */
	int p[2];
	pipe(p);
	pid_t pid = check_fork();
	if (pid == 0) {
		int f2 = open(path, O_RDWR);
		char *m2 = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, f2, 0);
		int ok = m2 != MAP_FAILED && memcmp(m2 + 100, "mapped", 6) == 0;
		if (m2 != MAP_FAILED)
			memcpy(m2 + 200, "child", 5);
		write(p[1], &ok, sizeof ok);
		_exit(0);
	}
	int ok = 0;
	read(p[0], &ok, sizeof ok);
	waitpid(pid, NULL, 0);
	CHECK(ok, "another process's mapping sees the store");
	CHECK(memcmp(m + 200, "child", 5) == 0, "its store is seen through this mapping");
	CHECK(pread(fd, buf, 5, 200) == 5 && memcmp(buf, "child", 5) == 0, "and by read");

	/* A shared mapping inherited across fork stays shared. */
	pid = check_fork();
	if (pid == 0) {
		memcpy(m + 300, "forked", 6);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	CHECK(memcmp(m + 300, "forked", 6) == 0, "fork child's store through the inherited mapping");

	char *priv = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(priv != MAP_FAILED && memcmp(priv + 100, "mapped", 6) == 0, "MAP_PRIVATE sees the file");
	memcpy(priv + 100, "PRIVAT", 6);
	CHECK(memcmp(m + 100, "mapped", 6) == 0 && pread(fd, buf, 6, 100) == 6 && memcmp(buf, "mapped", 6) == 0,
	      "private store stays private");
	munmap(priv, 8192);

	CHECK(msync(m, 8192, MS_SYNC) == 0, "msync MS_SYNC");
	CHECK(msync(m, 4096, MS_ASYNC) == 0, "msync MS_ASYNC");
	CHECK(msync(m, 8192, MS_INVALIDATE) == 0, "msync MS_INVALIDATE");
	CHECK_ERR(msync(m + 1, 4096, MS_SYNC), EINVAL, "msync unaligned EINVAL");
	CHECK_ERR(msync(m, 4096, MS_SYNC | MS_ASYNC), EINVAL, "msync SYNC|ASYNC EINVAL");
	CHECK_ERR(msync(m, 4096, 0x100), EINVAL, "msync unknown flag EINVAL");

	/* Mapping needs the right open mode. */
	int ro = open(path, O_RDONLY);
	CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED && errno == EACCES,
	      "writable shared mapping of a read-only fd EACCES");
	char *rp = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
	CHECK(rp != MAP_FAILED, "writable private mapping of a read-only fd");
	munmap(rp, 4096);
	close(ro);

	/* Truncation: the page past EOF raises SIGBUS, the rest still works. */
	CHECK(ftruncate(fd, 4096) == 0, "truncate to one page");
	struct sigaction sa = {.sa_handler = on_bus};
	sigaction(SIGBUS, &sa, NULL);
	got_sigbus = 0;
	if (sigsetjmp(jb, 1) == 0) {
		volatile char c = m[4096 + 10];
		(void)c;
	}
	CHECK(got_sigbus, "access past EOF after truncation raises SIGBUS");
	CHECK(memcmp(m + 100, "mapped", 6) == 0, "the page before EOF still maps");
	CHECK(ftruncate(fd, 8192) == 0, "grow again");
	got_sigbus = 0;
	if (sigsetjmp(jb, 1) == 0) {
		CHECK(m[4096 + 10] == 0, "regrown page reads zeros");
	}
	CHECK(!got_sigbus, "no SIGBUS after regrowing");
	m[5000] = 'z';
	CHECK(pread(fd, buf, 1, 5000) == 1 && buf[0] == 'z', "store into the regrown page reaches the file");

	/* Stores reach the file itself: msync(MS_SYNC), then unmapping,
	 * make them visible through another name for it. */
	char link_path[600];
	snprintf(link_path, sizeof link_path, "%s.link", path);
	unlink(link_path);
	CHECK(link(path, link_path) == 0, "hard link to the mapped file");
	memcpy(m + 600, "synced", 6);
	CHECK(msync(m, 4096, MS_SYNC) == 0, "msync after a store");
	int lf = open(link_path, O_RDONLY);
	CHECK(lf >= 0 && pread(lf, buf, 6, 600) == 6 && memcmp(buf, "synced", 6) == 0,
	      "msync'd store read through the hard link");
	close(lf);
	memcpy(m + 700, "unmapped", 8);
	munmap(m, 8192);
	close(fd);
	lf = open(link_path, O_RDONLY);
	CHECK(lf >= 0 && pread(lf, buf, 8, 700) == 8 && memcmp(buf, "unmapped", 8) == 0,
	      "store before munmap read through the hard link");
	close(lf);
	unlink(link_path);
	unlink(path);
	return check_summary();
}
