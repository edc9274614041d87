/*
 * badinput (SANDBOX ONLY — never run natively; the harness refuses to):
 * first checks that bad pointers and lengths given to common calls get
 * the errno Linux documents, then calls every syscall number from 0 to
 * FUZZ_MAX_NR with garbage arguments (except fuzz_excluded's list) and
 * must survive to print its summary. Rule 5 of the design: bad input gets
 * an errno, never a crash of the sentry.
 *
 * Built with -DBADINPUT_CHECKS_ONLY it leaves out the sweep, which makes
 * the errno checks safe to validate natively by hand.
 */
#include "check.h"
#include "fuzz.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#define KERNEL_PTR 0xffff800000000000UL
#define HUGE_LEN (1UL << 63)

static long sys(long nr, long a, long b, long c, long d, long e, long f)
{
	return syscall(nr, a, b, c, d, e, f);
}

static void run_checks(void)
{
	/* An address that was mapped and is not any more. */
	char *gone = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(gone, 4096);
	long bad_ptrs[] = {0, (long)KERNEL_PTR, (long)gone, -1L};
	const char *names[] = {"NULL", "kernel-half", "unmapped", "all-ones"};

	int p[2];
	pipe(p);
	int devnull = open("/dev/null", O_RDWR);
	char path[512];
	check_path(path, sizeof(path), "badinput");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	write(fd, "0123456789", 10);
	char buf[64];
	struct stat st;

	for (unsigned i = 0; i < 4; i++) {
		long bp = bad_ptrs[i];
		char name[128];
		write(p[1], "abc", 3);
#define NAMED(what) (snprintf(name, sizeof(name), "%s %s", what, names[i]), name)
		CHECK_ERR(sys(SYS_read, p[0], bp, 3, 0, 0, 0), EFAULT, NAMED("read into"));
		CHECK_ERR(sys(SYS_pread64, fd, bp, 3, 0, 0, 0), EFAULT, NAMED("pread into"));
		CHECK_ERR(sys(SYS_write, p[1], bp, 3, 0, 0, 0), EFAULT, NAMED("write from"));
		CHECK_ERR(sys(SYS_write, fd, bp, 3, 0, 0, 0), EFAULT, NAMED("file write from"));
		CHECK_ERR(sys(SYS_open, bp, O_RDONLY, 0, 0, 0, 0), EFAULT, NAMED("open path"));
		CHECK_ERR(sys(SYS_openat, AT_FDCWD, bp, O_RDONLY, 0, 0, 0), EFAULT, NAMED("openat path"));
		CHECK_ERR(sys(SYS_stat, bp, (long)&st, 0, 0, 0, 0), EFAULT, NAMED("stat path"));
		CHECK_ERR(sys(SYS_stat, (long)path, bp, 0, 0, 0, 0), EFAULT, NAMED("stat buffer"));
		CHECK_ERR(sys(SYS_fstat, fd, bp, 0, 0, 0, 0), EFAULT, NAMED("fstat buffer"));
		CHECK_ERR(sys(SYS_lstat, bp, (long)&st, 0, 0, 0, 0), EFAULT, NAMED("lstat path"));
		CHECK_ERR(sys(SYS_readlink, bp, (long)buf, sizeof(buf), 0, 0, 0), EFAULT, NAMED("readlink path"));
		CHECK_ERR(sys(SYS_getcwd, bp, 4096, 0, 0, 0, 0), EFAULT, NAMED("getcwd buffer"));
		CHECK_ERR(sys(SYS_uname, bp, 0, 0, 0, 0, 0), EFAULT, NAMED("uname buffer"));
		CHECK_ERR(sys(SYS_pipe, bp, 0, 0, 0, 0, 0), EFAULT, NAMED("pipe array"));
		CHECK_ERR(sys(SYS_clock_gettime, CLOCK_MONOTONIC, bp, 0, 0, 0, 0), EFAULT, NAMED("clock_gettime"));
		CHECK_ERR(sys(SYS_nanosleep, bp, 0, 0, 0, 0, 0), EFAULT, NAMED("nanosleep request"));
		CHECK_ERR(sys(SYS_getrlimit, RLIMIT_NOFILE, bp, 0, 0, 0, 0), EFAULT, NAMED("getrlimit"));
		if (bp != 0) { /* NULL is valid here: it means "only query" */
			CHECK_ERR(sys(SYS_rt_sigaction, SIGUSR1, bp, 0, 8, 0, 0), EFAULT, NAMED("rt_sigaction act"));
			CHECK_ERR(sys(SYS_rt_sigprocmask, SIG_BLOCK, bp, 0, 8, 0, 0), EFAULT,
				  NAMED("rt_sigprocmask set"));
		}
		CHECK_ERR(sys(SYS_execve, bp, 0, 0, 0, 0, 0), EFAULT, NAMED("execve path"));
		CHECK_ERR(sys(SYS_chdir, bp, 0, 0, 0, 0, 0), EFAULT, NAMED("chdir path"));
		CHECK_ERR(sys(SYS_mkdir, bp, 0700, 0, 0, 0, 0), EFAULT, NAMED("mkdir path"));
		CHECK_ERR(sys(SYS_unlink, bp, 0, 0, 0, 0, 0), EFAULT, NAMED("unlink path"));
		CHECK_ERR(sys(SYS_wait4, -1, bp, 0, 0, 0, 0), ECHILD, NAMED("wait4 without children"));
		CHECK_ERR(sys(SYS_getdents64, fd, bp, 4096, 0, 0, 0), ENOTDIR, NAMED("getdents64 on file"));
		struct iovec iov = {(void *)bp, 3};
		CHECK_ERR(sys(SYS_writev, p[1], (long)&iov, 1, 0, 0, 0), EFAULT, NAMED("writev iov_base"));
		CHECK_ERR(sys(SYS_readv, fd, bp, 1, 0, 0, 0), EFAULT, NAMED("readv iov array"));
		char drain[8];
		read(p[0], drain, sizeof(drain));
	}

	/* Zero-length transfers never touch the buffer, so NULL is fine. */
	CHECK(sys(SYS_write, p[1], 0, 0, 0, 0, 0) == 0, "write NULL, 0 bytes returns 0");
	CHECK(sys(SYS_read, fd, 0, 0, 0, 0, 0) == 0, "read NULL, 0 bytes returns 0");

	/* 2^63 lengths: the range fails access checks before anything moves. */
	CHECK_ERR(sys(SYS_read, fd, (long)buf, (long)HUGE_LEN, 0, 0, 0), EFAULT, "read 2^63 bytes");
	CHECK_ERR(sys(SYS_write, devnull >= 0 ? devnull : fd, (long)buf, (long)HUGE_LEN, 0, 0, 0), EFAULT,
		  "write 2^63 bytes");
	CHECK_ERR(sys(SYS_pread64, fd, (long)buf, 4, (long)HUGE_LEN, 0, 0), EINVAL, "pread at offset 2^63 EINVAL");
	CHECK_ERR(sys(SYS_lseek, fd, (long)HUGE_LEN, SEEK_SET, 0, 0, 0), EINVAL, "lseek to 2^63 EINVAL");
	CHECK_ERR(sys(SYS_mmap, 0, (long)HUGE_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), ENOMEM,
		  "mmap 2^63 bytes ENOMEM");
	CHECK_ERR(sys(SYS_mmap, 0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), EINVAL, "mmap 0 bytes EINVAL");
	CHECK_ERR(sys(SYS_mmap, (long)KERNEL_PTR, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
		  ENOMEM, "mmap MAP_FIXED in kernel half ENOMEM");
	CHECK_ERR(sys(SYS_munmap, (long)KERNEL_PTR, 4096, 0, 0, 0, 0), EINVAL, "munmap kernel half EINVAL");
	CHECK_ERR(sys(SYS_mprotect, (long)KERNEL_PTR, 4096, PROT_READ, 0, 0, 0), ENOMEM, "mprotect kernel half ENOMEM");
	CHECK_ERR(sys(SYS_munmap, 0, (long)HUGE_LEN, 0, 0, 0, 0), EINVAL, "munmap 2^63 bytes EINVAL");
	CHECK_ERR(sys(SYS_mremap, (long)KERNEL_PTR, 4096, 8192, 0, 0, 0), EFAULT, "mremap kernel half EFAULT");
	CHECK_ERR(sys(SYS_madvise, (long)KERNEL_PTR, 4096, MADV_DONTNEED, 0, 0, 0), ENOMEM, "madvise kernel half ENOMEM");
	struct iovec huge = {buf, HUGE_LEN};
	CHECK_ERR(sys(SYS_readv, fd, (long)&huge, 1, 0, 0, 0), EINVAL, "readv 2^63 iov_len EINVAL");
	CHECK_ERR(sys(SYS_readv, fd, (long)&huge, 1 << 20, 0, 0, 0), EINVAL, "readv 2^20 iovecs EINVAL");

	/* Bad descriptors, flags and numbers. */
	CHECK_ERR(sys(SYS_read, -1, (long)buf, 1, 0, 0, 0), EBADF, "read fd -1 EBADF");
	CHECK_ERR(sys(SYS_read, 1 << 30, (long)buf, 1, 0, 0, 0), EBADF, "read fd 2^30 EBADF");
	CHECK_ERR(sys(SYS_close, -1, 0, 0, 0, 0, 0), EBADF, "close -1 EBADF");
	CHECK_ERR(sys(SYS_open, (long)path, O_RDONLY | O_CREAT | O_DIRECTORY, 0600, 0, 0, 0), EINVAL,
		  "open O_CREAT|O_DIRECTORY EINVAL");
	CHECK_ERR(sys(SYS_lseek, fd, 0, 99, 0, 0, 0), EINVAL, "lseek whence 99 EINVAL");
	CHECK_ERR(sys(SYS_rt_sigaction, 0, 0, 0, 8, 0, 0), EINVAL, "rt_sigaction signal 0 EINVAL");
	CHECK_ERR(sys(SYS_rt_sigaction, SIGUSR1, 0, 0, 3, 0, 0), EINVAL, "rt_sigaction sigsetsize 3 EINVAL");
	CHECK_ERR(sys(SYS_clock_gettime, -12345, (long)buf, 0, 0, 0, 0), EINVAL, "clock_gettime bad clock EINVAL");
	CHECK_ERR(sys(SYS_fcntl, fd, 0x7fffffff, 0, 0, 0, 0), EINVAL, "fcntl unknown command EINVAL");
	CHECK_ERR(sys(SYS_ioctl, fd, 0x7fff, 0, 0, 0, 0), ENOTTY, "ioctl unknown request on file ENOTTY");
	CHECK_ERR(sys(FUZZ_MAX_NR, 0, 0, 0, 0, 0, 0), ENOSYS, "syscall 600 ENOSYS");
	CHECK_ERR(sys(100000, 0, 0, 0, 0, 0, 0), ENOSYS, "syscall 100000 ENOSYS");
	CHECK_ERR(sys(-1, 0, 0, 0, 0, 0, 0), ENOSYS, "syscall -1 ENOSYS");
	CHECK_ERR(sys(SYS_ptrace + 0x40000000L, 0, 0, 0, 0, 0, 0), ENOSYS, "x32-bit syscall number ENOSYS");

	close(fd);
	unlink(path);
	close(p[0]);
	close(p[1]);
	if (devnull >= 0)
		close(devnull);
}

#ifndef BADINPUT_CHECKS_ONLY
/* sweep makes every non-excluded call with each argument pattern. It
 * returns how many calls were made; the safety timer counts the ones that
 * blocked and were interrupted. */
static long sweep(long *interrupted, long *enosys)
{
	static const unsigned long patterns[][6] = {
		{0, 0, 0, 0, 0, 0},
		{~0UL, ~0UL, ~0UL, ~0UL, ~0UL, ~0UL},
		{0x4141414141414141UL, 0x4141414141414141UL, 0x4141414141414141UL, 0x4141414141414141UL,
		 0x4141414141414141UL, 0x4141414141414141UL},
		{KERNEL_PTR, KERNEL_PTR, KERNEL_PTR, KERNEL_PTR, KERNEL_PTR, KERNEL_PTR},
		{~0UL, 0x4141414141414141UL, KERNEL_PTR, HUGE_LEN, 0, 0xdeadbeefUL},
		{HUGE_LEN, KERNEL_PTR, HUGE_LEN, KERNEL_PTR, HUGE_LEN, KERNEL_PTR},
	};
	long calls = 0;
	pid_t me = getpid();
	for (unsigned pi = 0; pi < sizeof(patterns) / sizeof(patterns[0]); pi++) {
		for (long nr = 0; nr <= FUZZ_MAX_NR; nr++) {
			if (fuzz_excluded(nr))
				continue;
			const unsigned long *a = patterns[pi];
			fuzz_guard(300);
			errno = 0;
			long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
			int e = errno;
			fuzz_guard(0);
			if (getpid() != me)
				_exit(0); /* a fork-like call we did not foresee */
			calls++;
			if (r == -1 && e == EINTR)
				(*interrupted)++;
			if (r == -1 && e == ENOSYS)
				(*enosys)++;
			/* Close descriptors the call may have made, so later
			 * patterns meet the same fd table. */
			for (int fd = 3; fd < 64; fd++)
				if (fd != 900)
					close(fd);
		}
	}
	return calls;
}
#endif

int main(void)
{
	/* Keep a copy of stdout out of the sweep's reach (fds 0..63 get
	 * closed or clobbered), and make stdin an empty pipe so that a read
	 * of fd 0 ends at once instead of waiting for a terminal. */
	int out = fcntl(1, F_DUPFD_CLOEXEC, 900);
	int in[2];
	if (pipe(in) == 0) {
		dup2(in[0], 0);
		close(in[0]);
		close(in[1]);
	}

	run_checks();

#ifndef BADINPUT_CHECKS_ONLY
	fuzz_signals();
	long interrupted = 0, enosys = 0;
	fflush(stdout);
	long calls = sweep(&interrupted, &enosys);
	if (out >= 0)
		dup2(out, 1);
	printf("swept %ld calls over syscalls 0..%d: %ld ENOSYS, %ld interrupted by the safety timer\n", calls,
	       FUZZ_MAX_NR, enosys, interrupted);
	CHECK(calls > 1000, "garbage sweep completed");
	/* The process must still work normally afterwards. */
	int p[2];
	CHECK(pipe(p) == 0 && write(p[1], "ok", 2) == 2, "pipe works after sweep");
	char b[2];
	CHECK(read(p[0], b, 2) == 2 && b[0] == 'o', "read works after sweep");
#else
	(void)out;
#endif
	return check_summary();
}
