/*
 * xattr: extended attributes on the temp directory's filesystem (tmpfs in
 * the sandbox): set/get/list/remove of user.* and trusted.*, XATTR_CREATE
 * and XATTR_REPLACE, the size protocol (0 asks, too small is ERANGE), the
 * limits (E2BIG, ERANGE for names), ENODATA, namespace rules (user.* only
 * on files and directories, trusted.* only with CAP_SYS_ADMIN, sticky
 * directories) and the l and f variants.
 */
#include "check.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>

static char base[512];

static const char *P(const char *name)
{
	static char bufs[4][1024];
	static int i;
	char *b = bufs[i++ & 3];
	snprintf(b, sizeof(bufs[0]), "%s/%s", base, name);
	return b;
}

static int has_name(const char *list, ssize_t n, const char *name)
{
	for (ssize_t off = 0; off < n; off += strlen(list + off) + 1)
		if (strcmp(list + off, name) == 0)
			return 1;
	return 0;
}

static void test_user(void)
{
	const char *f = P("f");
	char buf[256];
	CHECK(setxattr(f, "user.a", "hello", 5, 0) == 0, "setxattr user.a");
	CHECK(getxattr(f, "user.a", NULL, 0) == 5, "size query");
	memset(buf, 0, sizeof buf);
	CHECK(getxattr(f, "user.a", buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0, "getxattr");
	CHECK_ERR(getxattr(f, "user.a", buf, 3), ERANGE, "buffer too small ERANGE");
	CHECK_ERR(getxattr(f, "user.missing", buf, sizeof buf), ENODATA, "missing ENODATA");
	CHECK_ERR(setxattr(f, "user.a", "x", 1, XATTR_CREATE), EEXIST, "XATTR_CREATE on existing EEXIST");
	CHECK_ERR(setxattr(f, "user.b", "x", 1, XATTR_REPLACE), ENODATA, "XATTR_REPLACE on missing ENODATA");
	CHECK(setxattr(f, "user.a", "bye", 3, XATTR_REPLACE) == 0 && getxattr(f, "user.a", buf, sizeof buf) == 3, "XATTR_REPLACE");
	CHECK(setxattr(f, "user.b", "", 0, XATTR_CREATE) == 0 && getxattr(f, "user.b", buf, sizeof buf) == 0, "empty value");
	CHECK_ERR(setxattr(f, "user.c", "x", 1, 4), EINVAL, "unknown flag EINVAL");

	ssize_t n = listxattr(f, NULL, 0);
	CHECK(n >= (ssize_t)(strlen("user.a") + strlen("user.b") + 2), "listxattr size query");
	char list[1024];
	CHECK(listxattr(f, list, sizeof list) == n && has_name(list, n, "user.a") && has_name(list, n, "user.b"),
	      "listxattr names both");
	CHECK_ERR(listxattr(f, list, 3), ERANGE, "listxattr buffer too small ERANGE");
	CHECK(removexattr(f, "user.b") == 0, "removexattr");
	CHECK_ERR(removexattr(f, "user.b"), ENODATA, "removexattr again ENODATA");
	n = listxattr(f, list, sizeof list);
	CHECK(!has_name(list, n, "user.b"), "removed name not listed");

	static char big[65537];
	CHECK_ERR(setxattr(f, "user.big", big, sizeof big, 0), E2BIG, "value over 64 KiB E2BIG");
	CHECK(setxattr(f, "user.max", big, 65536, 0) == 0 || errno == ENOSPC || errno == E2BIG, "64 KiB value: stored or refused for space");
	removexattr(f, "user.max");
	char longname[300] = "user.";
	memset(longname + 5, 'n', 251);
	CHECK_ERR(setxattr(f, longname, "x", 1, 0), ERANGE, "name over 255 bytes ERANGE");
	CHECK_ERR(setxattr(f, "", "x", 1, 0), ERANGE, "empty name ERANGE");
	CHECK_ERR(setxattr(f, "nonamespace", "x", 1, 0), EOPNOTSUPP, "name without a namespace EOPNOTSUPP");
	CHECK_ERR(getxattr(f, "bogus.x", buf, sizeof buf), EOPNOTSUPP, "unknown namespace EOPNOTSUPP");
	CHECK_ERR(setxattr(P("missing"), "user.a", "x", 1, 0), ENOENT, "missing file ENOENT");
	void *volatile bad = (void *)8;
	CHECK_ERR(setxattr(f, "user.a", bad, 4, 0), EFAULT, "bad value pointer EFAULT");
	CHECK_ERR(getxattr(f, bad, buf, 4), EFAULT, "bad name pointer EFAULT");

	/* Directories carry user.* too; symlinks do not. */
	CHECK(setxattr(base, "user.dir", "d", 1, 0) == 0, "user.* on a directory");
	symlink("f", P("lnk"));
	CHECK(getxattr(P("lnk"), "user.a", buf, sizeof buf) == 3, "getxattr follows a symlink");
	CHECK_ERR(lsetxattr(P("lnk"), "user.a", "x", 1, 0), EPERM, "user.* on a symlink itself EPERM");
	CHECK_ERR(lgetxattr(P("lnk"), "user.a", buf, sizeof buf), ENODATA, "lgetxattr of user.* on a symlink ENODATA");
	mkfifo(P("fifo"), 0644);
	CHECK_ERR(setxattr(P("fifo"), "user.a", "x", 1, 0), EPERM, "user.* on a FIFO EPERM");

	int fd = open(f, O_RDWR);
	CHECK(fsetxattr(fd, "user.fd", "v", 1, 0) == 0 && fgetxattr(fd, "user.fd", buf, sizeof buf) == 1, "f variants");
	CHECK(flistxattr(fd, list, sizeof list) > 0 && fremovexattr(fd, "user.fd") == 0, "flistxattr, fremovexattr");
	close(fd);
	int pfd[2];
	pipe(pfd);
	CHECK_ERR(fgetxattr(pfd[0], "user.a", buf, sizeof buf), ENODATA, "user.* on a pipe ENODATA");
	CHECK_ERR(fsetxattr(pfd[1], "user.a", "x", 1, 0), EPERM, "user.* set on a pipe EPERM");
	close(pfd[0]);
	close(pfd[1]);
	CHECK_ERR(fgetxattr(-1, "user.a", buf, sizeof buf), EBADF, "bad fd EBADF");
}

static void test_trusted(void)
{
	const char *f = P("f");
	char buf[64];
	CHECK(setxattr(f, "trusted.t", "root", 4, 0) == 0, "trusted.* as root");
	CHECK(getxattr(f, "trusted.t", buf, sizeof buf) == 4, "get trusted.* as root");
	char list[1024];
	ssize_t n = listxattr(f, list, sizeof list);
	CHECK(has_name(list, n, "trusted.t"), "root lists trusted.*");

	int res[2];
	pipe(res);
	/* Opened now: the unprivileged part below may not be able to
	 * search the directories above the file. */
	int ffd = open(f, O_RDONLY);
	pid_t pid = check_fork();
	if (pid == 0) {
		/* Drop CAP_SYS_ADMIN but stay root otherwise. */
		struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct d[2];
		syscall(SYS_capget, &h, d);
		d[0].effective &= ~(1u << CAP_SYS_ADMIN);
		syscall(SYS_capset, &h, d);
		int r[6];
		errno = 0;
		r[0] = getxattr(f, "trusted.t", buf, sizeof buf) == -1 ? errno : 0;
		r[1] = setxattr(f, "trusted.u", "x", 1, 0) == -1 ? errno : 0;
		r[2] = removexattr(f, "trusted.t") == -1 ? errno : 0;
		n = listxattr(f, list, sizeof list);
		r[3] = n >= 0 && !has_name(list, n, "trusted.t") && has_name(list, n, "user.a");
		r[4] = getxattr(f, "user.a", buf, sizeof buf) >= 0;
		/* Now as an ordinary user. */
		setgid(1000);
		setuid(1000);
		r[5] = fsetxattr(ffd, "user.a", "x", 1, 0) == -1 ? errno : 0;
		write(res[1], r, sizeof r);
		_exit(0);
	}
	int r[6] = {0};
	read(res[0], r, sizeof r);
	waitpid(pid, NULL, 0);
	close(ffd);
	CHECK(r[0] == ENODATA, "get trusted.* without CAP_SYS_ADMIN ENODATA");
	CHECK(r[1] == EPERM, "set trusted.* without CAP_SYS_ADMIN EPERM");
	CHECK(r[2] == EPERM, "remove trusted.* without CAP_SYS_ADMIN EPERM");
	CHECK(r[3], "list hides trusted.* without CAP_SYS_ADMIN");
	CHECK(r[4], "user.* still readable");
	CHECK(r[5] == EACCES, "user.* on a file one may not write EACCES");
	CHECK(removexattr(f, "trusted.t") == 0, "remove trusted.* as root");
}

static void test_sticky(void)
{
	mkdir(P("sticky"), 01777);
	chmod(P("sticky"), 01777);
	int res[2];
	pipe(res);
	int dfd = open(P("sticky"), O_RDONLY | O_DIRECTORY);
	pid_t pid = check_fork();
	if (pid == 0) {
		setgid(1000);
		setuid(1000);
		int r = fsetxattr(dfd, "user.x", "x", 1, 0) == -1 ? errno : 0;
		write(res[1], &r, sizeof r);
		_exit(0);
	}
	int r = 0;
	read(res[0], &r, sizeof r);
	waitpid(pid, NULL, 0);
	close(dfd);
	CHECK(r == EPERM, "user.* on another's sticky directory EPERM");
}

int main(void)
{
	check_path(base, sizeof base, "xattr");
	if (mkdir(base, 0755) != 0) {
		perror("mkdir");
		return 1;
	}
	int fd = open(P("f"), O_CREAT | O_RDWR, 0644);
	close(fd);
	if (setxattr(P("f"), "user.probe", "1", 1, 0) != 0 && errno == EOPNOTSUPP) {
		printf("note: %s does not support user xattrs; nothing to test\n", base);
		CHECK(1, "skipped");
	} else {
		removexattr(P("f"), "user.probe");
		test_user();
		test_trusted();
		test_sticky();
	}
	unlink(P("f"));
	unlink(P("lnk"));
	unlink(P("fifo"));
	rmdir(P("sticky"));
	rmdir(base);
	return check_summary();
}
