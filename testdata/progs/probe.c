/* probe: one test program with many behaviours, chosen by argv[1].
 * The conformance tests compile it on the host and run it inside boxes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <mqueue.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_open_tree_attr
#define SYS_open_tree_attr 467 /* Linux 6.15, the same number on every architecture */
#endif

static double seconds(clockid_t clock) {
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* spin burns CPU for secs seconds of this thread's CPU time; 0 is forever. */
static void spin(double secs) {
	volatile unsigned long x = 0;
	double start = seconds(CLOCK_THREAD_CPUTIME_ID);
	while (secs <= 0 || seconds(CLOCK_THREAD_CPUTIME_ID) - start < secs)
		for (int i = 0; i < 100000; i++) x += i;
}

/* work does n rounds of spin's loop: a fixed amount of CPU work. */
static void work(long n) {
	volatile unsigned long x = 0;
	for (long r = 0; r < n; r++)
		for (int i = 0; i < 100000; i++) x += i;
}

/* stack_down uses bytes of stack in frames of a page, touching each. */
static int stack_down(long bytes) {
	volatile char frame[4096];
	frame[0] = (char)bytes;
	if (bytes <= (long)sizeof frame) return frame[0] & 0;
	return stack_down(bytes - (long)sizeof frame) + (frame[0] & 0);
}

/* big is the "static" behaviour's array: untouched, it costs no memory. */
static volatile char big[700 << 20];

static void *spin_thread(void *arg) {
	(void)arg;
	spin(0);
	return NULL;
}

int main(int argc, char **argv) {
	const char *what = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "0";
	if (!strcmp(what, "exit")) return atoi(arg);
	if (!strcmp(what, "careless")) { /* as a careless judge: every signal blocked, every catchable one ignored (32 and 33 too, which glibc keeps from sigaction); then execute argv[2] with argv[2..] */
		struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } ignore = { SIG_IGN, 0, NULL, 0 };
		sigset_t all;
		sigfillset(&all);
		for (int sig = 1; sig <= 64; sig++)
			if (sig != SIGKILL && sig != SIGSTOP) syscall(SYS_rt_sigaction, sig, &ignore, NULL, 8);
		sigprocmask(SIG_BLOCK, &all, NULL);
		execv(argv[2], argv + 2);
		perror("execv");
		return 127;
	}
	if (!strcmp(what, "segv")) { volatile int *p = NULL; return *p; }
	if (!strcmp(what, "abort")) abort();
	if (!strcmp(what, "sigterm")) { kill(getpid(), SIGTERM); pause(); }
	if (!strcmp(what, "spin")) { spin(atof(arg)); return 0; }
	if (!strcmp(what, "threads")) { /* arg threads spin; the main one prints its own CPU time every 10 ms of it */
		int n = atoi(arg);
		pthread_t t;
		for (int i = 1; i < n; i++) pthread_create(&t, NULL, spin_thread, NULL);
		for (;;) {
			spin(0.01);
			printf("%.6f\n", seconds(CLOCK_THREAD_CPUTIME_ID));
			fflush(stdout);
		}
	}
	if (!strcmp(what, "pause")) pause();
	if (!strcmp(what, "spin-pause")) { spin(atof(arg)); pause(); }
	if (!strcmp(what, "spin-sleep")) { /* then print the wall and CPU seconds it took, as it measured them */
		double start = seconds(CLOCK_MONOTONIC);
		spin(atof(arg));
		double s = atof(argc > 3 ? argv[3] : "0");
		struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
		nanosleep(&ts, NULL);
		printf("%.6f %.6f\n", seconds(CLOCK_MONOTONIC) - start, seconds(CLOCK_PROCESS_CPUTIME_ID));
		return 0;
	}
	if (!strcmp(what, "mem")) { /* touch arg MiB, then exit */
		size_t n = (size_t)atol(arg) << 20;
		char *p = malloc(n);
		if (!p) return 3;
		for (size_t i = 0; i < n; i += 4096) p[i] = 1;
		return 0;
	}
	if (!strcmp(what, "spin-rusage")) { /* spin arg seconds, then print the process's own user+system CPU seconds */
		spin(atof(arg));
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		printf("%.6f\n", ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
		return 0;
	}
	if (!strcmp(what, "static")) { /* touch every page of a 700 MiB static array */
		for (size_t i = 0; i < sizeof big; i += 4096) big[i] = 1;
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
	if (!strcmp(what, "loopback")) { /* on address arg (127.0.0.1 or ::1): listen, connect to itself, send a line back and forth; print it */
		int v6 = strchr(arg, ':') != NULL;
		struct sockaddr_storage ss = {0};
		socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		ss.ss_family = v6 ? AF_INET6 : AF_INET;
		inet_pton(ss.ss_family, arg, v6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr : (void *)&((struct sockaddr_in *)&ss)->sin_addr);
		char line[64] = {0};
		int l = socket(ss.ss_family, SOCK_STREAM, 0), c = -1, a = -1;
		const char *step = "socket";
		if (l >= 0 && (step = "bind", bind(l, (struct sockaddr *)&ss, len)) == 0 && (step = "listen", listen(l, 1)) == 0 &&
		    (step = "getsockname", getsockname(l, (struct sockaddr *)&ss, &len)) == 0 &&
		    (step = "socket", c = socket(ss.ss_family, SOCK_STREAM, 0)) >= 0 &&
		    (step = "connect", connect(c, (struct sockaddr *)&ss, len)) == 0 && (step = "accept", a = accept(l, NULL, NULL)) >= 0 &&
		    (step = "send", write(c, "ping\n", 5)) == 5 && (step = "receive", read(a, line, sizeof line - 1)) == 5 &&
		    (step = "reply", write(a, "pong\n", 5)) == 5 && (step = "receive reply", read(c, line + 5, sizeof line - 6)) == 5) {
			printf("%s", line);
			return 0;
		}
		printf("%s: %s\n", step, strerror(errno));
		return 1;
	}
	if (!strcmp(what, "ifaces")) { /* list the network interfaces: "name up" or "name down" a line */
		struct if_nameindex *ifs = if_nameindex();
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		if (!ifs || s < 0) { printf("interfaces: %s\n", strerror(errno)); return 1; }
		for (struct if_nameindex *i = ifs; i->if_index; i++) {
			struct ifreq r = {0};
			strncpy(r.ifr_name, i->if_name, IFNAMSIZ - 1);
			if (ioctl(s, SIOCGIFFLAGS, &r) < 0) { printf("%s flags: %s\n", i->if_name, strerror(errno)); return 1; }
			printf("%s %s\n", i->if_name, (r.ifr_flags & IFF_UP) ? "up" : "down");
		}
		return 0;
	}
	if (!strcmp(what, "affinity")) { /* print the CPUs allowed, try to move to each other CPU and to all, print them again, then spin arg s and print the CPUs it ran on, and when it ran (CLOCK_MONOTONIC) */
		double began = seconds(CLOCK_MONOTONIC);
		cpu_set_t set, ran;
		int n = sysconf(_SC_NPROCESSORS_CONF);
		CPU_ZERO(&ran);
		if (sched_getaffinity(0, sizeof set, &set) < 0) { printf("getaffinity: %s\n", strerror(errno)); return 1; }
		printf("allowed");
		for (int c = 0; c < n; c++) if (CPU_ISSET(c, &set)) printf(" %d", c);
		printf("\n");
		cpu_set_t mine = set, to;
		for (int c = 0; c < n; c++) {
			if (CPU_ISSET(c, &mine)) continue;
			CPU_ZERO(&to);
			CPU_SET(c, &to);
			printf("move %d: %s\n", c, sched_setaffinity(0, sizeof to, &to) < 0 ? strerrorname_np(errno) : "ok");
		}
		CPU_ZERO(&to);
		for (int c = 0; c < n; c++) CPU_SET(c, &to);
		printf("move all: %s\n", sched_setaffinity(0, sizeof to, &to) < 0 ? strerrorname_np(errno) : "ok");
		sched_getaffinity(0, sizeof set, &set);
		printf("after");
		for (int c = 0; c < n; c++) if (CPU_ISSET(c, &set)) printf(" %d", c);
		printf("\n");
		double start = seconds(CLOCK_THREAD_CPUTIME_ID);
		do {
			spin(0.001);
			CPU_SET(sched_getcpu(), &ran);
		} while (seconds(CLOCK_THREAD_CPUTIME_ID) - start < atof(arg));
		printf("ran");
		for (int c = 0; c < n; c++) if (CPU_ISSET(c, &ran)) printf(" %d", c);
		printf("\nspan %.6f %.6f\n", began, seconds(CLOCK_MONOTONIC));
		return 0;
	}
	if (!strcmp(what, "rounds")) { /* print how many rounds of work take arg s of this thread's CPU time */
		long n = 0;
		double start = seconds(CLOCK_THREAD_CPUTIME_ID);
		while (seconds(CLOCK_THREAD_CPUTIME_ID) - start < atof(arg)) { work(1); n++; }
		printf("%ld\n", n);
		return 0;
	}
	if (!strcmp(what, "work")) { work(atol(arg)); return 0; } /* arg rounds of work */
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
	if (!strcmp(what, "refused")) { /* make calls the box's filter refuses, with arguments the kernel itself would take from a user without capabilities or answer otherwise; print "name ERRNO" or "name ok" */
		static char params[120];                         /* struct io_uring_params, zeroed */
		static struct perf_event_attr attr = {.type = PERF_TYPE_SOFTWARE, .size = sizeof attr,
			.config = PERF_COUNT_SW_TASK_CLOCK, .exclude_kernel = 1, .exclude_hv = 1};
		static const struct { const char *name; long nr, a[5]; } calls[] = {
			{"clone-newuser", SYS_clone, {CLONE_NEWUSER | SIGCHLD}},
			{"clone-newuser-upper-bits", SYS_clone, {CLONE_NEWUSER | SIGCHLD | (1L << 32)}},
			{"setns", SYS_setns, {-1, 0}},                 /* (the kernel: EBADF) */
			{"io_uring_setup", SYS_io_uring_setup, {1, (long)params}},
			{"bpf", SYS_bpf, {999, 0, 0}},                 /* (the kernel: EINVAL) */
			{"keyctl", SYS_keyctl, {0 /* KEYCTL_GET_KEYRING_ID */, -3 /* KEY_SPEC_SESSION_KEYRING */}},
			{"add_key", SYS_add_key, {(long)"user", (long)"probe", (long)"x", 1, -2 /* KEY_SPEC_PROCESS_KEYRING */}},
			{"perf_event_open", SYS_perf_event_open, {(long)&attr, 0, -1, -1, 0}},
			{"userfaultfd", SYS_userfaultfd, {1 /* UFFD_USER_MODE_ONLY */}},
			{"open_tree", SYS_open_tree, {AT_FDCWD, (long)"/", 0}},
			{"open_tree_attr", SYS_open_tree_attr, {AT_FDCWD, (long)"/", 0, 0, 0}},
			{"chroot", SYS_chroot, {0}},                   /* (the kernel: EFAULT) */
			{"quotactl_fd", SYS_quotactl_fd, {-1, 0, 0, 0}}, /* (the kernel: EBADF) */
			{"iopl", SYS_iopl, {0}},
			{"ioperm", SYS_ioperm, {0, 0, 0}},
		};
		for (unsigned i = 0; i < sizeof calls / sizeof calls[0]; i++) {
			const long *a = calls[i].a;
			long r = syscall(calls[i].nr, a[0], a[1], a[2], a[3], a[4]);
			if (r == 0 && calls[i].nr == SYS_clone) _exit(0);
			printf("%s %s\n", calls[i].name, r < 0 ? strerrorname_np(errno) : "ok");
		}
		return 0;
	}
	if (!strcmp(what, "x32")) { /* getpid through the x32 ABI; print what it returned */
		printf("x32 getpid: %ld\n", syscall(0x40000000 | SYS_getpid));
		return 0;
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
	if (!strcmp(what, "sockets")) { /* make a socket of each family; print what each attempt got */
		static const struct { const char *name; long domain; int type, protocol, pair; } tries[] = {
			{"unix", AF_UNIX, SOCK_STREAM, 0, 0},
			{"unix-pair", AF_UNIX, SOCK_STREAM, 0, 1},
			{"inet", AF_INET, SOCK_STREAM, 0, 0},
			{"inet6", AF_INET6, SOCK_DGRAM, 0, 0},
			{"netlink-route", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, 0},
			{"netlink-audit", AF_NETLINK, SOCK_RAW, NETLINK_AUDIT, 0},
			{"netlink-uevent", AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT, 0},
			{"netlink-sock-diag", AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG, 0},
			{"vsock", AF_VSOCK, SOCK_STREAM, 0, 0},
			{"vsock-pair", AF_VSOCK, SOCK_STREAM, 0, 1},
			{"vsock-high-bits", (1L << 32) | AF_VSOCK, SOCK_STREAM, 0, 0}, /* the kernel reads an int */
			{"alg", AF_ALG, SOCK_SEQPACKET, 0, 0},
			{"packet", AF_PACKET, SOCK_DGRAM, 0, 0},
			{"bluetooth", AF_BLUETOOTH, SOCK_RAW, 0, 0},
			{"tipc", AF_TIPC, SOCK_RDM, 0, 0},
			{"tipc-pair", AF_TIPC, SOCK_RDM, 0, 1},
			{"key", AF_KEY, SOCK_RAW, 2, 0},
			{"xdp", AF_XDP, SOCK_RAW, 0, 0},
			{"can", AF_CAN, SOCK_RAW, 1, 0},
		};
		for (unsigned i = 0; i < sizeof tries / sizeof tries[0]; i++) {
			int sv[2];
			long r = tries[i].pair ? syscall(SYS_socketpair, tries[i].domain, tries[i].type, tries[i].protocol, sv)
			                       : syscall(SYS_socket, tries[i].domain, tries[i].type, tries[i].protocol);
			printf("%s %s\n", tries[i].name, r < 0 ? strerrorname_np(errno) : "ok");
		}
		return 0;
	}
	if (!strcmp(what, "mq")) { /* "mq put": leave a POSIX message queue with a secret; "mq get": read it */
		if (!strcmp(arg, "put")) {
			struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 64};
			mqd_t q = mq_open("/leak", O_CREAT | O_WRONLY, 0600, &attr);
			if (q == (mqd_t)-1) { printf("mq_open: %s\n", strerror(errno)); return 1; }
			if (mq_send(q, "secret-of-submission-A", 22, 0) < 0) { printf("mq_send: %s\n", strerror(errno)); return 1; }
			return 0;
		}
		char msg[64] = {0};
		mqd_t q = mq_open("/leak", O_RDONLY | O_NONBLOCK);
		if (q == (mqd_t)-1) { printf("none\n"); return 0; }
		if (mq_receive(q, msg, sizeof msg, NULL) < 0) { printf("mq_receive: %s\n", strerror(errno)); return 1; }
		printf("%s\n", msg);
		return 0;
	}
	if (!strcmp(what, "cat")) { /* copy stdin to stdout, a line to stderr */
		char buf[4096];
		ssize_t n;
		while ((n = read(0, buf, sizeof buf)) > 0) write(1, buf, n);
		fprintf(stderr, "done\n");
		return 0;
	}
	if (!strcmp(what, "fds")) { /* list this process's open descriptors, "N target" a line */
		DIR *d = opendir("/proc/self/fd");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			char target[4096];
			if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
			ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
			target[n < 0 ? 0 : n] = 0;
			printf("%s %s\n", e->d_name, target);
		}
		return d ? 0 : 1;
	}
	if (!strcmp(what, "tty")) { /* take every terminal among the open fds as controlling one, type arg into it */
		int ttys = 0;
		for (int fd = 0; fd < 1024; fd++) {
			if (!isatty(fd)) continue;
			ttys++;
			int ctty = ioctl(fd, TIOCSCTTY, 0);
			printf("fd %d is a terminal; TIOCSCTTY: %s", fd, ctty ? strerror(errno) : "done");
			for (const char *c = arg; *c; c++)
				if (ioctl(fd, TIOCSTI, c)) { printf("; TIOCSTI: %s", strerror(errno)); break; }
			printf("\n");
		}
		return ttys > 0;
	}
	if (!strcmp(what, "open")) { /* open file arg for reading and writing; print ok or the errno's name */
		int fd = open(arg, O_RDWR);
		printf("%s\n", fd < 0 ? strerrorname_np(errno) : "ok");
		return 0;
	}
	if (!strcmp(what, "openfiles")) { /* open /dev/null until refused; print how many and why */
		int n = 0;
		while (open("/dev/null", O_RDONLY) >= 0) n++;
		printf("opened %d, then %s\n", n, strerrorname_np(errno));
		return 0;
	}
	if (!strcmp(what, "stack")) { /* use arg KiB of stack, a page at a time */
		long kib = atol(arg);
		return kib > 0 ? stack_down(kib * 1024) : 0;
	}
	if (!strcmp(what, "ipcids")) { /* make a private System V segment, queue and semaphore set; print their ids, remove them */
		int shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600), msg = msgget(IPC_PRIVATE, IPC_CREAT | 0600),
		    sem = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
		printf("shm %d msg %d sem %d\n", shm, msg, sem);
		shmctl(shm, IPC_RMID, NULL);
		msgctl(msg, IPC_RMID, NULL);
		semctl(sem, 0, IPC_RMID);
		return shm < 0 || msg < 0 || sem < 0;
	}
	fprintf(stderr, "probe: unknown behaviour %s\n", what);
	return 2;
}
