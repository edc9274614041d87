/*
 * paths: path resolution: the 40-symlink limit (ELOOP), symlink loops,
 * ".." at the root and across mount points, relative symlink targets,
 * trailing slashes, ENOTDIR/ENAMETOOLONG/ENOENT, empty paths and
 * AT_EMPTY_PATH, and names that move while a directory is the cwd.
 */
#include "check.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>

static char base[512];

static const char *P(const char *name)
{
	static char bufs[4][1024];
	static int i;
	char *b = bufs[i++ & 3];
	snprintf(b, sizeof(bufs[0]), "%s/%s", base, name);
	return b;
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void test_symlink_limit(void)
{
	int fd = open(P("target"), O_CREAT | O_WRONLY, 0644);
	close(fd);
	/* l0 -> target, l1 -> l0, ..., l40 -> l39 */
	char name[32], prev[32];
	snprintf(prev, sizeof prev, "target");
	for (int i = 0; i <= 40; i++) {
		snprintf(name, sizeof name, "l%d", i);
		symlink(prev, P(name));
		snprintf(prev, sizeof prev, "%s", name);
	}
	fd = open(P("l39"), O_RDONLY);
	CHECK(fd >= 0, "40 symlinks in a row resolve");
	close(fd);
	CHECK_ERR(open(P("l40"), O_RDONLY), ELOOP, "41 symlinks: ELOOP");
	struct stat st;
	CHECK(lstat(P("l40"), &st) == 0 && S_ISLNK(st.st_mode), "lstat does not follow");
	symlink("self", P("self"));
	CHECK_ERR(open(P("self"), O_RDONLY), ELOOP, "self-referencing symlink ELOOP");
	symlink("loopb", P("loopa"));
	symlink("loopa", P("loopb"));
	CHECK_ERR(stat(P("loopa"), &st), ELOOP, "two-link loop ELOOP");
	CHECK_ERR(open(P("self/x"), O_RDONLY), ELOOP, "loop in the middle of a path ELOOP");
}

static void test_dotdot(void)
{
	CHECK(same_file("/..", "/"), "/.. is /");
	CHECK(same_file("/../../..", "/"), "/../../.. is /");
	CHECK(same_file("/proc/..", "/"), ".. from a mount root goes to the parent mount");
	CHECK(same_file("/proc/self/..", "/proc"), ".. inside a mount");
	char cwd[PATH_MAX];
	getcwd(cwd, sizeof cwd);
	CHECK(chdir("/") == 0 && same_file("..", "/") && same_file("../../.", "/"), "relative .. at the root stays");
	chdir(cwd);
	mkdir(P("a"), 0755);
	mkdir(P("a/b"), 0755);
	CHECK(same_file(P("a/b/.."), P("a")), "a/b/.. is a");
	CHECK(same_file(P("a/./b/../."), P("a")), "dots mixed in");
	symlink("a/b", P("ab"));
	CHECK(same_file(P("ab/.."), P("a")), ".. after a symlink is relative to its target");
}

static void test_components(void)
{
	int fd = open(P("file"), O_CREAT | O_WRONLY, 0644);
	close(fd);
	struct stat st;
	CHECK_ERR(stat(P("file/"), &st), ENOTDIR, "trailing slash on a file ENOTDIR");
	CHECK_ERR(stat(P("file/x"), &st), ENOTDIR, "file in the middle of a path ENOTDIR");
	CHECK_ERR(open(P("file/"), O_CREAT | O_WRONLY, 0644), EISDIR, "O_CREAT with a trailing slash EISDIR");
	CHECK_ERR(unlink(P("file/")), ENOTDIR, "unlink with a trailing slash ENOTDIR");
	symlink("a", P("dirlink"));
	CHECK(stat(P("dirlink/"), &st) == 0 && S_ISDIR(st.st_mode), "trailing slash follows a symlink to a directory");
	CHECK(lstat(P("dirlink/"), &st) == 0 && S_ISDIR(st.st_mode), "even for lstat");
	symlink("file", P("filelink"));
	CHECK_ERR(lstat(P("filelink/"), &st), ENOTDIR, "trailing slash on a link to a file ENOTDIR");
	CHECK(mkdir(P("newdir/"), 0755) == 0, "mkdir with a trailing slash");
	CHECK(rmdir(P("newdir/")) == 0, "rmdir with a trailing slash");
	CHECK_ERR(stat(P("missing/x"), &st), ENOENT, "missing directory ENOENT");
	symlink("missing", P("dangling"));
	CHECK_ERR(stat(P("dangling"), &st), ENOENT, "dangling symlink ENOENT");
	CHECK(lstat(P("dangling"), &st) == 0, "lstat of a dangling symlink");
	CHECK_ERR(stat("", &st), ENOENT, "empty path ENOENT");
	fd = open(P("file"), O_RDONLY);
	CHECK(fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && S_ISREG(st.st_mode), "AT_EMPTY_PATH");
	CHECK_ERR(fstatat(fd, "x", &st, 0), ENOTDIR, "relative to a file descriptor that is not a directory");
	close(fd);
	CHECK_ERR(fstatat(-1, "x", &st, 0), EBADF, "relative to a bad descriptor EBADF");
	CHECK(fstatat(-1, "/", &st, 0) == 0, "absolute path ignores the descriptor");

	char longname[300];
	memset(longname, 'n', 256);
	longname[256] = 0;
	CHECK_ERR(open(P(longname), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG, "component of 256 bytes ENAMETOOLONG");
	longname[255] = 0;
	fd = open(P(longname), O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0, "component of 255 bytes ok");
	close(fd);
	unlink(P(longname));
	static char longpath[PATH_MAX + 10];
	memset(longpath, '/', sizeof longpath - 1);
	longpath[sizeof longpath - 1] = 0;
	CHECK_ERR(stat(longpath, &st), ENAMETOOLONG, "path of PATH_MAX or more ENAMETOOLONG");
	/* Relative symlink targets are relative to the link's directory. */
	mkdir(P("a/c"), 0755);
	fd = open(P("a/c/t"), O_CREAT | O_WRONLY, 0644);
	close(fd);
	symlink("c/t", P("a/rel"));
	CHECK(same_file(P("a/rel"), P("a/c/t")), "relative symlink from its own directory");
	symlink("../c", P("a/b/up"));
	CHECK(same_file(P("a/b/up/t"), P("a/c/t")), "relative symlink with ..");
}

static void test_cwd_moves(void)
{
	char cwd[PATH_MAX], now[PATH_MAX];
	getcwd(cwd, sizeof cwd);
	mkdir(P("m1"), 0755);
	mkdir(P("m1/inner"), 0755);
	CHECK(chdir(P("m1/inner")) == 0, "chdir");
	CHECK(rename(P("m1"), P("m2")) == 0, "rename the cwd's parent");
	CHECK(getcwd(now, sizeof now) && strcmp(now, P("m2/inner")) == 0, "getcwd follows the rename");
	CHECK(rmdir(P("m2/inner")) == 0, "remove the cwd");
	CHECK(getcwd(now, sizeof now) == NULL && errno == ENOENT, "getcwd of a removed directory ENOENT");
	CHECK_ERR(open("x", O_CREAT | O_WRONLY, 0644), ENOENT, "create in a removed cwd ENOENT");
	chdir(cwd);
}

int main(void)
{
	check_path(base, sizeof base, "paths");
	if (mkdir(base, 0755) != 0) {
		perror("mkdir");
		return 1;
	}
	test_symlink_limit();
	test_dotdot();
	test_components();
	test_cwd_moves();
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
