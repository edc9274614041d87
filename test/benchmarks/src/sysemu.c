/*
 * sysemu: the floor under the ptrace platform. A child makes argv[1]
 * getpid calls under PTRACE_SYSEMU; the tracer stops it at each one and
 * resumes it without running the call, exactly the round trip the ptrace
 * platform pays per application syscall before doing any work. Prints
 * "ns/op <float>" per stop and resume.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_SYSEMU
#define PTRACE_SYSEMU 31
#endif

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	/* Tracer and tracee share one CPU, as a tuned ptrace platform would
	 * arrange: a cross-CPU wake-up per stop costs far more than the stop. */
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	sched_setaffinity(0, sizeof(one), &one);
	pid_t c = fork();
	if (c == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		/* Emulated calls do nothing, so this loop never ends by itself;
		 * the tracer kills it. */
		for (;;)
			syscall(SYS_getpid);
	}
	int st;
	if (waitpid(c, &st, 0) != c || !WIFSTOPPED(st)) {
		fprintf(stderr, "child did not stop\n");
		return 1;
	}
	ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_EXITKILL);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (ptrace(PTRACE_SYSEMU, c, 0, 0) != 0) {
			perror("PTRACE_SYSEMU");
			return 1;
		}
		if (waitpid(c, &st, 0) != c || !WIFSTOPPED(st)) {
			fprintf(stderr, "unexpected wait status %x\n", st);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	kill(c, SIGKILL);
	waitpid(c, &st, 0);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("ns/op %.1f\n", ns / (double)n);
	return 0;
}
