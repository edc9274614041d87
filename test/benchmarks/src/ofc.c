/*
 * ofc: open+fstat+close of argv[2] repeated argv[1] times; prints
 * "ns/op <float>" per triple. The first open warms any cache, as a real
 * program reopening its configuration files would.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: ofc N FILE\n");
		return 2;
	}
	long n = atol(argv[1]);
	struct stat st;
	struct timespec a, b;
	int fd = open(argv[2], O_RDONLY);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	close(fd);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		fd = open(argv[2], O_RDONLY);
		if (fd < 0 || fstat(fd, &st) != 0) {
			perror("open/fstat");
			return 1;
		}
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("ns/op %.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
