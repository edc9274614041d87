/*
 * splice: moving data without the application's buffers, and the other
 * file-data calls: splice (file to pipe, pipe to file, pipe to pipe, with
 * offsets), tee, vmsplice, sendfile, copy_file_range, fallocate (0,
 * KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE), fsync/fdatasync/sync/syncfs and
 * sync_file_range, with their errnos.
 */
#include "check.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

static char base[512];

static const char *P(const char *name)
{
	static char bufs[4][1024];
	static int i;
	char *b = bufs[i++ & 3];
	snprintf(b, sizeof(bufs[0]), "%s/%s", base, name);
	return b;
}

static int mkfile(const char *name, const char *content)
{
	int fd = open(P(name), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (content)
		write(fd, content, strlen(content));
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void test_splice(void)
{
	int p[2];
	pipe(p);
	int f = mkfile("src", "0123456789");
	CHECK(splice(f, NULL, p[1], NULL, 4, 0) == 4, "file to pipe");
	CHECK(lseek(f, 0, SEEK_CUR) == 4, "file offset advanced");
	loff_t off = 6;
	CHECK(splice(f, &off, p[1], NULL, 100, 0) == 4 && off == 10, "file to pipe at an offset, to EOF");
	CHECK(lseek(f, 0, SEEK_CUR) == 4, "file offset untouched with an offset pointer");
	CHECK(splice(f, &off, p[1], NULL, 100, 0) == 0, "at EOF: 0");
	char buf[32] = {0};
	CHECK(read(p[0], buf, sizeof buf) == 8 && memcmp(buf, "01236789", 8) == 0, "pipe holds both pieces");

	int g = mkfile("dst", NULL);
	write(p[1], "abcdef", 6);
	CHECK(splice(p[0], NULL, g, NULL, 3, 0) == 3, "pipe to file");
	off = 10;
	CHECK(splice(p[0], NULL, g, &off, 10, 0) == 3 && off == 13, "pipe to file at an offset");
	struct stat st;
	CHECK(fstat(g, &st) == 0 && st.st_size == 13, "file grew to the offset write");
	CHECK(pread(g, buf, 3, 0) == 3 && memcmp(buf, "abc", 3) == 0 && pread(g, buf, 3, 10) == 3 && memcmp(buf, "def", 3) == 0,
	      "data landed");

	int q[2];
	pipe(q);
	write(p[1], "xyz", 3);
	CHECK(splice(p[0], NULL, q[1], NULL, 2, 0) == 2, "pipe to pipe");
	CHECK(read(q[0], buf, 10) == 2 && memcmp(buf, "xy", 2) == 0, "moved");
	CHECK(read(p[0], buf, 10) == 1 && buf[0] == 'z', "rest stays");

	CHECK_ERR(splice(p[0], NULL, q[1], NULL, 1, SPLICE_F_NONBLOCK), EAGAIN, "empty pipe, SPLICE_F_NONBLOCK: EAGAIN");
	CHECK_ERR(splice(f, NULL, g, NULL, 1, 0), EINVAL, "neither side a pipe EINVAL");
	off = 0;
	CHECK_ERR(splice(p[0], &off, g, NULL, 1, 0), ESPIPE, "offset for a pipe ESPIPE");
	CHECK_ERR(splice(f, NULL, p[1], NULL, 1, 0x100), EINVAL, "unknown flag EINVAL");
	CHECK_ERR(splice(p[1], NULL, g, NULL, 1, 0), EBADF, "pipe write end as input EBADF");
	int ro = open(P("src"), O_RDONLY);
	CHECK_ERR(splice(p[0], NULL, ro, NULL, 1, 0), EBADF, "read-only output EBADF");
	int ap = open(P("dst"), O_WRONLY | O_APPEND);
	write(p[1], "a", 1);
	CHECK_ERR(splice(p[0], NULL, ap, NULL, 1, 0), EINVAL, "O_APPEND output EINVAL");
	read(p[0], buf, 1);
	CHECK(splice(f, NULL, p[1], NULL, 0, 0) == 0, "zero length 0");
	close(ro);
	close(ap);

	/* A blocked splice from an empty pipe wakes when data arrives. */
	pid_t pid = check_fork();
	if (pid == 0) {
		usleep(100 * 1000);
		write(p[1], "late", 4);
		_exit(0);
	}
	lseek(g, 0, SEEK_SET);
	CHECK(splice(p[0], NULL, g, NULL, 10, 0) == 4, "blocking splice waits for data");
	waitpid(pid, NULL, 0);
	close(p[1]);
	CHECK(splice(p[0], NULL, g, NULL, 10, 0) == 0, "no writers: 0");
	close(p[0]);

	/* EPIPE and SIGPIPE when the pipe has no reader. */
	signal(SIGPIPE, SIG_IGN);
	int r[2];
	pipe(r);
	close(r[0]);
	lseek(f, 0, SEEK_SET);
	CHECK_ERR(splice(f, NULL, r[1], NULL, 4, 0), EPIPE, "no reader EPIPE");
	close(r[1]);
	close(q[0]);
	close(q[1]);
	close(f);
	close(g);
}

static void test_tee_vmsplice(void)
{
	int a[2], b[2];
	pipe(a);
	pipe(b);
	write(a[1], "teedata", 7);
	CHECK(tee(a[0], b[1], 3, 0) == 3, "tee copies");
	char buf[16] = {0};
	CHECK(read(b[0], buf, sizeof buf) == 3 && memcmp(buf, "tee", 3) == 0, "copy arrived");
	CHECK(read(a[0], buf, sizeof buf) == 7 && memcmp(buf, "teedata", 7) == 0, "source kept everything");
	CHECK_ERR(tee(a[0], b[1], 3, SPLICE_F_NONBLOCK), EAGAIN, "tee from an empty pipe, nonblocking EAGAIN");
	CHECK_ERR(tee(a[0], a[1], 3, 0), EINVAL, "tee to the same pipe EINVAL");
	int f = mkfile("teefile", "x");
	CHECK_ERR(tee(f, b[1], 3, 0), EINVAL, "tee from a file EINVAL");
	close(f);

	struct iovec iov[2] = {{"vm", 2}, {"splice", 6}};
	CHECK(vmsplice(a[1], iov, 2, 0) == 8, "vmsplice into a pipe");
	char x[4], y[8] = {0};
	struct iovec out[2] = {{x, 4}, {y, 4}};
	CHECK(vmsplice(a[0], out, 2, 0) == 8 && memcmp(x, "vmsp", 4) == 0 && memcmp(y, "lice", 4) == 0,
	      "vmsplice out of a pipe");
	CHECK_ERR(vmsplice(a[0], out, 2, SPLICE_F_NONBLOCK), EAGAIN, "vmsplice from empty, nonblocking EAGAIN");
	f = mkfile("vmfile", NULL);
	CHECK_ERR(vmsplice(f, iov, 1, 0), EBADF, "vmsplice on a file EBADF");
	close(f);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

static void test_sendfile_copy(void)
{
	int in = mkfile("in", "sendfile data!");
	int out = mkfile("out", NULL);
	off_t off = 9;
	CHECK(sendfile(out, in, &off, 100) == 5 && off == 14, "sendfile with an offset");
	CHECK(sendfile(out, in, NULL, 8) == 8 && lseek(in, 0, SEEK_CUR) == 8, "sendfile from the file offset");
	char buf[32] = {0};
	CHECK(pread(out, buf, sizeof buf, 0) == 13 && memcmp(buf, "data!sendfile", 13) == 0, "sendfile output");
	int p[2];
	pipe(p);
	lseek(in, 0, SEEK_SET);
	CHECK(sendfile(p[1], in, NULL, 4) == 4 && read(p[0], buf, 4) == 4 && memcmp(buf, "send", 4) == 0, "sendfile to a pipe");
	close(p[0]);
	close(p[1]);

	int dst = mkfile("copy", NULL);
	loff_t ioff = 0, ooff = 2;
	CHECK(copy_file_range(in, &ioff, dst, &ooff, 8, 0) == 8 && ioff == 8 && ooff == 10, "copy_file_range with offsets");
	memset(buf, 0, sizeof buf);
	CHECK(pread(dst, buf, sizeof buf, 0) == 10 && memcmp(buf + 2, "sendfile", 8) == 0 && buf[0] == 0,
	      "copied at the offset, hole before");
	lseek(in, 9, SEEK_SET);
	lseek(dst, 0, SEEK_SET);
	CHECK(copy_file_range(in, NULL, dst, NULL, 100, 0) == 5, "copy_file_range to EOF from file offsets");
	CHECK(lseek(in, 0, SEEK_CUR) == 14 && lseek(dst, 0, SEEK_CUR) == 5, "file offsets advanced");
	CHECK(copy_file_range(in, NULL, dst, NULL, 100, 0) == 0, "at EOF 0");
	CHECK_ERR(copy_file_range(in, NULL, dst, NULL, 1, 1), EINVAL, "flags EINVAL");
	ioff = 0;
	ooff = 2;
	CHECK_ERR(copy_file_range(in, &ioff, in, &ooff, 4, 0), EINVAL, "overlapping ranges of one file EINVAL");
	int dir = open(base, O_RDONLY | O_DIRECTORY);
	CHECK_ERR(copy_file_range(dir, NULL, dst, NULL, 1, 0), EISDIR, "directory EISDIR");
	close(dir);
	int ap = open(P("copy"), O_WRONLY | O_APPEND);
	CHECK_ERR(copy_file_range(in, NULL, ap, NULL, 1, 0), EBADF, "O_APPEND output EBADF");
	close(ap);
	pipe(p);
	CHECK_ERR(copy_file_range(p[0], NULL, dst, NULL, 1, 0), EINVAL, "pipe input EINVAL");
	close(p[0]);
	close(p[1]);
	close(in);
	close(out);
	close(dst);
}

static void test_fallocate(void)
{
	int fd = mkfile("falloc", NULL);
	struct stat st;
	int r = fallocate(fd, 0, 0, 10000);
	if (r != 0 && errno == EOPNOTSUPP) {
		printf("note: fallocate unsupported on %s\n", base);
		close(fd);
		return;
	}
	CHECK(r == 0 && fstat(fd, &st) == 0 && st.st_size == 10000 && st.st_blocks * 512 >= 10000, "fallocate 0 grows and allocates");
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE, 10000, 10000) == 0 && fstat(fd, &st) == 0 && st.st_size == 10000 &&
		      st.st_blocks * 512 >= 20000,
	      "KEEP_SIZE allocates without growing");
	char data[8192];
	memset(data, 'd', sizeof data);
	pwrite(fd, data, sizeof data, 0);
	blkcnt_t before = st.st_blocks;
	CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 8000) == 0, "PUNCH_HOLE|KEEP_SIZE");
	char back[8192];
	CHECK(pread(fd, back, sizeof back, 0) == sizeof back, "read back");
	int zero = 1;
	for (int i = 100; i < 8100; i++)
		zero &= back[i] == 0;
	CHECK(zero && back[99] == 'd' && back[8100] == 'd', "hole reads as zeros, edges kept");
	CHECK(fstat(fd, &st) == 0 && st.st_size == 10000 && st.st_blocks <= before, "size kept, blocks not grown");
	CHECK_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10), EOPNOTSUPP, "PUNCH_HOLE without KEEP_SIZE EOPNOTSUPP");
	CHECK_ERR(fallocate(fd, 0, -1, 10), EINVAL, "negative offset EINVAL");
	CHECK_ERR(fallocate(fd, 0, 0, 0), EINVAL, "zero length EINVAL");
	CHECK_ERR(fallocate(fd, 0x1000, 0, 10), EOPNOTSUPP, "unknown mode EOPNOTSUPP");
	int ro = open(P("falloc"), O_RDONLY);
	CHECK_ERR(fallocate(ro, 0, 0, 10), EBADF, "read-only fd EBADF");
	close(ro);
	int p[2];
	pipe(p);
	CHECK_ERR(fallocate(p[1], 0, 0, 10), ESPIPE, "pipe ESPIPE");
	close(p[0]);
	close(p[1]);
	int dir = open(base, O_RDONLY | O_DIRECTORY);
	CHECK_ERR(fallocate(dir, 0, 0, 10), EBADF, "directory (read-only) EBADF");
	close(dir);
	CHECK_ERR(fallocate(fd, 0, 0x7fffffffffffff00LL, 0x1000), EFBIG, "past the maximum size EFBIG");
	close(fd);
}

static void test_sync(void)
{
	int fd = mkfile("sync", "data");
	CHECK(fsync(fd) == 0, "fsync");
	CHECK(fdatasync(fd) == 0, "fdatasync");
	CHECK(syncfs(fd) == 0, "syncfs");
	sync();
	CHECK(sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0, "sync_file_range");
	CHECK_ERR(sync_file_range(fd, 0, 0, 8), EINVAL, "sync_file_range bad flag EINVAL");
	CHECK_ERR(sync_file_range(fd, -1, 0, 0), EINVAL, "sync_file_range negative offset EINVAL");
	int dir = open(base, O_RDONLY | O_DIRECTORY);
	CHECK(fsync(dir) == 0, "fsync of a directory");
	close(dir);
	int p[2];
	pipe(p);
	CHECK_ERR(fsync(p[0]), EINVAL, "fsync of a pipe EINVAL");
	CHECK_ERR(sync_file_range(p[0], 0, 0, 0), ESPIPE, "sync_file_range on a pipe ESPIPE");
	CHECK(posix_fadvise(p[0], 0, 0, POSIX_FADV_NORMAL) == ESPIPE, "fadvise on a pipe ESPIPE");
	close(p[0]);
	close(p[1]);
	CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) == 0, "fadvise");
	CHECK(posix_fadvise(fd, 0, 0, 99) == EINVAL, "fadvise bad advice EINVAL");
	CHECK_ERR(fsync(-1), EBADF, "fsync bad fd EBADF");
	close(fd);
}

int main(void)
{
	check_path(base, sizeof base, "splice");
	if (mkdir(base, 0755) != 0) {
		perror("mkdir");
		return 1;
	}
	test_splice();
	test_tee_vmsplice();
	test_sendfile_copy();
	test_fallocate();
	test_sync();
	const char *names[] = {"src", "dst", "teefile", "vmfile", "in", "out", "copy", "falloc", "sync"};
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(P(names[i]));
	rmdir(base);
	return check_summary();
}
