/*
 * kill: SIGKILL ends a process wherever it waits or works: blocked in
 * read, futex, wait4, nanosleep, flock, sigsuspend with every signal
 * blocked, a vfork parent whose child is stopped, a thread group with
 * threads in several of these, a long write into a pipe that a slow
 * reader drains, and a stopped process. Each victim must be reaped,
 * killed by SIGKILL, within a few seconds.
 */
#define _GNU_SOURCE
#include "check.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

/* orphans holds the PIDs of processes the victims leave behind (shared
 * memory, written by the victims), for main to end. */
static pid_t *orphans;

static void orphan(pid_t pid)
{
	for (int i = 0; i < 16; i++)
		if (__sync_bool_compare_and_swap(&orphans[i], 0, pid))
			return;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* reap waits up to 10 s for pid and reports whether it died of SIGKILL. */
static int reap(pid_t pid)
{
	double give_up = now() + 10;
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
		if (r < 0 || now() > give_up)
			return 0;
		usleep(2000);
	}
}

/* victim forks a child that signals readiness on a pipe, then runs fn;
 * the parent kills it a little after it is ready and checks it goes. */
static void victim(const char *what, void (*fn)(void))
{
	int p[2];
	if (pipe(p) != 0) {
		CHECK(0, "pipe");
		return;
	}
	fflush(stdout);
	pid_t c = check_fork();
	if (c == 0) {
		close(p[0]);
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL); /* SIGKILL cannot be blocked */
		write(p[1], "r", 1);
		close(p[1]);
		fn();
		_exit(1);
	}
	close(p[1]);
	char b;
	read(p[0], &b, 1);
	close(p[0]);
	usleep(100000); /* let it block */
	kill(c, SIGKILL);
	char msg[128];
	snprintf(msg, sizeof(msg), "SIGKILL ends a process %s", what);
	CHECK(reap(c), msg);
}

static void in_pipe_read(void)
{
	int p[2];
	char b;
	pipe(p);
	read(p[0], &b, 1);
}

static uint32_t futex_word;

static void in_futex(void)
{
	syscall(SYS_futex, &futex_word, FUTEX_WAIT, 0, NULL, NULL, 0);
}

static void in_wait4(void)
{
	pid_t c = fork();
	if (c == 0) {
		pause();
		_exit(0);
	}
	orphan(c);
	wait(NULL);
}

static void in_nanosleep(void)
{
	struct timespec ts = {1000, 0};
	nanosleep(&ts, NULL);
}

static void in_sigsuspend(void)
{
	sigset_t all;
	sigfillset(&all);
	sigsuspend(&all);
}

static char lockpath[] = "/tmp/veil-kill-lock-XXXXXX";

static void in_flock(void)
{
	int fd = open(lockpath, O_RDWR);
	flock(fd, LOCK_EX);
}

static void in_vfork(void)
{
	if (vfork() == 0) {
		/* The parent waits for exec or exit: it gets neither. */
		orphan(getpid());
		raise(SIGSTOP);
		_exit(0);
	}
}

static void *thread_read(void *arg)
{
	(void)arg;
	in_pipe_read();
	return NULL;
}

static void *thread_futex(void *arg)
{
	(void)arg;
	in_futex();
	return NULL;
}

static void in_threads(void)
{
	pthread_t a, b;
	pthread_create(&a, NULL, thread_read, NULL);
	pthread_create(&b, NULL, thread_futex, NULL);
	in_nanosleep();
}

/* A writer of 64 MiB into a pipe whose reader takes 4 KiB every 10 ms:
 * the write would take minutes. */
static void in_long_pipe_write(void)
{
	int p[2];
	pipe(p);
	pid_t c = fork();
	if (c == 0) {
		close(p[1]);
		char b[4096];
		while (read(p[0], b, sizeof(b)) > 0)
			usleep(10000);
		_exit(0);
	}
	orphan(c);
	close(p[0]);
	size_t len = 64 << 20;
	char *buf = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	write(p[1], buf, len);
}

static void stopped(void)
{
	raise(SIGSTOP);
	in_nanosleep();
}

int main(void)
{
	orphans = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (orphans == MAP_FAILED) {
		CHECK(0, "mmap");
		return check_summary();
	}
	/* The victims' orphans come to us, to be ended and reaped. */
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "become a subreaper");
	int fd = mkstemp(lockpath);
	CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0, "lock held by the parent");

	victim("blocked in a pipe read", in_pipe_read);
	victim("blocked in futex wait", in_futex);
	victim("blocked in wait4", in_wait4);
	victim("blocked in nanosleep", in_nanosleep);
	victim("in sigsuspend with every signal blocked", in_sigsuspend);
	victim("waiting for a flock", in_flock);
	victim("whose vfork child is stopped", in_vfork);
	victim("of three threads, all blocked", in_threads);
	victim("in a long pipe write", in_long_pipe_write);
	victim("that is stopped", stopped);

	close(fd);
	unlink(lockpath);
	/* The victims' children (the wait4 and vfork children, the slow
	 * reader) are ours now. */
	int n = 0, reaped = 0;
	for (int i = 0; i < 16; i++)
		if (orphans[i] > 0) {
			kill(orphans[i], SIGKILL);
			n++;
			reaped += reap(orphans[i]);
		}
	CHECK(n == 3 && reaped == 3, "three orphans recorded, reparented to us and reaped");
	return check_summary();
}
