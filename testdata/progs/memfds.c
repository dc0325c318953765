/* memfds: writes two memfds of argv[1] MiB (default 1) through a page-sized
 * buffer, closing the first before it writes the second, as in a judge's
 * report of runs killed under 1.2 MiB. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int fill(long bytes) {
	static char page[4096];
	int fd = memfd_create("memfds", 0);
	if (fd < 0) return -1;
	for (long n = 0; n < bytes; n += sizeof page)
		if (write(fd, page, sizeof page) != sizeof page) return -1;
	return close(fd);
}

int main(int argc, char **argv) {
	long bytes = (argc > 1 ? atol(argv[1]) : 1) << 20;
	return fill(bytes) || fill(bytes) ? 1 : 0;
}
