// pingpong: one-line exchanges, for the run_group latency benchmark.
//
//   pingpong ping N   writes a line and reads the answer, N times; prints on
//                     stderr how long the N exchanges took, in nanoseconds,
//                     then the CPUs it ran on ("cpus 0:9990 1:10": CPU 0
//                     after 9990 of the answers, CPU 1 after 10)
//   pingpong pong     answers each line read with the same line; prints on
//                     stderr the CPUs it ran on, as ping does
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

enum { maxCPUs = 64 };
static long on[maxCPUs];

static void count_cpu(void) {
	int c = sched_getcpu();
	if (c >= 0 && c < maxCPUs) on[c]++;
}

static void print_cpus(void) {
	fprintf(stderr, "cpus");
	for (int c = 0; c < maxCPUs; c++)
		if (on[c]) fprintf(stderr, " %d:%ld", c, on[c]);
	fprintf(stderr, "\n");
}

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
			count_cpu();
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		fprintf(stderr, "%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec));
		print_cpus();
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "pong")) {
		while (fgets(line, sizeof line, stdin)) {
			count_cpu();
			fputs(line, stdout);
			fflush(stdout);
		}
		print_cpus();
		return 0;
	}
	fprintf(stderr, "usage: pingpong ping N | pingpong pong\n");
	return 2;
}
