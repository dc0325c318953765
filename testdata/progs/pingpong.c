// pingpong: one-line exchanges, for the run_group latency benchmark.
//
//   pingpong ping N   writes a line and reads the answer, N times; prints on
//                     stderr how long the N exchanges took, in nanoseconds
//   pingpong pong     answers each line read with the same line
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
	char line[64];
	if (argc > 2 && !strcmp(argv[1], "ping")) {
		long n = atol(argv[2]);
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (long i = 0; i < n; i++) {
			printf("%ld\n", i);
			fflush(stdout);
			if (!fgets(line, sizeof line, stdin) || atol(line) != i)
				return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		fprintf(stderr, "%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec));
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "pong")) {
		while (fgets(line, sizeof line, stdin)) {
			fputs(line, stdout);
			fflush(stdout);
		}
		return 0;
	}
	fprintf(stderr, "usage: pingpong ping N | pingpong pong\n");
	return 2;
}
