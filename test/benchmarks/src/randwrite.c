/*
 * randwrite: creates argv[2] (64 MiB, written once sequentially), then
 * makes argv[1] 4 KiB pwrite(2)s at random 4 KiB-aligned offsets in it;
 * prints "ns/op <float>" per random write and removes the file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_SIZE (64L << 20)
#define BLOCK 4096

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: randwrite N FILE\n");
		return 2;
	}
	long n = atol(argv[1]);
	static char buf[1 << 20];
	memset(buf, 'x', sizeof(buf));
	int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	for (long off = 0; off < FILE_SIZE; off += sizeof(buf))
		if (pwrite(fd, buf, sizeof(buf), off) != sizeof(buf)) {
			perror("fill");
			return 1;
		}
	unsigned seed = 42;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		off_t off = (off_t)(rand_r(&seed) % (FILE_SIZE / BLOCK)) * BLOCK;
		if (pwrite(fd, buf, BLOCK, off) != BLOCK) {
			perror("pwrite");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	close(fd);
	unlink(argv[2]);
	printf("ns/op %.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
