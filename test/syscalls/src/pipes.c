/*
 * pipes: bulk transfer between processes, EOF, EPIPE and SIGPIPE,
 * non-blocking EAGAIN, PIPE_BUF atomicity and FIONREAD.
 */
#include "check.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#define TOTAL (1 << 20)

/* fnv1a over a stream; any reordering, loss or duplication changes it. */
static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 31 + (i >> 8)); }

int main(void)
{
	int p[2];

	/* 1 MiB from a child, written in odd-sized chunks, checksummed. */
	CHECK(pipe(p) == 0, "pipe");
	pid_t c = check_fork();
	if (c == 0) {
		close(p[0]);
		unsigned char buf[7919];
		size_t sent = 0;
		while (sent < TOTAL) {
			size_t n = sizeof(buf);
			if (n > TOTAL - sent)
				n = TOTAL - sent;
			for (size_t i = 0; i < n; i++)
				buf[i] = pattern(sent + i);
			ssize_t w = write(p[1], buf, n);
			if (w <= 0)
				_exit(1);
			sent += (size_t)w;
		}
		_exit(0);
	}
	close(p[1]);
	uint64_t want = 1469598103934665603ULL, got = want;
	for (size_t i = 0; i < TOTAL; i++) {
		unsigned char b = pattern(i);
		want = fnv(want, &b, 1);
	}
	size_t total = 0;
	unsigned char rb[65536];
	ssize_t r;
	while ((r = read(p[0], rb, sizeof(rb))) > 0) {
		got = fnv(got, rb, (size_t)r);
		total += (size_t)r;
	}
	CHECK(r == 0, "read returns 0 at EOF after writer exits");
	CHECK(total == TOTAL, "1 MiB received");
	CHECK(got == want, "1 MiB checksum matches");
	int st;
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer child exited cleanly");
	close(p[0]);

	/* EOF only when every write end is closed, including duplicates. */
	pipe(p);
	int extra = dup(p[1]);
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	CHECK_ERR(read(p[0], rb, 1), EAGAIN, "no EOF while a dup of the write end lives");
	close(extra);
	CHECK(read(p[0], rb, 1) == 0, "EOF once all write ends closed");
	close(p[0]);

	/* EPIPE with SIGPIPE ignored; SIGPIPE delivered otherwise. */
	signal(SIGPIPE, SIG_IGN);
	pipe(p);
	close(p[0]);
	CHECK_ERR(write(p[1], "x", 1), EPIPE, "write with no reader EPIPE");
	close(p[1]);
	signal(SIGPIPE, SIG_DFL);
	c = check_fork();
	if (c == 0) {
		pipe(p);
		close(p[0]);
		write(p[1], "x", 1);
		_exit(0);
	}
	waitpid(c, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE, "write with no reader raises SIGPIPE");

	/* O_NONBLOCK: empty read and full write give EAGAIN. */
	CHECK(pipe2(p, O_NONBLOCK) == 0, "pipe2 O_NONBLOCK");
	CHECK_ERR(read(p[0], rb, 1), EAGAIN, "empty non-blocking read EAGAIN");
	size_t filled = 0;
	for (;;) {
		ssize_t w = write(p[1], rb, sizeof(rb));
		if (w < 0)
			break;
		filled += (size_t)w;
	}
	CHECK(errno == EAGAIN, "full non-blocking write EAGAIN");
	long cap = fcntl(p[1], F_GETPIPE_SZ);
	CHECK(cap > 0 && filled == (size_t)cap, "pipe holds exactly F_GETPIPE_SZ bytes");
	int avail = -1;
	CHECK(ioctl(p[0], FIONREAD, &avail) == 0 && avail == (int)filled, "FIONREAD counts buffered bytes");
	/* Partial read then FIONREAD again. */
	CHECK(read(p[0], rb, 100) == 100, "read 100");
	CHECK(ioctl(p[0], FIONREAD, &avail) == 0 && avail == (int)filled - 100, "FIONREAD after read");
	/* A PIPE_BUF-sized non-blocking write into 100 free bytes must not
	 * be split: it is all-or-nothing. */
	CHECK_ERR(write(p[1], rb, PIPE_BUF), EAGAIN, "atomic write does not partially fit");
	close(p[0]);
	close(p[1]);

	/* F_SETPIPE_SZ. */
	pipe(p);
	CHECK(fcntl(p[1], F_SETPIPE_SZ, 1 << 17) >= (1 << 17), "F_SETPIPE_SZ grows pipe");
	close(p[0]);
	close(p[1]);

	/* PIPE_BUF atomicity: writers of PIPE_BUF-sized records are never
	 * interleaved. Four children each write records filled with their
	 * own byte; every record read back must be uniform. */
	pipe(p);
	int writers = 4, records = 200;
	for (int w = 0; w < writers; w++) {
		if (check_fork() == 0) {
			close(p[0]);
			unsigned char rec[PIPE_BUF];
			memset(rec, 'A' + w, sizeof(rec));
			for (int i = 0; i < records; i++)
				if (write(p[1], rec, sizeof(rec)) != (ssize_t)sizeof(rec))
					_exit(1);
			_exit(0);
		}
	}
	close(p[1]);
	int uniform = 1, nrec = 0;
	unsigned char rec[PIPE_BUF];
	for (;;) {
		size_t got_n = 0;
		while (got_n < sizeof(rec)) {
			r = read(p[0], rec + got_n, sizeof(rec) - got_n);
			if (r <= 0)
				break;
			got_n += (size_t)r;
		}
		if (got_n == 0)
			break;
		if (got_n != sizeof(rec)) {
			uniform = 0;
			break;
		}
		for (size_t i = 1; i < sizeof(rec); i++)
			if (rec[i] != rec[0])
				uniform = 0;
		nrec++;
	}
	int ok = 1;
	for (int w = 0; w < writers; w++) {
		wait(&st);
		ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	CHECK(ok, "PIPE_BUF writers exited cleanly");
	CHECK(nrec == writers * records, "every PIPE_BUF record received");
	CHECK(uniform, "PIPE_BUF writes never interleaved");
	close(p[0]);

	/* Bad arguments. */
	CHECK_ERR(pipe2(p, 0x12345678 & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT)), EINVAL, "pipe2 bad flags EINVAL");
	pipe(p);
	CHECK_ERR(write(p[0], "x", 1), EBADF, "write to read end EBADF");
	CHECK_ERR(read(p[1], rb, 1), EBADF, "read from write end EBADF");
	CHECK_ERR(lseek(p[0], 0, SEEK_SET), ESPIPE, "lseek on pipe ESPIPE");
	close(p[0]);
	close(p[1]);

	return check_summary();
}
