/*
 * clockgettime: the cost of reading the time. Times argv[1] calls of
 * clock_gettime(CLOCK_MONOTONIC) through libc (which uses the vDSO when
 * there is one) and prints "ns/op <float>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000000;
	struct timespec a, b, ts;
	long long sink = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		sink += ts.tv_nsec;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("ns/op %.1f\n", ns / (double)n);
	return sink == 42; /* keep the loop */
}
