// square: programs of a pipeline and of a communication task, for run_group tests.
//
//   square gen N        writes 1..N, one a line
//   square sol          answers each number read with its square, flushed
//   square check N      reads N squares of 1..N: exit 0 when all are right, else 1
//   square manager N    asks two solutions (fds 3 → 4 and 5 → 6) for N squares
//                       each, in turns: exit 0 when all are right, else 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
	long n = argc > 2 ? atol(argv[2]) : 0;
	if (argc > 2 && !strcmp(argv[1], "gen")) {
		for (long i = 1; i <= n; i++)
			printf("%ld\n", i);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "sol")) {
		long x;
		while (scanf("%ld", &x) == 1) {
			printf("%ld\n", x * x);
			fflush(stdout);
		}
		return 0;
	}
	if (argc > 2 && !strcmp(argv[1], "check")) {
		long x;
		for (long i = 1; i <= n; i++)
			if (scanf("%ld", &x) != 1 || x != i * i)
				return 1;
		return scanf("%ld", &x) == EOF ? 0 : 1;
	}
	if (argc > 2 && !strcmp(argv[1], "manager")) {
		FILE *to[2] = {fdopen(3, "w"), fdopen(5, "w")}, *from[2] = {fdopen(4, "r"), fdopen(6, "r")};
		for (int s = 0; s < 2; s++)
			if (!to[s] || !from[s])
				return 3;
		for (long i = 1; i <= n; i++)
			for (int s = 0; s < 2; s++) {
				long x, q = 2 * i + s;
				fprintf(to[s], "%ld\n", q);
				fflush(to[s]);
				if (fscanf(from[s], "%ld", &x) != 1 || x != q * q)
					return 1;
			}
		return 0;
	}
	fprintf(stderr, "usage: square gen N | sol | check N | manager N\n");
	return 2;
}
