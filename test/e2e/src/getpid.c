/*
 * getpid N DELAY_MS: sleeps DELAY_MS, forks a child that touches 64 pages
 * of fresh memory and exits (a new address space: the sentry makes a stub
 * for it and maps memory into it), then calls getpid(2) N times through
 * syscall(2), so that libc cannot cache the answer, and prints the last
 * result. Used by TestStubHostSyscalls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	long ms = argc > 2 ? atol(argv[2]) : 0;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	pid_t c = fork();
	if (c < 0) {
		perror("fork");
		return 1;
	}
	if (c > 0) {
		int st;
		if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "child failed\n");
			return 1;
		}
		long pid = 0;
		for (long i = 0; i < n; i++)
			pid = syscall(SYS_getpid);
		printf("getpid x%ld = %ld\n", n, pid);
		return 0;
	}
	char *p = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (int i = 0; i < 64; i++)
		p[i * 4096] = (char)i;
	_exit(0);
}
