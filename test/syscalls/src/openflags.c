/*
 * openflags: open(2) flags and openat2(2): O_EXCL, O_TRUNC, O_APPEND,
 * O_DIRECTORY, O_NOFOLLOW, O_PATH (what works and what gives EBADF),
 * O_TMPFILE (unnamed files and giving them a name with linkat), and
 * openat2's struct checks and RESOLVE_* flags.
 */
#include "check.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <ftw.h>

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static void rm_tree(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static char base[512];

static const char *P(const char *name)
{
	static char bufs[4][1024];
	static int i;
	char *b = bufs[i++ & 3];
	snprintf(b, sizeof(bufs[0]), "%s/%s", base, name);
	return b;
}

static long openat2_(int dirfd, const char *path, struct open_how *how, size_t size)
{
	return syscall(SYS_openat2, dirfd, path, how, size);
}

static int o2(int dirfd, const char *path, unsigned long long flags, unsigned long long resolve)
{
	struct open_how how = {.flags = flags, .resolve = resolve};
	return openat2_(dirfd, path, &how, sizeof how);
}

static void put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write(fd, s, strlen(s));
	close(fd);
}

static void test_basic_flags(void)
{
	put(P("f"), "hello");
	CHECK_ERR(open(P("f"), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST, "O_EXCL on an existing file");
	symlink("nowhere", P("dangling"));
	CHECK_ERR(open(P("dangling"), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST, "O_EXCL on a dangling symlink");
	int fd = open(P("dangling"), O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0, "O_CREAT through a dangling symlink creates its target");
	close(fd);
	struct stat st;
	CHECK(stat(P("nowhere"), &st) == 0 && S_ISREG(st.st_mode), "target exists");

	fd = open(P("f"), O_RDONLY | O_TRUNC);
	CHECK(fd >= 0, "O_RDONLY|O_TRUNC opens");
	CHECK(fstat(fd, &st) == 0 && st.st_size == 0, "and truncates");
	close(fd);

	put(P("f"), "abc");
	fd = open(P("f"), O_WRONLY | O_APPEND);
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "seek to 0");
	CHECK(write(fd, "de", 2) == 2, "append write");
	CHECK(lseek(fd, 0, SEEK_CUR) == 5, "offset at the end after an appending write");
	CHECK(pwrite(fd, "f", 1, 0) == 1, "pwrite with O_APPEND");
	close(fd);
	char buf[16] = {0};
	fd = open(P("f"), O_RDONLY);
	CHECK(read(fd, buf, sizeof buf) == 6 && memcmp(buf, "abcdef", 6) == 0, "O_APPEND wrote at the end, pwrite too");
	close(fd);
	CHECK(fcntl(open(P("f"), O_WRONLY | O_APPEND), F_GETFL) & O_APPEND, "F_GETFL shows O_APPEND");

	CHECK_ERR(open(P("f"), O_RDONLY | O_DIRECTORY), ENOTDIR, "O_DIRECTORY on a file");
	fd = open(base, O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0, "O_DIRECTORY on a directory");
	close(fd);
	CHECK_ERR(open(P("newdir"), O_CREAT | O_DIRECTORY | O_RDONLY, 0755), EINVAL, "O_CREAT|O_DIRECTORY");
	CHECK_ERR(open(base, O_WRONLY), EISDIR, "directory opened for writing");

	symlink("f", P("lnk"));
	CHECK_ERR(open(P("lnk"), O_RDONLY | O_NOFOLLOW), ELOOP, "O_NOFOLLOW on a final symlink");
	mkdir(P("d"), 0755);
	put(P("d/x"), "x");
	symlink("d", P("dlnk"));
	fd = open(P("dlnk/x"), O_RDONLY | O_NOFOLLOW);
	CHECK(fd >= 0, "O_NOFOLLOW follows symlinks before the last component");
	close(fd);
}

static void test_opath(void)
{
	int fd = open(P("f"), O_PATH);
	CHECK(fd >= 0, "O_PATH open");
	char c;
	CHECK_ERR(read(fd, &c, 1), EBADF, "read on O_PATH");
	CHECK_ERR(write(fd, &c, 1), EBADF, "write on O_PATH");
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), "fstat on O_PATH");
	CHECK(fcntl(fd, F_GETFL) & O_PATH, "F_GETFL shows O_PATH");
	CHECK_ERR(fchmod(fd, 0600), EBADF, "fchmod on O_PATH");
	CHECK_ERR(ioctl(fd, FIONREAD, &c), EBADF, "ioctl on O_PATH");
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED && errno == EBADF, "mmap on O_PATH");
	CHECK_ERR(fgetxattr(fd, "user.x", NULL, 0), EBADF, "fgetxattr on O_PATH");
	CHECK(fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && S_ISREG(st.st_mode), "fstatat AT_EMPTY_PATH on O_PATH");
	int d = dup(fd);
	CHECK(d >= 0, "dup of O_PATH");
	close(d);
	close(fd);

	int dfd = open(P("d"), O_PATH | O_DIRECTORY);
	CHECK(dfd >= 0, "O_PATH|O_DIRECTORY");
	fd = openat(dfd, "x", O_RDONLY);
	CHECK(fd >= 0 && read(fd, &c, 1) == 1 && c == 'x', "openat relative to an O_PATH directory");
	close(fd);
	char cwd[1024];
	getcwd(cwd, sizeof cwd);
	CHECK(fchdir(dfd) == 0, "fchdir to an O_PATH directory");
	CHECK(access("x", F_OK) == 0, "now in it");
	chdir(cwd);
	CHECK_ERR(syscall(SYS_getdents64, dfd, cwd, sizeof cwd), EBADF, "getdents on O_PATH");
	close(dfd);
	CHECK_ERR(open(P("f"), O_PATH | O_DIRECTORY), ENOTDIR, "O_PATH|O_DIRECTORY on a file");

	fd = open(P("lnk"), O_PATH | O_NOFOLLOW);
	CHECK(fd >= 0, "O_PATH|O_NOFOLLOW opens a symlink itself");
	CHECK(fstat(fd, &st) == 0 && S_ISLNK(st.st_mode), "and fstat shows the link");
	char tgt[64] = {0};
	CHECK(readlinkat(fd, "", tgt, sizeof tgt) == 1 && tgt[0] == 'f', "readlinkat(fd, \"\") reads it");
	close(fd);
	/* A file without read permission can still be opened O_PATH. */
	put(P("noperm"), "");
	chmod(P("noperm"), 0);
	fd = open(P("noperm"), O_PATH);
	CHECK(fd >= 0, "O_PATH needs no permission on the file");
	close(fd);
}

static int count_entries(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	char buf[8192];
	int n = 0;
	long r;
	while ((r = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
		for (long off = 0; off < r;) {
			unsigned short reclen = *(unsigned short *)(buf + off + 16);
			n++;
			off += reclen;
		}
	}
	close(fd);
	return n;
}

static void test_tmpfile(void)
{
	mkdir(P("t"), 0755);
	int before = count_entries(P("t"));
	int fd = open(P("t"), O_TMPFILE | O_RDWR, 0600);
	if (fd < 0 && errno == EOPNOTSUPP) {
		printf("note: O_TMPFILE unsupported by the file system of %s\n", base);
		return;
	}
	CHECK(fd >= 0, "O_TMPFILE open");
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 0, "unnamed regular file, nlink 0");
	CHECK((st.st_mode & 0777) == 0600, "mode from the open (umask applied)");
	CHECK(write(fd, "tmp", 3) == 3, "write");
	char rb[4] = {0};
	CHECK(pread(fd, rb, 3, 0) == 3 && memcmp(rb, "tmp", 3) == 0, "read back");
	CHECK(count_entries(P("t")) == before, "not listed in its directory");
	CHECK(linkat(fd, "", AT_FDCWD, P("t/named"), AT_EMPTY_PATH) == 0, "linkat AT_EMPTY_PATH names it");
	CHECK(stat(P("t/named"), &st) == 0 && st.st_size == 3 && st.st_nlink == 1, "named file has the data");
	CHECK(fstat(fd, &st) == 0 && st.st_nlink == 1, "fd sees nlink 1");
	close(fd);

	fd = open(P("t"), O_TMPFILE | O_WRONLY | O_EXCL, 0600);
	CHECK(fd >= 0, "O_TMPFILE|O_EXCL");
	CHECK_ERR(linkat(fd, "", AT_FDCWD, P("t/excl"), AT_EMPTY_PATH), ENOENT, "O_EXCL tmpfile cannot be linked");
	close(fd);

	fd = open(P("t"), O_TMPFILE | O_WRONLY, 0644);
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	CHECK(linkat(AT_FDCWD, proc, AT_FDCWD, P("t/viaproc"), AT_SYMLINK_FOLLOW) == 0,
	      "linkat through /proc/self/fd with AT_SYMLINK_FOLLOW");
	CHECK(stat(P("t/viaproc"), &st) == 0 && S_ISREG(st.st_mode), "linked through /proc");
	close(fd);

	CHECK_ERR(open(P("t"), O_TMPFILE | O_RDONLY, 0600), EINVAL, "O_TMPFILE read-only EINVAL");
	CHECK_ERR(open(P("f"), O_TMPFILE | O_RDWR, 0600), ENOTDIR, "O_TMPFILE on a file ENOTDIR");
	CHECK_ERR(open(P("t"), O_TMPFILE | O_CREAT | O_RDWR, 0600), EINVAL, "O_TMPFILE|O_CREAT EINVAL");
	CHECK_ERR(open(P("missing"), O_TMPFILE | O_RDWR, 0600), ENOENT, "O_TMPFILE in a missing directory");
}

static void test_openat2_struct(void)
{
	int dfd = open(base, O_PATH);
	struct {
		struct open_how how;
		char extra[16];
	} big = {{.flags = O_RDONLY}};
	CHECK_ERR(openat2_(dfd, "f", &big.how, 16), EINVAL, "size smaller than open_how EINVAL");
	CHECK_ERR(openat2_(dfd, "f", &big.how, 8192), E2BIG, "size over a page E2BIG");
	int fd = openat2_(dfd, "f", &big.how, sizeof big);
	CHECK(fd >= 0, "larger struct with zero tail ok");
	close(fd);
	big.extra[3] = 1;
	CHECK_ERR(openat2_(dfd, "f", &big.how, sizeof big), E2BIG, "non-zero unknown fields E2BIG");
	CHECK_ERR(openat2_(dfd, "f", (void *)8, sizeof big.how), EFAULT, "bad pointer EFAULT");
	CHECK_ERR(o2(dfd, "f", 1ULL << 40, 0), EINVAL, "unknown flag bit EINVAL");
	CHECK_ERR(o2(dfd, "f", O_RDONLY, 1 << 10), EINVAL, "unknown resolve bit EINVAL");
	CHECK_ERR(o2(dfd, "f", O_RDONLY, RESOLVE_BENEATH | RESOLVE_IN_ROOT), EINVAL, "BENEATH|IN_ROOT EINVAL");
	struct open_how how = {.flags = O_RDONLY, .mode = 0644};
	CHECK_ERR(openat2_(dfd, "f", &how, sizeof how), EINVAL, "mode without O_CREAT EINVAL");
	how = (struct open_how){.flags = O_CREAT | O_WRONLY, .mode = 010000};
	CHECK_ERR(openat2_(dfd, "f2", &how, sizeof how), EINVAL, "mode with file type bits EINVAL");
	CHECK_ERR(o2(dfd, "f", O_PATH | O_RDWR, 0), EINVAL, "O_PATH with other flags EINVAL");
	how = (struct open_how){.flags = O_CREAT | O_WRONLY, .mode = 0600};
	fd = openat2_(dfd, "created", &how, sizeof how);
	CHECK(fd >= 0, "openat2 O_CREAT");
	close(fd);
	CHECK_ERR(o2(dfd, "f", O_WRONLY | O_TRUNC, RESOLVE_CACHED), EAGAIN, "RESOLVE_CACHED with O_TRUNC EAGAIN");
	fd = o2(dfd, "f", O_RDONLY, RESOLVE_CACHED);
	CHECK(fd >= 0 || errno == EAGAIN, "RESOLVE_CACHED open succeeds or says EAGAIN");
	if (fd >= 0)
		close(fd);
	close(dfd);
}

static void test_resolve(void)
{
	/* base/r/{file, sub/, up -> .., abs -> /, rel -> sub, inner -> /file} */
	mkdir(P("r"), 0755);
	mkdir(P("r/sub"), 0755);
	put(P("r/file"), "r");
	put(P("outside"), "o");
	symlink("..", P("r/up"));
	symlink("/", P("r/abs"));
	symlink("sub", P("r/rel"));
	symlink("/file", P("r/inner"));
	int r = open(P("r"), O_PATH | O_DIRECTORY);
	int fd;

	fd = o2(r, "sub/../file", O_RDONLY, RESOLVE_BENEATH);
	CHECK(fd >= 0, "BENEATH: .. inside the tree ok");
	close(fd);
	CHECK_ERR(o2(r, "../outside", O_RDONLY, RESOLVE_BENEATH), EXDEV, "BENEATH: .. above the start EXDEV");
	CHECK_ERR(o2(r, "/etc", O_RDONLY, RESOLVE_BENEATH), EXDEV, "BENEATH: absolute path EXDEV");
	CHECK_ERR(o2(r, "abs", O_RDONLY, RESOLVE_BENEATH), EXDEV, "BENEATH: absolute symlink EXDEV");
	CHECK_ERR(o2(r, "up/outside", O_RDONLY, RESOLVE_BENEATH), EXDEV, "BENEATH: symlink to .. EXDEV");
	fd = o2(r, "rel", O_RDONLY | O_DIRECTORY, RESOLVE_BENEATH);
	CHECK(fd >= 0, "BENEATH: relative symlink inside ok");
	close(fd);

	char buf[4] = {0};
	fd = o2(r, "/file", O_RDONLY, RESOLVE_IN_ROOT);
	CHECK(fd >= 0 && read(fd, buf, 1) == 1 && buf[0] == 'r', "IN_ROOT: / is the start directory");
	close(fd);
	fd = o2(r, "../../../file", O_RDONLY, RESOLVE_IN_ROOT);
	CHECK(fd >= 0, "IN_ROOT: .. stops at the start directory");
	close(fd);
	fd = o2(r, "inner", O_RDONLY, RESOLVE_IN_ROOT);
	CHECK(fd >= 0 && read(fd, buf, 1) == 1 && buf[0] == 'r', "IN_ROOT: absolute symlink stays inside");
	close(fd);
	CHECK_ERR(o2(r, "up/outside", O_RDONLY, RESOLVE_IN_ROOT), ENOENT, "IN_ROOT: symlink to .. cannot leave");

	CHECK_ERR(o2(r, "rel", O_RDONLY, RESOLVE_NO_SYMLINKS), ELOOP, "NO_SYMLINKS: final symlink ELOOP");
	CHECK_ERR(o2(r, "rel/.", O_RDONLY, RESOLVE_NO_SYMLINKS), ELOOP, "NO_SYMLINKS: inner symlink ELOOP");
	fd = o2(r, "rel", O_PATH | O_NOFOLLOW, RESOLVE_NO_SYMLINKS);
	CHECK(fd >= 0, "NO_SYMLINKS: O_PATH|O_NOFOLLOW on the link itself ok");
	close(fd);

	int f = open(P("r/file"), O_RDONLY);
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", f);
	fd = o2(AT_FDCWD, proc, O_RDONLY, 0);
	CHECK(fd >= 0 && read(fd, buf, 1) == 1 && buf[0] == 'r', "/proc/self/fd/N reopens the file");
	close(fd);
	CHECK_ERR(o2(AT_FDCWD, proc, O_RDONLY, RESOLVE_NO_MAGICLINKS), ELOOP, "NO_MAGICLINKS: ELOOP");
	fd = o2(AT_FDCWD, proc, O_PATH | O_NOFOLLOW, RESOLVE_NO_MAGICLINKS);
	CHECK(fd >= 0, "NO_MAGICLINKS: O_PATH|O_NOFOLLOW on the link itself ok");
	close(fd);
	int self = open("/proc/self", O_PATH | O_DIRECTORY);
	snprintf(proc, sizeof proc, "fd/%d", f);
	CHECK_ERR(o2(self, proc, O_RDONLY, RESOLVE_BENEATH), EXDEV, "BENEATH: magic link EXDEV");
	close(self);
	close(f);

	int root = open("/", O_PATH | O_DIRECTORY);
	CHECK_ERR(o2(root, "proc/self", O_RDONLY | O_DIRECTORY, RESOLVE_NO_XDEV), EXDEV, "NO_XDEV: into a mount EXDEV");
	int procfd = open("/proc", O_PATH | O_DIRECTORY);
	CHECK_ERR(o2(procfd, "../etc", O_RDONLY | O_DIRECTORY, RESOLVE_NO_XDEV), EXDEV, "NO_XDEV: .. out of a mount EXDEV");
	fd = o2(procfd, "self", O_RDONLY | O_DIRECTORY, RESOLVE_NO_XDEV);
	CHECK(fd >= 0, "NO_XDEV: within one mount ok");
	close(fd);
	fd = o2(r, "sub/..", O_RDONLY | O_DIRECTORY, RESOLVE_NO_XDEV);
	CHECK(fd >= 0, "NO_XDEV: .. within one mount ok");
	close(fd);
	close(procfd);
	close(root);
	close(r);
}

int main(void)
{
	check_path(base, sizeof base, "openflags");
	if (mkdir(base, 0755) != 0) {
		perror("mkdir");
		return 1;
	}
	umask(022);
	test_basic_flags();
	test_opath();
	test_tmpfile();
	test_openat2_struct();
	test_resolve();
	chmod(P("noperm"), 0600);
	rm_tree(base);
	return check_summary();
}
