// guess: both sides of an interactive guessing game, for run_group tests.
//
//   guess interactor SECRET [crash]   answers "? N" with <, > or =, and
//                                     checks the final "! N": exit 0 when
//                                     right, 1 when wrong (testlib's WA);
//                                     crash: abort() before a word
//   guess solution MODE               right: binary search over 1..1000000
//                                     wrong: answers 0, then keeps asking
//                                     cpu: spins; memory: touches 1 GiB
//                                     noflush: asks without flushing, waits
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int interactor(long secret, int crash) {
	if (crash)
		abort();
	char op;
	long n;
	for (int q = 0; q < 100 && scanf(" %c %ld", &op, &n) == 2; q++) {
		if (op == '!')
			return n == secret ? 0 : 1;
		printf("%c\n", n < secret ? '<' : n > secret ? '>' : '=');
		fflush(stdout);
	}
	return 1; // too many questions, or the solution ended without an answer
}

static int solution(const char *mode) {
	if (!strcmp(mode, "cpu"))
		for (volatile unsigned long i = 0;; i++)
			;
	if (!strcmp(mode, "memory")) {
		for (size_t total = 0; total < (1ul << 30); total += 1 << 20) {
			volatile char *p = malloc(1 << 20);
			for (size_t i = 0; p && i < (1 << 20); i += 4096) // a byte a page: fast under emulation too
				p[i] = 1;
		}
		return 0;
	}
	if (!strcmp(mode, "wrong")) {
		printf("! 0\n");
		fflush(stdout);
		char c;
		while (read(0, &c, 1) > 0) // until the interactor has gone
			;
		usleep(100 * 1000);
		for (;;) { // then writes: SIGPIPE
			printf("? 1\n");
			fflush(stdout);
		}
	}
	if (!strcmp(mode, "noflush")) {
		printf("? 1\n"); // stays in the buffer: the interactor never hears it
		char c;
		return read(0, &c, 1) > 0 ? 0 : 3;
	}
	long lo = 1, hi = 1000000;
	while (lo < hi) {
		long mid = (lo + hi) / 2;
		char r;
		printf("? %ld\n", mid);
		fflush(stdout);
		if (scanf(" %c", &r) != 1)
			return 3;
		if (r == '=')
			lo = hi = mid;
		else if (r == '<')
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	printf("! %ld\n", lo);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv) {
	if (argc >= 3 && !strcmp(argv[1], "interactor"))
		return interactor(atol(argv[2]), argc > 3 && !strcmp(argv[3], "crash"));
	if (argc >= 3 && !strcmp(argv[1], "solution"))
		return solution(argv[2]);
	fprintf(stderr, "usage: guess interactor SECRET [crash] | guess solution MODE\n");
	return 2;
}
