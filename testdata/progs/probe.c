/* probe: one test program with many behaviours, chosen by argv[1].
 * The conformance tests compile it on the host and run it inside boxes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void) {
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* spin burns CPU for secs seconds of this process's CPU time; 0 is forever. */
static void spin(double secs) {
	volatile unsigned long x = 0;
	double start = cpu_seconds();
	while (secs <= 0 || cpu_seconds() - start < secs)
		for (int i = 0; i < 100000; i++) x += i;
}

static void *spin_thread(void *arg) {
	(void)arg;
	spin(0);
	return NULL;
}

int main(int argc, char **argv) {
	const char *what = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "0";
	if (!strcmp(what, "exit")) return atoi(arg);
	if (!strcmp(what, "segv")) { volatile int *p = NULL; return *p; }
	if (!strcmp(what, "abort")) abort();
	if (!strcmp(what, "sigterm")) { kill(getpid(), SIGTERM); pause(); }
	if (!strcmp(what, "spin")) { spin(atof(arg)); return 0; }
	if (!strcmp(what, "threads")) {
		int n = atoi(arg);
		pthread_t t;
		for (int i = 1; i < n; i++) pthread_create(&t, NULL, spin_thread, NULL);
		spin(0);
	}
	if (!strcmp(what, "pause")) pause();
	if (!strcmp(what, "spin-pause")) { spin(atof(arg)); pause(); }
	if (!strcmp(what, "spin-sleep")) {
		spin(atof(arg));
		double s = atof(argc > 3 ? argv[3] : "0");
		struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
		nanosleep(&ts, NULL);
		return 0;
	}
	if (!strcmp(what, "mem")) { /* touch arg MiB, then exit */
		size_t n = (size_t)atol(arg) << 20;
		char *p = malloc(n);
		if (!p) return 3;
		for (size_t i = 0; i < n; i += 4096) p[i] = 1;
		return 0;
	}
	if (!strcmp(what, "deeptree")) { /* in directory arg, make a chain d/d/d/... argv[3] deep */
		int depth = atoi(argc > 3 ? argv[3] : "0");
		if (chdir(arg)) { perror("deeptree"); return 1; }
		for (int i = 0; i < depth; i++)
			if (mkdir("d", 0755) || chdir("d")) { perror("deeptree"); return 1; }
		return 0;
	}
	if (!strcmp(what, "oomscore")) { /* print this process's oom_score_adj */
		char buf[32] = {0};
		int fd = open("/proc/self/oom_score_adj", O_RDONLY);
		if (fd < 0 || read(fd, buf, sizeof buf - 1) < 0) return 1;
		printf("%s", buf);
		return 0;
	}
	if (!strcmp(what, "forkbomb")) { /* fork until refused, report, keep children alive */
		int made = 0;
		for (int i = 0; i < 100000; i++) {
			pid_t p = fork();
			if (p == 0) { pause(); _exit(0); }
			if (p < 0) break;
			made++;
		}
		printf("forked %d\n", made);
		fflush(stdout);
		return 0;
	}
	if (!strcmp(what, "daemon")) { /* leave a detached grandchild behind */
		if (fork() == 0) {
			setsid();
			if (fork() == 0) { for (;;) pause(); }
			_exit(0);
		}
		wait(NULL);
		return 0;
	}
	if (!strcmp(what, "connect")) { /* connect to 127.0.0.1:arg; exit 0 if it worked */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(arg))};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) { printf("connect: %s\n", strerror(errno)); return 1; }
		return 0;
	}
	if (!strcmp(what, "flood")) { /* write arg MiB to stdout */
		static char buf[1 << 20];
		memset(buf, 'x', sizeof buf);
		long n = atol(arg);
		for (long i = 0; i < n; i++)
			if (write(1, buf, sizeof buf) < 0) { fprintf(stderr, "write: %s\n", strerror(errno)); return 1; }
		return 0;
	}
	if (!strcmp(what, "id")) { printf("%d %d\n", getuid(), getgid()); return 0; }
	if (!strcmp(what, "create")) { /* try to create file arg; exit 0 if it worked */
		int fd = open(arg, O_WRONLY | O_CREAT, 0644);
		if (fd < 0) { printf("open: %s\n", strerror(errno)); return 1; }
		return 0;
	}
	if (!strcmp(what, "pids")) { /* list the pids /proc shows */
		DIR *d = opendir("/proc");
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (e->d_name[0] >= '0' && e->d_name[0] <= '9') printf("%s\n", e->d_name);
		return 0;
	}
	if (!strcmp(what, "escape")) { /* try to get capabilities back; print what each attempt got */
		int flags[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNS};
		int escaped = 0;
		for (unsigned i = 0; i < sizeof flags / sizeof flags[0]; i++) {
			int r = unshare(flags[i]);
			printf("unshare %#x: %s\n", flags[i], r ? strerror(errno) : "done");
			escaped |= r == 0;
		}
		/* clone3 keeps its flags in memory, where seccomp cannot look */
		struct { unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } args = {
			.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
		long pid = syscall(SYS_clone3, &args, sizeof args);
		if (pid == 0) _exit(0);
		printf("clone3 CLONE_NEWUSER: %s\n", pid < 0 ? strerror(errno) : "done");
		escaped |= pid > 0;
		return escaped;
	}
	if (!strcmp(what, "int80")) { /* unshare(CLONE_NEWUSER) through the i386 ABI (its number is 310) */
		long r;
		__asm__ volatile("int $0x80" : "=a"(r) : "a"(310L), "b"((long)CLONE_NEWUSER) : "memory");
		printf("i386 unshare: %ld\n", r);
		return r == 0;
	}
	if (!strcmp(what, "shm")) { /* "shm put": leave a 1 MiB System V segment with a secret; "shm get": find one */
		if (!strcmp(arg, "put")) {
			int id = shmget(0x5eed, 1 << 20, IPC_CREAT | 0600);
			char *p = id < 0 ? NULL : shmat(id, NULL, 0);
			if (!p) return 1;
			strcpy(p, "secret of the previous run");
			return 0;
		}
		int id = shmget(0x5eed, 0, 0);
		printf("%s\n", id < 0 ? "none" : "found");
		return 0;
	}
	if (!strcmp(what, "cat")) { /* copy stdin to stdout, a line to stderr */
		char buf[4096];
		ssize_t n;
		while ((n = read(0, buf, sizeof buf)) > 0) write(1, buf, n);
		fprintf(stderr, "done\n");
		return 0;
	}
	fprintf(stderr, "probe: unknown behaviour %s\n", what);
	return 2;
}
