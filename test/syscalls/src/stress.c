/*
 * stress (SANDBOX ONLY — never run natively; the harness refuses to):
 * for the number of seconds given as argv[1] (default 5), keeps a few
 * children busy making random syscalls with random arguments (except
 * fuzz_excluded's list), reaps them, and reports. Children may die of what
 * they do to themselves; what must hold is that the sandbox survives: every
 * child can be reaped, and the parent still works afterwards.
 */
#include "check.h"
#include "fuzz.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#define WORKERS 3
#define CHILD_SECONDS 1

static uint64_t rng;

static uint64_t next(void)
{
	/* xorshift64*: plenty for argument soup. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char scratch[65536];

/* arg draws from values that are interesting to a kernel: small numbers
 * (fds, flags, signals), edges, our own scratch memory, and garbage or
 * kernel pointers. */
static unsigned long arg(void)
{
	switch (next() % 10) {
	case 0:
		return 0;
	case 1:
		return next() % 8;
	case 2:
		return next() % 4096;
	case 3:
		return ~0UL;
	case 4:
		return (unsigned long)scratch + next() % (sizeof(scratch) - 512);
	case 5:
		return 0xffff800000000000UL + (next() & 0xffffff);
	case 6:
		return 1UL << (next() % 64);
	case 7:
		return next() & 0x7fffffffUL;
	case 8:
		return (next() & 0x7ffffffff000UL);
	default:
		return next();
	}
}

static void child(uint64_t seed, double until)
{
	/* Keep the harness's output clean: fuzzing writes land in /dev/null. */
	int null = open("/dev/null", O_RDWR);
	for (int fd = 0; fd < 3; fd++) {
		if (null >= 0)
			dup2(null, fd);
		else
			close(fd);
	}
	fuzz_signals();
	rng = seed | 1;
	for (size_t i = 0; i < sizeof(scratch); i++)
		scratch[i] = (char)next();
	pid_t me = getpid();
	while (now() < until) {
		long nr = (long)(next() % (FUZZ_MAX_NR + 1));
		if (fuzz_excluded(nr))
			continue;
		fuzz_guard(100);
		syscall(nr, arg(), arg(), arg(), arg(), arg(), arg());
		fuzz_guard(0);
		if (getpid() != me)
			_exit(0);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 5;
	if (seconds <= 0)
		seconds = 5;
	uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)time(NULL);
	printf("stress: %.1f s, seed %llu\n", seconds, (unsigned long long)seed);
	fflush(stdout);
	rng = seed | 1;

	/* The parent ignores what a stray call might send it; it still gets
	 * SIGCHLD semantics for reaping because SIGCHLD stays default. */
	for (int s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD && s != SIGSEGV && s != SIGBUS && s != SIGFPE &&
		    s != SIGILL && s != SIGTRAP)
			signal(s, SIG_IGN);

	double end = now() + seconds;
	pid_t kids[WORKERS] = {0};
	double deadline[WORKERS] = {0};
	long spawned = 0, exited = 0, signalled = 0, overdue = 0, unreaped = 0;
	int by_signal[65] = {0};

	for (;;) {
		double t = now();
		for (int i = 0; i < WORKERS; i++) {
			if (kids[i] == 0 && t < end) {
				double until = t + CHILD_SECONDS < end ? t + CHILD_SECONDS : end;
				uint64_t s = next();
				pid_t c = check_fork();
				if (c == 0)
					child(s, until);
				if (c > 0) {
					kids[i] = c;
					deadline[i] = until + 5;
					spawned++;
				}
			}
		}
		int live = 0;
		for (int i = 0; i < WORKERS; i++) {
			if (kids[i] == 0)
				continue;
			int st;
			pid_t r = waitpid(kids[i], &st, WNOHANG);
			if (r == kids[i]) {
				if (WIFSIGNALED(st)) {
					signalled++;
					by_signal[WTERMSIG(st) & 63]++;
				} else {
					exited++;
				}
				kids[i] = 0;
				continue;
			}
			live++;
			if (now() > deadline[i]) {
				/* Stuck in something the safety timer could not
				 * interrupt: kill it and make sure it goes. */
				overdue++;
				kill(kids[i], SIGKILL);
				double give_up = now() + 10;
				while (waitpid(kids[i], &st, WNOHANG) != kids[i]) {
					if (now() > give_up) {
						unreaped++;
						break;
					}
					usleep(10000);
				}
				kids[i] = 0;
			}
		}
		if (live == 0 && now() >= end)
			break;
		usleep(5000);
	}
	/* Grandchildren are not ours to wait for, but reap any that got
	 * reparented to us (we may be the sandbox's init). */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;

	printf("children: %ld spawned, %ld exited, %ld killed by a signal, %ld overdue and killed\n", spawned,
	       exited, signalled, overdue);
	for (int s = 1; s < 65; s++)
		if (by_signal[s])
			printf("  killed by signal %d (%s): %d\n", s, strsignal(s), by_signal[s]);

	CHECK(spawned > 0, "children spawned");
	CHECK(spawned == exited + signalled + overdue, "every child accounted for");
	CHECK(unreaped == 0, "every child reaped after SIGKILL");
	int p[2];
	CHECK(pipe(p) == 0 && write(p[1], "ok", 2) == 2, "parent pipe works afterwards");
	char b[2];
	CHECK(read(p[0], b, 2) == 2 && b[1] == 'k', "parent read works afterwards");
	pid_t c = check_fork();
	if (c == 0)
		_exit(42);
	int st;
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 42, "fork and wait work afterwards");
	return check_summary();
}
