/*
 * seqread: reads argv[1] from start to end in 1 MiB read(2)s; prints
 * "MB/s <float>" (MB = 10^6 bytes).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: seqread FILE\n");
		return 2;
	}
	static char buf[1 << 20];
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	struct timespec a, b;
	long long total = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			perror("read");
			return 1;
		}
		if (n == 0)
			break;
		total += n;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("MB/s %.1f\n", total / s / 1e6);
	return 0;
}
