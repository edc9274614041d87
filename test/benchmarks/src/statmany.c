/*
 * statmany: stat(2) of every file dD/fF (D < argv[2], F < argv[3]) under
 * argv[1], once, in directory order: the first look at a tree, cold for a
 * fresh sandbox. Prints "ms <float>" for the whole pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: statmany DIR NDIRS NFILES\n");
		return 2;
	}
	int nd = atoi(argv[2]), nf = atoi(argv[3]);
	char path[4096];
	struct stat st;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int d = 0; d < nd; d++)
		for (int f = 0; f < nf; f++) {
			snprintf(path, sizeof(path), "%s/d%d/f%d", argv[1], d, f);
			if (stat(path, &st) != 0) {
				perror(path);
				return 1;
			}
		}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("ms %.3f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e6);
	return 0;
}
