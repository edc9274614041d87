/*
 * rename: rename/renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE), link,
 * symlink, mknod (regular files, FIFOs, the errors for directories and
 * devices), chmod/chown and utimensat/futimens with UTIME_NOW and
 * UTIME_OMIT, with the link counts and errnos Linux gives.
 */
#include "check.h"

#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

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

static int renameat2_(const char *a, const char *b, unsigned flags)
{
	return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

static void put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write(fd, s, strlen(s));
	close(fd);
}

static char got[64];
static const char *get(const char *path)
{
	memset(got, 0, sizeof got);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return "";
	read(fd, got, sizeof got - 1);
	close(fd);
	return got;
}

static nlink_t nlink(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 ? st.st_nlink : 0;
}

static void test_rename(void)
{
	put(P("a"), "A");
	put(P("b"), "B");
	mkdir(P("d1"), 0755);
	mkdir(P("d2"), 0755);
	put(P("d2/inner"), "I");

	CHECK(rename(P("a"), P("a2")) == 0 && strcmp(get(P("a2")), "A") == 0 && access(P("a"), F_OK) != 0, "rename a file");
	CHECK(rename(P("a2"), P("b")) == 0 && strcmp(get(P("b")), "A") == 0, "rename over a file replaces it");
	put(P("a"), "A");
	CHECK_ERR(renameat2_(P("a"), P("b"), RENAME_NOREPLACE), EEXIST, "RENAME_NOREPLACE onto an existing name");
	CHECK(renameat2_(P("a"), P("c"), RENAME_NOREPLACE) == 0, "RENAME_NOREPLACE onto a free name");
	CHECK(rename(P("c"), P("a")) == 0, "and back");

	CHECK_ERR(rename(P("a"), P("d1")), EISDIR, "file over a directory EISDIR");
	CHECK_ERR(rename(P("d1"), P("a")), ENOTDIR, "directory over a file ENOTDIR");
	CHECK_ERR(rename(P("d1"), P("d2")), ENOTEMPTY, "directory over a non-empty directory");
	mkdir(P("empty"), 0755);
	CHECK(rename(P("d1"), P("empty")) == 0, "directory over an empty directory");
	CHECK(rename(P("empty"), P("d1")) == 0, "and back");
	CHECK_ERR(rename(P("d2"), P("d2/inner/x")), ENOTDIR, "into a file's path");
	mkdir(P("d2/sub"), 0755);
	CHECK_ERR(rename(P("d2"), P("d2/sub/d2")), EINVAL, "directory into its own subdirectory");
	CHECK_ERR(rename(P("a"), P("a/")), ENOTDIR, "trailing slash on a file ENOTDIR");
	CHECK(rename(P("d1/"), P("d3/")) == 0, "trailing slashes on directories ok");
	CHECK(rename(P("d3"), P("d1")) == 0, "and back");
	CHECK(rename(P("a"), P("a")) == 0, "rename onto itself");
	CHECK(link(P("a"), P("alink")) == 0, "hard link");
	CHECK(rename(P("a"), P("alink")) == 0 && access(P("a"), F_OK) == 0 && access(P("alink"), F_OK) == 0,
	      "rename between links of one file does nothing");
	unlink(P("alink"));
	CHECK_ERR(rename(P("missing"), P("x")), ENOENT, "missing source ENOENT");
	CHECK_ERR(rename(P("."), P("x")), EBUSY, "rename of . EBUSY");
	CHECK_ERR(renameat2_(P("a"), P("b"), 1 << 7), EINVAL, "unknown flag EINVAL");
	CHECK_ERR(renameat2_(P("a"), P("b"), RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL, "EXCHANGE|NOREPLACE EINVAL");
	CHECK_ERR(renameat2_(P("a"), P("b"), RENAME_EXCHANGE | RENAME_WHITEOUT), EINVAL, "EXCHANGE|WHITEOUT EINVAL");

	/* The directory's link count follows subdirectories moving. */
	nlink_t n1 = nlink(P("d1")), n2 = nlink(P("d2"));
	CHECK(rename(P("d2/sub"), P("d1/sub")) == 0, "move a subdirectory");
	CHECK(nlink(P("d1")) == n1 + 1 && nlink(P("d2")) == n2 - 1, "parents' link counts follow");
}

static void test_exchange(void)
{
	put(P("x"), "X");
	put(P("y"), "Y");
	CHECK(renameat2_(P("x"), P("y"), RENAME_EXCHANGE) == 0, "RENAME_EXCHANGE two files");
	CHECK(strcmp(get(P("x")), "Y") == 0 && strcmp(get(P("y")), "X") == 0, "contents swapped");
	CHECK_ERR(renameat2_(P("x"), P("nothere"), RENAME_EXCHANGE), ENOENT, "exchange with a missing name");
	mkdir(P("ed"), 0755);
	put(P("ed/f"), "F");
	nlink_t nbase = nlink(base);
	CHECK(renameat2_(P("x"), P("ed"), RENAME_EXCHANGE) == 0, "exchange a file and a directory");
	struct stat st;
	CHECK(stat(P("x"), &st) == 0 && S_ISDIR(st.st_mode) && strcmp(get(P("x/f")), "F") == 0, "directory now at x");
	CHECK(strcmp(get(P("ed")), "Y") == 0, "file now at ed");
	CHECK(nlink(base) == nbase, "link count of a shared parent unchanged");
	mkdir(P("other"), 0755);
	nbase = nlink(base);
	nlink_t no = nlink(P("other"));
	put(P("other/g"), "G");
	CHECK(renameat2_(P("x"), P("other/g"), RENAME_EXCHANGE) == 0, "exchange across directories");
	CHECK(nlink(P("other")) == no + 1 && nlink(base) == nbase - 1, "a directory changing parents moves a link");
	CHECK(strcmp(get(P("other/g/f")), "F") == 0 && strcmp(get(P("x")), "G") == 0, "swapped across directories");
	CHECK_ERR(renameat2_(P("other"), P("other/g/f"), RENAME_EXCHANGE), EINVAL, "exchange with a descendant EINVAL");
	int r = renameat2_(P("y"), P("w"), RENAME_WHITEOUT);
	CHECK(r == 0 || errno == EINVAL, "RENAME_WHITEOUT either supported or EINVAL");
}

static void test_link_symlink_mknod(void)
{
	put(P("lf"), "L");
	CHECK(link(P("lf"), P("lf2")) == 0 && nlink(P("lf")) == 2, "link raises nlink");
	CHECK_ERR(link(P("lf"), P("lf2")), EEXIST, "link onto an existing name");
	CHECK_ERR(link(P("d1"), P("d1link")), EPERM, "link of a directory EPERM");
	CHECK_ERR(link(P("nothere"), P("n2")), ENOENT, "link of a missing file");
	CHECK_ERR(link(P("lf"), "/dev/veil-link-test"), EXDEV, "link across mounts EXDEV");
	CHECK(unlink(P("lf2")) == 0 && nlink(P("lf")) == 1, "unlink lowers it");
	symlink("lf", P("sl"));
	CHECK(link(P("sl"), P("sl2")) == 0, "link of a symlink links the symlink");
	struct stat st;
	CHECK(lstat(P("sl2"), &st) == 0 && S_ISLNK(st.st_mode), "is a symlink");
	CHECK(linkat(AT_FDCWD, P("sl"), AT_FDCWD, P("sl3"), AT_SYMLINK_FOLLOW) == 0 && lstat(P("sl3"), &st) == 0 &&
		      S_ISREG(st.st_mode),
	      "AT_SYMLINK_FOLLOW links the target");
	CHECK_ERR(symlink("x", P("sl")), EEXIST, "symlink onto an existing name");
	CHECK_ERR(symlink("", P("empty-target")), ENOENT, "empty symlink target ENOENT");
	char buf[32] = {0};
	CHECK(readlink(P("sl"), buf, sizeof buf) == 2 && strcmp(buf, "lf") == 0, "readlink");
	CHECK(lstat(P("sl"), &st) == 0 && st.st_size == 2 && (st.st_mode & 0777) == 0777, "symlink size and mode");

	CHECK(mknod(P("fifo"), S_IFIFO | 0644, 0) == 0, "mknod FIFO");
	CHECK(stat(P("fifo"), &st) == 0 && S_ISFIFO(st.st_mode), "is a FIFO");
	int rfd = open(P("fifo"), O_RDONLY | O_NONBLOCK);
	int wfd = open(P("fifo"), O_WRONLY | O_NONBLOCK);
	CHECK(rfd >= 0 && wfd >= 0 && write(wfd, "z", 1) == 1 && read(rfd, buf, 1) == 1 && buf[0] == 'z',
	      "FIFO carries data");
	close(rfd);
	close(wfd);
	CHECK(mkfifo(P("fifo2"), 0600) == 0, "mkfifo");
	CHECK_ERR(open(P("fifo2"), O_WRONLY | O_NONBLOCK), ENXIO, "FIFO write end without a reader, O_NONBLOCK: ENXIO");
	pid_t pid = check_fork();
	if (pid == 0) {
		usleep(100 * 1000);
		int w = open(P("fifo2"), O_WRONLY);
		write(w, "q", 1);
		_exit(0);
	}
	rfd = open(P("fifo2"), O_RDONLY);
	CHECK(rfd >= 0 && read(rfd, buf, 1) == 1 && buf[0] == 'q', "blocking FIFO open waits for a writer");
	CHECK(read(rfd, buf, 1) == 0, "EOF once the writer is gone");
	CHECK(fstat(rfd, &st) == 0 && S_ISFIFO(st.st_mode) && (st.st_mode & 0777) == 0600, "fstat of a FIFO end shows the FIFO");
	close(rfd);
	waitpid(pid, NULL, 0);
	CHECK(mknod(P("reg"), S_IFREG | 0600, 0) == 0 && stat(P("reg"), &st) == 0 && S_ISREG(st.st_mode), "mknod regular");
	CHECK(mknod(P("reg0"), 0600, 0) == 0 && stat(P("reg0"), &st) == 0 && S_ISREG(st.st_mode), "mknod type 0 is regular");
	CHECK_ERR(mknod(P("dir"), S_IFDIR | 0755, 0), EPERM, "mknod S_IFDIR EPERM");
	CHECK_ERR(mknod(P("bad"), 0170000 | 0600, 0), EINVAL, "mknod bad type EINVAL");
	CHECK_ERR(mknod(P("fifo"), S_IFIFO | 0600, 0), EEXIST, "mknod onto an existing name");
}

static void test_attrs(void)
{
	put(P("m"), "M");
	CHECK(chmod(P("m"), 04755) == 0, "chmod");
	struct stat st;
	CHECK(stat(P("m"), &st) == 0 && (st.st_mode & 07777) == 04755, "mode set, type kept");
	int fd = open(P("m"), O_RDWR);
	CHECK(fchmod(fd, 0640) == 0 && fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0640, "fchmod");
	CHECK(fchmodat(AT_FDCWD, P("m"), 0600, 0) == 0, "fchmodat");
	CHECK(chown(P("m"), 1234, 5678) == 0 && stat(P("m"), &st) == 0 && st.st_uid == 1234 && st.st_gid == 5678,
	      "chown as root");
	CHECK(fchown(fd, -1, 42) == 0 && fstat(fd, &st) == 0 && st.st_uid == 1234 && st.st_gid == 42, "fchown with -1 keeps uid");
	symlink("m", P("ml"));
	CHECK(lchown(P("ml"), 7, 7) == 0 && lstat(P("ml"), &st) == 0 && st.st_uid == 7 && stat(P("m"), &st) == 0 &&
		      st.st_uid == 1234,
	      "lchown changes the link only");
	chmod(P("m"), 06755);
	CHECK(chown(P("m"), 1234, 42) == 0 && stat(P("m"), &st) == 0 && (st.st_mode & 06000) == 0,
	      "chown clears set-user-ID and set-group-ID (group-executable)");
	CHECK(chown(P("m"), 0, 0) == 0, "chown back to root");

	struct timespec ts[2] = {{.tv_sec = 1000, .tv_nsec = 5}, {.tv_sec = 2000, .tv_nsec = 7}};
	CHECK(utimensat(AT_FDCWD, P("m"), ts, 0) == 0, "utimensat explicit times");
	CHECK(stat(P("m"), &st) == 0 && st.st_atim.tv_sec == 1000 && st.st_atim.tv_nsec == 5 && st.st_mtim.tv_sec == 2000 &&
		      st.st_mtim.tv_nsec == 7,
	      "times set to the nanosecond");
	struct timespec omit[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 3000, .tv_nsec = 0}};
	CHECK(utimensat(AT_FDCWD, P("m"), omit, 0) == 0 && stat(P("m"), &st) == 0 && st.st_atim.tv_sec == 1000 &&
		      st.st_mtim.tv_sec == 3000,
	      "UTIME_OMIT keeps atime");
	time_t now = time(NULL);
	struct timespec nowts[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_OMIT}};
	CHECK(futimens(fd, nowts) == 0 && fstat(fd, &st) == 0 && st.st_atim.tv_sec >= now - 2 && st.st_mtim.tv_sec == 3000,
	      "futimens UTIME_NOW for atime only");
	CHECK(utimensat(AT_FDCWD, P("m"), NULL, 0) == 0 && stat(P("m"), &st) == 0 && st.st_mtim.tv_sec >= now - 2,
	      "NULL times: both now");
	struct timespec bad[2] = {{.tv_nsec = 1000000000}, {.tv_nsec = 0}};
	CHECK_ERR(utimensat(AT_FDCWD, P("m"), bad, 0), EINVAL, "nanoseconds out of range EINVAL");
	CHECK(utimensat(AT_FDCWD, P("ml"), ts, AT_SYMLINK_NOFOLLOW) == 0 && lstat(P("ml"), &st) == 0 &&
		      st.st_mtim.tv_sec == 2000,
	      "AT_SYMLINK_NOFOLLOW sets the link's times");
	CHECK_ERR(utimensat(AT_FDCWD, P("m"), ts, 0x1000000), EINVAL, "unknown flag EINVAL");
	struct stat before;
	fstat(fd, &before);
	usleep(20000);
	CHECK(fchmod(fd, 0644) == 0 && fstat(fd, &st) == 0 &&
		      (st.st_ctim.tv_sec > before.st_ctim.tv_sec ||
		       (st.st_ctim.tv_sec == before.st_ctim.tv_sec && st.st_ctim.tv_nsec > before.st_ctim.tv_nsec)),
	      "chmod updates ctime");
	close(fd);
}

int main(void)
{
	check_path(base, sizeof base, "rename");
	if (mkdir(base, 0755) != 0) {
		perror("mkdir");
		return 1;
	}
	umask(022);
	test_rename();
	test_exchange();
	test_link_symlink_mknod();
	test_attrs();
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
