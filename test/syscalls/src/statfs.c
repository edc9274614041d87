/*
 * statfs: statfs/fstatfs report the filesystem a file is on: tmpfs
 * (/dev/shm), procfs, pipefs, with sizes that move as a tmpfs fills, and
 * the errnos for missing paths, bad descriptors and bad buffers.
 */
#include "check.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

int main(void)
{
	struct statfs s;
	CHECK(statfs("/dev/shm", &s) == 0 && s.f_type == TMPFS_MAGIC, "/dev/shm is tmpfs");
	CHECK(s.f_bsize == 4096 && s.f_namelen == 255, "tmpfs block size and name length");
	CHECK(s.f_blocks >= s.f_bfree && s.f_bfree >= s.f_bavail, "block counts ordered");
	CHECK(s.f_flags & 0x20 /* ST_VALID */, "f_flags valid");
	unsigned long long free0 = s.f_bfree;
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/veil-statfs-%d", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	static char buf[1 << 20];
	memset(buf, 'x', sizeof buf);
	CHECK(fd >= 0 && write(fd, buf, sizeof buf) == sizeof buf, "write 1 MiB to tmpfs");
	struct statfs s2;
	CHECK(fstatfs(fd, &s2) == 0 && s2.f_type == TMPFS_MAGIC, "fstatfs of a tmpfs file");
	CHECK(s2.f_bfree + 200 <= free0, "free blocks went down");
	close(fd);
	unlink(path);

	/* A tmpfs directory's size counts 20 bytes an entry, . and .. too. */
	struct stat st;
	CHECK(mkdir(path, 0700) == 0 && stat(path, &st) == 0 && st.st_size == 40, "empty tmpfs directory has size 40");
	char sub[300];
	snprintf(sub, sizeof sub, "%s/f", path);
	close(open(sub, O_CREAT | O_WRONLY, 0600));
	CHECK(stat(path, &st) == 0 && st.st_size == 60, "one entry more: 60");
	unlink(sub);
	CHECK(stat(path, &st) == 0 && st.st_size == 40, "entry removed: 40 again");
	rmdir(path);

	CHECK(statfs("/proc", &s) == 0 && s.f_type == PROC_SUPER_MAGIC, "/proc is procfs");
	CHECK(statfs("/proc/self/status", &s) == 0 && s.f_type == PROC_SUPER_MAGIC, "a /proc file too");
	int p[2];
	pipe(p);
	CHECK(fstatfs(p[0], &s) == 0 && s.f_type == PIPEFS_MAGIC, "a pipe is on pipefs");
	close(p[0]);
	close(p[1]);
	int op = open("/proc", O_PATH);
	CHECK(fstatfs(op, &s) == 0 && s.f_type == PROC_SUPER_MAGIC, "fstatfs on an O_PATH descriptor");
	close(op);

	struct statvfs v;
	CHECK(statvfs("/dev/shm", &v) == 0 && v.f_bsize == 4096 && v.f_namemax == 255, "statvfs");
	CHECK_ERR(statfs("/nonexistent-veil", &s), ENOENT, "missing path ENOENT");
	CHECK_ERR(statfs("/dev/shm", (void *)8), EFAULT, "bad buffer EFAULT");
	CHECK_ERR(fstatfs(-1, &s), EBADF, "bad fd EBADF");
	CHECK_ERR(statfs("", &s), ENOENT, "empty path ENOENT");
	return check_summary();
}
