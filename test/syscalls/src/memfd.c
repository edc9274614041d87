/*
 * memfd: memfd_create flags and names, read/write/mmap of the file, its
 * /proc/self/fd name, and file seals: F_SEAL_SEAL, SHRINK, GROW, WRITE
 * (EBUSY while a shared writable mapping exists) and FUTURE_WRITE.
 */
#include "check.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

int main(void)
{
	char buf[64], link[512], path[64];
	char longname[300];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	CHECK_ERR(memfd_create(longname, 0), EINVAL, "name longer than 249 is EINVAL");
	longname[249] = 0;
	int lfd = memfd_create(longname, 0);
	CHECK(lfd >= 0, "name of 249 bytes is fine");
	close(lfd);
	CHECK_ERR(memfd_create("x", 0x100), EINVAL, "unknown flag is EINVAL");
	CHECK_ERR(memfd_create((const char *)8, 0), EFAULT, "bad name pointer is EFAULT");

	/* A plain memfd: no sealing. */
	int fd = memfd_create("plain", MFD_CLOEXEC);
	CHECK(fd >= 0, "memfd_create(plain, CLOEXEC)");
	CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "MFD_CLOEXEC sets FD_CLOEXEC");
	CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "memfd is O_RDWR");
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0, "regular file, size 0");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	CHECK(strcmp(link, "/memfd:plain (deleted)") == 0, "fd link is /memfd:plain (deleted)");
	CHECK(write(fd, "hello", 5) == 5, "write");
	CHECK(pread(fd, buf, 5, 0) == 5 && memcmp(buf, "hello", 5) == 0, "read back");
	CHECK(fcntl(fd, F_GET_SEALS) == F_SEAL_SEAL, "without MFD_ALLOW_SEALING: F_SEAL_SEAL");
	CHECK_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EPERM, "adding seals is EPERM");
	CHECK(ftruncate(fd, 4096) == 0, "ftruncate");
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "shared mapping");
	if (p != MAP_FAILED) {
		p[100] = 'Z';
		CHECK(pread(fd, buf, 1, 100) == 1 && buf[0] == 'Z', "write through mapping seen by read");
		munmap(p, 4096);
	}
	close(fd);
	CHECK_ERR(fcntl(0, F_GET_SEALS), EINVAL, "F_GET_SEALS on a non-memfd is EINVAL");

	/* Sealing. */
	fd = memfd_create("sealed", MFD_ALLOW_SEALING);
	CHECK(fd >= 0, "memfd_create(sealed, ALLOW_SEALING)");
	CHECK(fcntl(fd, F_GET_SEALS) == 0, "no seals at first");
	CHECK_ERR(fcntl(fd, F_ADD_SEALS, 0x100), EINVAL, "unknown seal is EINVAL");
	CHECK(ftruncate(fd, 8192) == 0, "size 8192");
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "add F_SEAL_SHRINK");
	CHECK_ERR(ftruncate(fd, 4096), EPERM, "shrink is EPERM");
	CHECK(ftruncate(fd, 12288) == 0, "grow is fine");
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) == 0, "add F_SEAL_GROW");
	CHECK_ERR(ftruncate(fd, 16384), EPERM, "grow is EPERM");
	CHECK(ftruncate(fd, 12288) == 0, "same size is fine");
	CHECK_ERR(pwrite(fd, "x", 1, 12288), EPERM, "write at end is EPERM");
	CHECK(pwrite(fd, "abc", 3, 12285) == 3, "write inside the size");
	CHECK(pwrite(fd, "abcd", 4, 12286) == 2, "write crossing the end is cut short");
	CHECK(fcntl(fd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW), "F_GET_SEALS");

	/* F_SEAL_WRITE: EBUSY while mapped shared writable. */
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "shared writable mapping");
	CHECK_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EBUSY, "F_SEAL_WRITE with writable mapping is EBUSY");
	munmap(p, 4096);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == 0, "F_SEAL_WRITE after munmap");
	CHECK_ERR(write(fd, "x", 1), EPERM, "write is EPERM");
	CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED && errno == EPERM,
	      "shared writable mmap is EPERM");
	char *r = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(r != MAP_FAILED, "shared read-only mmap is fine");
	if (r != MAP_FAILED) {
		CHECK_ERR(mprotect(r, 4096, PROT_READ | PROT_WRITE), EACCES, "mprotect to writable is EACCES");
		munmap(r, 4096);
	}
	char *pv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(pv != MAP_FAILED, "private writable mmap is fine");
	if (pv != MAP_FAILED)
		munmap(pv, 4096);
	CHECK(pread(fd, buf, 3, 12285) == 3 && memcmp(buf, "aab", 3) == 0, "reads still work");

	/* F_SEAL_SEAL: no more seals. */
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL) == 0, "add F_SEAL_SEAL");
	CHECK_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), EPERM, "after F_SEAL_SEAL: EPERM");
	close(fd);

	/* F_SEAL_FUTURE_WRITE: writes refused, existing state kept. */
	fd = memfd_create("future", MFD_ALLOW_SEALING);
	write(fd, "data", 4);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0, "add F_SEAL_FUTURE_WRITE");
	CHECK_ERR(write(fd, "x", 1), EPERM, "write after FUTURE_WRITE is EPERM");
	CHECK(ftruncate(fd, 100) == 0, "ftruncate still allowed");
	CHECK(pread(fd, buf, 4, 0) == 4 && memcmp(buf, "data", 4) == 0, "data kept");

	close(fd);
	return check_summary();
}
