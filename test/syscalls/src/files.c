/*
 * files: open flags, lseek, positional and vectored I/O, stat, the
 * directory operations, getdents64, chdir/getcwd, dup family, fcntl and
 * the errnos Linux documents for the common mistakes.
 *
 * Everything happens inside a fresh directory under TEST_TMPDIR (or /tmp).
 */
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

static char base[512];

/* P joins a name to the base directory. It rotates through a few static
 * buffers so that two results can be passed to one call; keep a result
 * longer than that with strdup. */
static const char *P(const char *name)
{
	static char bufs[4][1024];
	static int i;
	char *b = bufs[i++ & 3];
	snprintf(b, sizeof(bufs[0]), "%s/%s", base, name);
	return b;
}

static ssize_t read_all(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, n);
	close(fd);
	return r;
}

/* dir_has lists a directory with raw getdents64 and looks for a name. */
static int dir_has(const char *dir, const char *name, int *count)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	char buf[4096];
	int found = 0, n = 0;
	for (;;) {
		long r = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		for (long off = 0; off < r;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			n++;
			if (strcmp(d->d_name, name) == 0)
				found = 1;
			off += d->d_reclen;
		}
	}
	close(fd);
	if (count)
		*count = n;
	return found;
}

int main(void)
{
	check_path(base, sizeof(base), "files");
	CHECK(mkdir(base, 0755) == 0, "mkdir test base");

	/* open flags. */
	const char *f = strdup(P("a"));
	CHECK_ERR(open(f, O_RDONLY), ENOENT, "open missing file ENOENT");
	int fd = open(f, O_RDWR | O_CREAT | O_EXCL, 0640);
	CHECK(fd >= 0, "O_CREAT|O_EXCL creates");
	CHECK_ERR(open(f, O_RDWR | O_CREAT | O_EXCL, 0640), EEXIST, "O_EXCL on existing EEXIST");
	CHECK(write(fd, "hello world", 11) == 11, "write 11 bytes");
	close(fd);
	fd = open(f, O_RDWR | O_TRUNC);
	struct stat st;
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0, "O_TRUNC empties file");
	CHECK(write(fd, "0123456789", 10) == 10, "rewrite");
	close(fd);
	fd = open(f, O_WRONLY | O_APPEND);
	lseek(fd, 0, SEEK_SET);
	CHECK(write(fd, "AB", 2) == 2, "append write");
	CHECK(lseek(fd, 0, SEEK_CUR) == 12, "O_APPEND writes at end");
	close(fd);
	char buf[256] = {0};
	CHECK(read_all(f, buf, sizeof(buf)) == 12 && memcmp(buf, "0123456789AB", 12) == 0, "contents after append");
	fd = open(f, O_RDONLY);
	CHECK_ERR(write(fd, "x", 1), EBADF, "write to O_RDONLY fd EBADF");
	close(fd);
	fd = open(f, O_WRONLY);
	CHECK_ERR(read(fd, buf, 1), EBADF, "read from O_WRONLY fd EBADF");
	close(fd);
	CHECK_ERR(open(f, O_RDONLY | O_DIRECTORY), ENOTDIR, "O_DIRECTORY on file ENOTDIR");
	CHECK_ERR(open(base, O_WRONLY), EISDIR, "open dir for writing EISDIR");
	fd = open(base, O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0, "O_DIRECTORY on dir");
	CHECK_ERR(read(fd, buf, 1), EISDIR, "read on directory EISDIR");
	close(fd);
	char sub[1100];
	snprintf(sub, sizeof(sub), "%s/x", f);
	CHECK_ERR(open(sub, O_RDONLY), ENOTDIR, "file as path component ENOTDIR");
	CHECK_ERR(open(f, O_RDONLY | O_CREAT | O_EXCL, 0600), EEXIST, "O_EXCL read-only EEXIST");
	char longname[NAME_MAX + 10];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	CHECK_ERR(open(P(longname), O_RDONLY | O_CREAT, 0600), ENAMETOOLONG, "long name ENAMETOOLONG");
	fd = open(f, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "O_CLOEXEC sets FD_CLOEXEC");
	close(fd);

	/* lseek. */
	fd = open(f, O_RDWR);
	CHECK(lseek(fd, 3, SEEK_SET) == 3, "SEEK_SET");
	CHECK(read(fd, buf, 2) == 2 && memcmp(buf, "34", 2) == 0, "read after seek");
	CHECK(lseek(fd, 2, SEEK_CUR) == 7, "SEEK_CUR");
	CHECK(lseek(fd, -2, SEEK_END) == 10, "SEEK_END");
	CHECK_ERR(lseek(fd, -100, SEEK_SET), EINVAL, "negative seek EINVAL");
	CHECK_ERR(lseek(fd, 0, 42), EINVAL, "bad whence EINVAL");
	CHECK(lseek(fd, 100, SEEK_SET) == 100 && write(fd, "Z", 1) == 1, "write past end");
	fstat(fd, &st);
	CHECK(st.st_size == 101, "sparse extension size");
	CHECK(pread(fd, buf, 3, 50) == 3 && buf[0] == 0 && buf[1] == 0 && buf[2] == 0, "hole reads zero");
	CHECK(read(fd, buf, 10) == 0, "read at EOF returns 0");

	/* pread/pwrite leave the offset alone. */
	lseek(fd, 5, SEEK_SET);
	CHECK(pwrite(fd, "PW", 2, 0) == 2, "pwrite");
	CHECK(pread(fd, buf, 2, 0) == 2 && memcmp(buf, "PW", 2) == 0, "pread sees pwrite");
	CHECK(lseek(fd, 0, SEEK_CUR) == 5, "pread/pwrite keep offset");
	CHECK_ERR(pread(fd, buf, 1, -1), EINVAL, "pread negative offset EINVAL");

	/* readv/writev gather and scatter in order. */
	struct iovec wv[3] = {{"one", 3}, {"", 0}, {"three", 5}};
	lseek(fd, 0, SEEK_SET);
	CHECK(writev(fd, wv, 3) == 8, "writev 8 bytes");
	char r1[4] = {0}, r2[5] = {0};
	struct iovec rv[2] = {{r1, 3}, {r2, 5}};
	lseek(fd, 0, SEEK_SET);
	CHECK(readv(fd, rv, 2) == 8 && memcmp(r1, "one", 3) == 0 && memcmp(r2, "three", 5) == 0, "readv scatters");
	CHECK_ERR(syscall(SYS_readv, fd, rv, -1), EINVAL, "readv negative count EINVAL");
	close(fd);

	/* stat fields. */
	CHECK(stat(f, &st) == 0, "stat");
	CHECK(S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0640, "stat mode regular 0640 (umask 022 aside)");
	CHECK(st.st_nlink == 1 && st.st_size == 101, "stat nlink and size");
	CHECK(st.st_uid == geteuid() && st.st_gid == getegid(), "stat owner is creator");
	CHECK(st.st_blksize > 0 && st.st_ino != 0, "stat blksize and ino");
	struct stat st2;
	fd = open(f, O_RDONLY);
	CHECK(fstat(fd, &st2) == 0 && st2.st_ino == st.st_ino && st2.st_dev == st.st_dev, "fstat matches stat");
	close(fd);
	CHECK(stat(base, &st2) == 0 && S_ISDIR(st2.st_mode) && st2.st_nlink >= 2, "stat directory");
	CHECK(chmod(f, 0600) == 0 && stat(f, &st) == 0 && (st.st_mode & 0777) == 0600, "chmod");
	CHECK(truncate(f, 4) == 0 && stat(f, &st) == 0 && st.st_size == 4, "truncate");

	/* Directories. */
	const char *d = strdup(P("dir"));
	CHECK(mkdir(d, 0755) == 0, "mkdir");
	CHECK_ERR(mkdir(d, 0755), EEXIST, "mkdir existing EEXIST");
	CHECK_ERR(mkdir(P("no/such"), 0755), ENOENT, "mkdir missing parent ENOENT");
	char inner[1100];
	snprintf(inner, sizeof(inner), "%s/inner", d);
	fd = open(inner, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK_ERR(rmdir(d), ENOTEMPTY, "rmdir non-empty ENOTEMPTY");
	CHECK_ERR(rmdir(f), ENOTDIR, "rmdir on file ENOTDIR");
	CHECK_ERR(unlink(d), EISDIR, "unlink directory EISDIR");
	int nent = 0;
	CHECK(dir_has(d, "inner", &nent) == 1 && nent == 3, "getdents64 lists ., .. and inner");
	CHECK(dir_has(base, "a", NULL) == 1 && dir_has(base, "dir", NULL) == 1, "getdents64 lists base");
	CHECK(unlink(inner) == 0, "unlink");
	CHECK(dir_has(d, "inner", &nent) == 0 && nent == 2, "unlinked name gone");
	CHECK_ERR(unlink(inner), ENOENT, "unlink missing ENOENT");
	CHECK(rmdir(d) == 0, "rmdir empty");
	CHECK_ERR(stat(d, &st), ENOENT, "rmdir'd dir gone");

	/* rename. */
	const char *g = strdup(P("b"));
	CHECK(rename(f, g) == 0, "rename");
	CHECK_ERR(stat(f, &st), ENOENT, "old name gone after rename");
	CHECK(stat(g, &st) == 0 && st.st_size == 4, "new name present");
	fd = open(f, O_CREAT | O_WRONLY, 0600);
	write(fd, "new", 3);
	close(fd);
	CHECK(rename(f, g) == 0, "rename over existing file");
	CHECK(read_all(g, buf, sizeof(buf)) == 3 && memcmp(buf, "new", 3) == 0, "rename replaced target");
	mkdir(d, 0755);
	CHECK_ERR(rename(g, d), EISDIR, "rename file over dir EISDIR");
	CHECK_ERR(rename(d, g), ENOTDIR, "rename dir over file ENOTDIR");
	mkdir(P("d2"), 0755);
	CHECK(rename(d, P("d2")) == 0, "rename dir over empty dir");
	CHECK_ERR(rename(P("nothere"), g), ENOENT, "rename missing ENOENT");

	/* link/symlink/readlink. */
	CHECK(link(g, P("hard")) == 0, "link");
	CHECK(stat(g, &st) == 0 && st.st_nlink == 2, "link bumps nlink");
	CHECK(stat(P("hard"), &st2) == 0 && st2.st_ino == st.st_ino, "hard link shares inode");
	CHECK_ERR(link(g, P("hard")), EEXIST, "link existing EEXIST");
	CHECK(symlink("b", P("sym")) == 0, "symlink");
	ssize_t n = readlink(P("sym"), buf, sizeof(buf));
	CHECK(n == 1 && buf[0] == 'b', "readlink returns target without NUL");
	CHECK(lstat(P("sym"), &st) == 0 && S_ISLNK(st.st_mode), "lstat sees link");
	CHECK(stat(P("sym"), &st) == 0 && S_ISREG(st.st_mode), "stat follows link");
	CHECK_ERR(readlink(g, buf, sizeof(buf)), EINVAL, "readlink on file EINVAL");
	CHECK_ERR(open(P("sym"), O_RDONLY | O_NOFOLLOW), ELOOP, "O_NOFOLLOW on symlink ELOOP");
	symlink("loop1", P("loop2"));
	symlink("loop2", P("loop1"));
	CHECK_ERR(open(P("loop1"), O_RDONLY), ELOOP, "symlink loop ELOOP");
	symlink("nowhere", P("dangling"));
	CHECK_ERR(stat(P("dangling"), &st), ENOENT, "dangling symlink ENOENT");

	/* chdir/getcwd and relative paths. */
	char cwd[PATH_MAX], old[PATH_MAX];
	CHECK(getcwd(old, sizeof(old)) != NULL, "getcwd");
	CHECK(chdir(base) == 0, "chdir");
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd after chdir");
	char realbase[PATH_MAX];
	CHECK(realpath(base, realbase) && strcmp(cwd, realbase) == 0, "getcwd equals chdir target");
	CHECK(read_all("b", buf, sizeof(buf)) == 3, "relative open after chdir");
	CHECK_ERR(chdir("b"), ENOTDIR, "chdir to file ENOTDIR");
	CHECK_ERR(syscall(SYS_getcwd, cwd, 1), ERANGE, "getcwd small buffer ERANGE");
	CHECK(chdir("..") == 0, "chdir ..");
	fd = open(base, O_RDONLY | O_DIRECTORY);
	CHECK(fchdir(fd) == 0 && getcwd(cwd, sizeof(cwd)) && strcmp(cwd, realbase) == 0, "fchdir");
	CHECK(openat(fd, "b", O_RDONLY) >= 0, "openat relative to dirfd");
	chdir(old);

	/* dup family and fcntl. */
	int a = open(g, O_RDONLY);
	int b = dup(a);
	CHECK(b > a, "dup returns a new fd");
	lseek(a, 1, SEEK_SET);
	CHECK(lseek(b, 0, SEEK_CUR) == 1, "dup shares the file offset");
	CHECK(dup2(a, 100) == 100, "dup2 to chosen fd");
	CHECK(dup2(a, a) == a, "dup2 same fd returns it");
	CHECK_ERR(dup3(a, a, 0), EINVAL, "dup3 same fd EINVAL");
	CHECK(dup3(a, 101, O_CLOEXEC) == 101 && (fcntl(101, F_GETFD) & FD_CLOEXEC), "dup3 O_CLOEXEC");
	CHECK(!(fcntl(100, F_GETFD) & FD_CLOEXEC), "dup2 clears CLOEXEC");
	CHECK(fcntl(a, F_DUPFD, 200) >= 200, "F_DUPFD lowest at or above");
	CHECK(fcntl(a, F_DUPFD_CLOEXEC, 0) >= 0, "F_DUPFD_CLOEXEC");
	CHECK((fcntl(a, F_GETFL) & O_ACCMODE) == O_RDONLY, "F_GETFL access mode");
	CHECK(fcntl(a, F_SETFL, O_NONBLOCK | O_APPEND) == 0 && (fcntl(a, F_GETFL) & O_NONBLOCK), "F_SETFL O_NONBLOCK");
	CHECK(fcntl(b, F_GETFL) & O_NONBLOCK, "status flags shared by dup");
	CHECK(fcntl(a, F_SETFD, FD_CLOEXEC) == 0 && !(fcntl(b, F_GETFD) & FD_CLOEXEC), "fd flags not shared by dup");
	close(a);
	CHECK(read(b, buf, 1) == 1, "dup survives close of original");
	close(b);
	CHECK_ERR(close(b), EBADF, "close closed fd EBADF");
	CHECK_ERR(read(9999, buf, 1), EBADF, "read bad fd EBADF");
	CHECK_ERR(dup(-1), EBADF, "dup -1 EBADF");
	CHECK_ERR(dup2(0, -1), EBADF, "dup2 to -1 EBADF");
	CHECK_ERR(fcntl(9999, F_GETFD), EBADF, "fcntl bad fd EBADF");
	CHECK_ERR(fstat(9999, &st), EBADF, "fstat bad fd EBADF");

	/* EFAULT for bad pointers: the kernel reports it, never crashes us. */
	fd = open(g, O_RDONLY);
	CHECK_ERR(syscall(SYS_read, fd, (void *)1, 1), EFAULT, "read into bad pointer EFAULT");
	CHECK_ERR(syscall(SYS_open, (char *)1, O_RDONLY), EFAULT, "open bad path pointer EFAULT");
	CHECK_ERR(syscall(SYS_stat, g, (struct stat *)8), EFAULT, "stat bad buffer EFAULT");
	CHECK_ERR(syscall(SYS_fstat, fd, (struct stat *)8), EFAULT, "fstat bad buffer EFAULT");
	CHECK_ERR(syscall(SYS_getcwd, (char *)8, 100), EFAULT, "getcwd bad buffer EFAULT");
	int wfd = open(g, O_WRONLY);
	CHECK_ERR(syscall(SYS_write, wfd, (void *)8, 1), EFAULT, "write from bad pointer EFAULT");
	close(wfd);
	close(fd);

	/* Clean up; each step checked so leftovers show up as failures. */
	const char *names[] = {"b", "hard", "sym", "loop1", "loop2", "dangling"};
	int clean = 1;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		clean = clean && unlink(P(names[i])) == 0;
	clean = clean && rmdir(P("d2")) == 0 && rmdir(base) == 0;
	CHECK(clean, "cleanup removes everything");

	return check_summary();
}
