/*
 * clockloop N: reads the time N times each through libc's clock_gettime
 * (CLOCK_MONOTONIC and CLOCK_REALTIME), gettimeofday, time and
 * sched_getcpu, checking that CLOCK_MONOTONIC never goes back, then makes
 * one clock_gettime syscall directly (so that a tracer that sees no other
 * clock call is known to be watching). Used by TestVDSONoTraps.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	struct timespec ts, rt;
	struct timeval tv;
	long long last = 0, back = 0;
	int cpu = 0;
	time_t t = 0;
	for (long i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		long long now = ts.tv_sec * 1000000000LL + ts.tv_nsec;
		if (now < last)
			back++;
		last = now;
		clock_gettime(CLOCK_REALTIME, &rt);
		gettimeofday(&tv, NULL);
		t = time(NULL);
		cpu = sched_getcpu();
	}
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	printf("clock calls x%ld: back %lld, time %s, cpu %s\n", n, back,
	       t >= rt.tv_sec - 1 && t <= tv.tv_sec ? "ok" : "wrong", cpu >= 0 ? "ok" : "wrong");
	return back != 0;
}
