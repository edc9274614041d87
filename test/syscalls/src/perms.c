/*
 * perms: permission checks as root and as an unprivileged user: owner,
 * group, supplementary groups and other classes; the capabilities
 * CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_CHOWN, CAP_FSETID
 * and CAP_MKNOD; sticky and set-group-ID directories; the umask; the
 * clearing of set-user-ID/set-group-ID bits on write and chown.
 *
 * The unprivileged parts run in forked children that setuid to 1000 and
 * work relative to a directory descriptor opened beforehand, so they need
 * no search permission on the directories above it.
 */
#include "check.h"

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

static char base[512];
static int dfd; /* base, opened by root */

#define UID 1000
#define GID 1000
#define SUPP 2000
#define OTHERG 3000

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static void mkfile(const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	write(fd, "data", 4);
	fchown(fd, uid, gid);
	fchmod(fd, mode);
	close(fd);
}

static void mkd(const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	mkdirat(dfd, name, 0700);
	fchownat(dfd, name, uid, gid, 0);
	fchmodat(dfd, name, mode, 0);
}

/* become drops to UID/GID with supplementary group SUPP. */
static int become(void)
{
	gid_t groups[] = {GID, SUPP};
	if (setgroups(2, groups) != 0 || setgid(GID) != 0 || setuid(UID) != 0)
		return -1;
	return 0;
}

/* capdrop removes capabilities from the effective set (root stays root). */
static int capdrop(unsigned long long drop)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) != 0)
		return -1;
	d[0].effective &= ~(unsigned)drop;
	d[1].effective &= ~(unsigned)(drop >> 32);
	return syscall(SYS_capset, &h, d);
}

/* run forks a child that runs fn after setup and relays its checks. */
static void run(const char *what, int (*setup)(void), void (*fn)(void))
{
	int p[2];
	pipe(p);
	pid_t pid = check_fork();
	if (pid == 0) {
		close(p[0]);
		check_passed = check_failed = 0;
		if (setup && setup() != 0) {
			printf("FAIL: %s: setup failed (errno=%d)\n", what, errno);
			check_failed++;
		} else {
			fn();
		}
		int res[2] = {check_passed, check_failed};
		fflush(stdout);
		write(p[1], res, sizeof res);
		_exit(0);
	}
	close(p[1]);
	int res[2] = {0, 1};
	if (read(p[0], res, sizeof res) != sizeof res)
		printf("FAIL: %s: child died\n", what);
	close(p[0]);
	waitpid(pid, NULL, 0);
	check_passed += res[0];
	check_failed += res[1];
}

static int can_open(const char *name, int flags)
{
	int fd = openat(dfd, name, flags);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static void user_classes(void)
{
	CHECK(!can_open("root0600", O_RDONLY) && errno == EACCES, "other: no read on 0600 EACCES");
	CHECK(can_open("root0604", O_RDONLY), "other: read on 0604");
	CHECK(!can_open("root0604", O_WRONLY) && errno == EACCES, "other: no write on 0604");
	CHECK(can_open("suppgrp0640", O_RDONLY), "supplementary group grants group read");
	CHECK(!can_open("suppgrp0640", O_RDWR) && errno == EACCES, "group has no write");
	CHECK(!can_open("mine0460", O_WRONLY) && errno == EACCES, "owner class only: group write does not apply");
	CHECK(can_open("mine0460", O_RDONLY), "owner read");
	CHECK(faccessat(dfd, "root0604", R_OK, 0) == 0, "access R_OK");
	CHECK_ERR(faccessat(dfd, "root0604", W_OK, 0), EACCES, "access W_OK");
	CHECK_ERR(openat(dfd, "noexec/f", O_RDONLY), EACCES, "no search permission on a directory");
	CHECK(can_open("searchonly/f", O_RDONLY), "search-only directory: known name opens");
	CHECK(!can_open("searchonly", O_RDONLY | O_DIRECTORY) && errno == EACCES, "search-only directory: cannot list");
	CHECK_ERR(openat(dfd, "rootdir/new", O_CREAT | O_WRONLY, 0644), EACCES, "create in a 0755 root directory");
	CHECK_ERR(unlinkat(dfd, "rootdir/f", 0), EACCES, "unlink in a 0755 root directory");
	CHECK_ERR(mkdirat(dfd, "rootdir/sub", 0755), EACCES, "mkdir in a 0755 root directory");

	int fd = openat(dfd, "w/mine", O_CREAT | O_WRONLY, 0666);
	struct stat st;
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == UID && st.st_gid == GID, "new file owned by fsuid/fsgid");
	CHECK((st.st_mode & 0777) == 0644, "umask 022 applied");
	close(fd);
	umask(027);
	fd = openat(dfd, "w/mine2", O_CREAT | O_WRONLY, 0777);
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0750, "umask 027 applied");
	close(fd);
	CHECK(mkdirat(dfd, "w/mydir", 0777) == 0 && fstatat(dfd, "w/mydir", &st, 0) == 0 && (st.st_mode & 0777) == 0750,
	      "umask on mkdir");
	umask(022);

	/* Owner-only attribute changes. */
	CHECK_ERR(fchmodat(dfd, "root0604", 0777, 0), EPERM, "chmod of another's file EPERM");
	CHECK_ERR(fchownat(dfd, "w/mine", 0, -1, 0), EPERM, "chown to another user EPERM");
	CHECK(fchownat(dfd, "w/mine", -1, SUPP, 0) == 0, "chgrp to a supplementary group");
	CHECK_ERR(fchownat(dfd, "w/mine", -1, OTHERG, 0), EPERM, "chgrp to a group not held EPERM");
	CHECK(fchownat(dfd, "w/mine", UID, -1, 0) == 0, "chown to oneself ok");
	CHECK(fchmodat(dfd, "w/mine", 02755, 0) == 0 && fstatat(dfd, "w/mine", &st, 0) == 0 && (st.st_mode & 07777) == 02755,
	      "set-group-ID kept for a group held");
	CHECK(fchmodat(dfd, "othergrp", 02755, 0) == 0 && fstatat(dfd, "othergrp", &st, 0) == 0 && (st.st_mode & 07777) == 0755,
	      "chmod g+s on a file of a group not held drops S_ISGID");

	/* utimes: write permission allows "now", only the owner sets times. */
	CHECK(utimensat(dfd, "root0666", NULL, 0) == 0, "touch of a writable file");
	struct timespec ts[2] = {{.tv_sec = 5}, {.tv_sec = 5}};
	CHECK_ERR(utimensat(dfd, "root0666", ts, 0), EPERM, "explicit times on another's file EPERM");
	CHECK_ERR(utimensat(dfd, "root0604", NULL, 0), EACCES, "touch without write permission EACCES");

	/* Writing a set-user-ID file clears the bit. */
	fd = openat(dfd, "setuid0666", O_WRONLY);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1, "write to a set-user-ID file");
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 06000) == 0, "write clears S_ISUID and S_ISGID(g+x)");
	close(fd);

	/* Sticky directory. */
	CHECK_ERR(unlinkat(dfd, "sticky/rootfile", 0), EPERM, "sticky: unlink another's file EPERM");
	CHECK_ERR(renameat(dfd, "sticky/rootfile", dfd, "sticky/moved"), EPERM, "sticky: rename another's file EPERM");
	fd = openat(dfd, "sticky/myfile", O_CREAT | O_WRONLY, 0644);
	close(fd);
	CHECK(renameat(dfd, "sticky/myfile", dfd, "sticky/myfile2") == 0, "sticky: rename own file");
	CHECK_ERR(renameat(dfd, "sticky/myfile2", dfd, "sticky/rootfile"), EPERM, "sticky: replace another's file EPERM");
	CHECK(unlinkat(dfd, "sticky/myfile2", 0) == 0, "sticky: unlink own file");

	/* Set-group-ID directory. */
	fd = openat(dfd, "sgid/f", O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_gid == SUPP, "set-group-ID dir: new file gets the dir's group");
	close(fd);
	CHECK(mkdirat(dfd, "sgid/sub", 0755) == 0 && fstatat(dfd, "sgid/sub", &st, 0) == 0 && st.st_gid == SUPP &&
		      (st.st_mode & S_ISGID),
	      "set-group-ID dir: subdirectory inherits group and S_ISGID");

	CHECK_ERR(mknodat(dfd, "w/dev", S_IFCHR | 0600, makedev(1, 3)), EPERM, "mknod of a device without CAP_MKNOD");
	CHECK(mknodat(dfd, "w/fifo", S_IFIFO | 0600, 0) == 0, "mknod of a FIFO unprivileged");

	/* Where the sysctl is not shown, the protection is assumed on. */
	int prot = 1;
	FILE *f = fopen("/proc/sys/fs/protected_hardlinks", "r");
	if (f) {
		fscanf(f, "%d", &prot);
		fclose(f);
	}
	if (prot)
		CHECK_ERR(linkat(dfd, "root0600", dfd, "w/hl", 0), EPERM, "protected_hardlinks: link to an unreadable file EPERM");
	CHECK(linkat(dfd, "w/mine2", dfd, "w/mine2link", 0) == 0, "link to one's own file");
}

static void root_caps(void)
{
	/* Root: DAC_OVERRIDE reads and writes anything but executes only
	 * files with some execute bit. */
	CHECK(can_open("mine0000", O_RDWR), "root opens a 0000 file read-write");
	CHECK_ERR(faccessat(dfd, "root0600", X_OK, 0), EACCES, "root: X_OK on a file with no x bit EACCES");
	CHECK(faccessat(dfd, "x0100", X_OK, 0) == 0, "root: X_OK with an x bit for someone");
	CHECK(can_open("noexec/f", O_RDONLY), "root searches a 0000 directory");

	CHECK(capdrop(1ULL << CAP_DAC_OVERRIDE) == 0, "drop CAP_DAC_OVERRIDE");
	CHECK(can_open("mine0000", O_RDONLY), "CAP_DAC_READ_SEARCH reads a 0000 file");
	CHECK(!can_open("mine0000", O_WRONLY) && errno == EACCES, "but cannot write it");
	CHECK(can_open("noexec/f", O_RDONLY), "CAP_DAC_READ_SEARCH searches a 0000 directory");
	CHECK_ERR(openat(dfd, "noexec/new", O_CREAT | O_WRONLY, 0600), EACCES, "but cannot create in it");
	CHECK(capdrop(1ULL << CAP_DAC_READ_SEARCH) == 0, "drop CAP_DAC_READ_SEARCH");
	CHECK(!can_open("mine0000", O_RDONLY) && errno == EACCES, "without both, a 0000 file is closed to root");
	CHECK_ERR(openat(dfd, "noexec/f", O_RDONLY), EACCES, "and a 0000 directory too");

	CHECK(fchmodat(dfd, "mine0460", 0460, 0) == 0, "CAP_FOWNER: chmod of another's file");
	CHECK(capdrop(1ULL << CAP_FOWNER) == 0, "drop CAP_FOWNER");
	CHECK_ERR(fchmodat(dfd, "mine0460", 0400, 0), EPERM, "without CAP_FOWNER chmod of another's file EPERM");
	struct timespec ts[2] = {{.tv_sec = 5}, {.tv_sec = 5}};
	CHECK_ERR(utimensat(dfd, "mine0460", ts, 0), EPERM, "without CAP_FOWNER explicit times EPERM");
	CHECK(capdrop(1ULL << CAP_CHOWN) == 0, "drop CAP_CHOWN");
	CHECK_ERR(fchownat(dfd, "root0600", 1, -1, 0), EPERM, "without CAP_CHOWN chown EPERM");
	CHECK(capdrop(1ULL << CAP_MKNOD) == 0, "drop CAP_MKNOD");
	CHECK_ERR(mknodat(dfd, "w/rootdev", S_IFCHR | 0600, makedev(1, 3)), EPERM, "without CAP_MKNOD mknod of a device EPERM");
}

static void root_fsetid(void)
{
	int fd = openat(dfd, "setuid_root", O_WRONLY);
	struct stat st;
	CHECK(fd >= 0 && write(fd, "x", 1) == 1 && fstat(fd, &st) == 0 && (st.st_mode & 04000), "CAP_FSETID: write keeps S_ISUID");
	CHECK(capdrop(1ULL << CAP_FSETID) == 0, "drop CAP_FSETID");
	CHECK(write(fd, "y", 1) == 1 && fstat(fd, &st) == 0 && (st.st_mode & 04000) == 0, "without CAP_FSETID write clears it");
	close(fd);
}

int main(void)
{
	check_path(base, sizeof base, "perms");
	umask(0);
	if (mkdir(base, 0755) != 0) {
		perror("mkdir");
		return 1;
	}
	dfd = open(base, O_PATH | O_DIRECTORY);
	mkfile("root0600", 0600, 0, 0);
	mkfile("root0604", 0604, 0, 0);
	mkfile("root0666", 0666, 0, 0);
	mkfile("suppgrp0640", 0640, 0, SUPP);
	mkfile("mine0460", 0460, UID, GID);
	mkfile("mine0000", 0000, UID, GID);
	mkfile("othergrp", 0755, UID, OTHERG);
	mkfile("setuid0666", 06777, 0, 0);
	mkfile("setuid_root", 04777, 0, 0);
	mkfile("x0100", 0100, UID, GID);
	mkd("noexec", 0000, 0, 0);
	mkfile("noexec/f", 0644, 0, 0);
	mkd("searchonly", 0711, 0, 0);
	mkfile("searchonly/f", 0644, 0, 0);
	mkd("rootdir", 0755, 0, 0);
	mkfile("rootdir/f", 0644, 0, 0);
	mkd("w", 0777, 0, 0);
	mkd("sticky", 01777, 0, 0);
	mkfile("sticky/rootfile", 0666, 0, 0);
	mkd("sgid", 02777, 0, SUPP);
	umask(022);

	run("unprivileged", become, user_classes);
	run("root capabilities", NULL, root_caps);
	run("root CAP_FSETID", NULL, root_fsetid);

	close(dfd);
	chmod(base, 0755);
	char p[600];
	snprintf(p, sizeof p, "%s/noexec", base);
	chmod(p, 0755);
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
