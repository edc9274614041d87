/*
 * proc.c: /proc as programs read it. Formats are parsed and values are
 * compared with what the syscalls say (getpid, sigprocmask, mmap, open,
 * prctl, getrlimit, sysinfo...), so the same checks hold natively and in
 * Veil. Where the sandbox legitimately differs from the host (mounts,
 * CPU model), properties are checked, not values.
 */
#include "check.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>

static char **saved_argv;
static int saved_argc;
static char **saved_envp;

/* slurp reads a whole file into a static-sized buffer; returns bytes read
 * or -1. */
static long slurp(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, n - 1 - got);
		if (r < 0) {
			close(fd);
			return -1;
		}
		if (r == 0 || got + r >= n - 1) {
			got += r;
			break;
		}
		got += r;
	}
	close(fd);
	buf[got] = 0;
	return (long)got;
}

/* field returns the value after "Key:" in a status-like text, or NULL. */
static const char *field(const char *text, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
			p += kl + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
	}
	return NULL;
}

/* stat_fields splits /proc/PID/stat: comm (without parentheses) and the
 * fields after it, numbered from 3 as proc(5) does. Returns how many. */
static int stat_fields(const char *path, char *comm, size_t commlen, char fields[64][32])
{
	char buf[4096];
	if (slurp(path, buf, sizeof buf) <= 0)
		return -1;
	char *l = strchr(buf, '('), *r = strrchr(buf, ')');
	if (!l || !r || r < l)
		return -1;
	size_t cl = (size_t)(r - l - 1);
	if (cl >= commlen)
		cl = commlen - 1;
	memcpy(comm, l + 1, cl);
	comm[cl] = 0;
	int n = 3;
	char *save, *tok = strtok_r(r + 1, " \n", &save);
	while (tok && n < 64) {
		snprintf(fields[n++], 32, "%s", tok);
		tok = strtok_r(NULL, " \n", &save);
	}
	return n - 1;
}

static void test_stat_self(void)
{
	char comm[64], f[64][32];
	prctl(PR_SET_NAME, "proc-stat-test");
	int n = stat_fields("/proc/self/stat", comm, sizeof comm, f);
	CHECK(n >= 52, "/proc/self/stat has at least 52 fields");
	if (n < 52)
		return;
	char buf[4096];
	slurp("/proc/self/stat", buf, sizeof buf);
	CHECK(atoi(buf) == getpid(), "stat pid == getpid");
	CHECK(strcmp(comm, "proc-stat-test") == 0, "stat comm is the PR_SET_NAME name");
	CHECK(strcmp(f[3], "R") == 0, "stat state of the reader is R");
	CHECK(atoi(f[4]) == getppid(), "stat ppid == getppid");
	CHECK(atoi(f[5]) == getpgrp(), "stat pgrp == getpgrp");
	CHECK(atoi(f[6]) == getsid(0), "stat session == getsid");
	CHECK(atoi(f[20]) == 1, "stat num_threads is 1");
	CHECK(strtoull(f[23], NULL, 10) > 0, "stat vsize > 0");
	CHECK(strtoll(f[24], NULL, 10) > 0, "stat rss > 0");
	char up[128];
	slurp("/proc/uptime", up, sizeof up);
	double uptime = atof(up);
	long long start = strtoll(f[22], NULL, 10);
	CHECK(start >= 0 && start <= (long long)(uptime * sysconf(_SC_CLK_TCK)) + 1, "stat starttime within uptime");
	CHECK(atoi(f[38]) == SIGCHLD, "stat exit_signal is SIGCHLD");
	prctl(PR_SET_NAME, "proc");
}

static int thread_pipe[2];

static void *thread_main(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "proc-worker");
	char c;
	/* Blocks until main writes: a sleeping second thread. */
	if (read(thread_pipe[0], &c, 1) != 1)
		return NULL;
	return (void *)(long)syscall(SYS_gettid);
}

static int count_dir(const char *path, long want, int *found)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		n++;
		if (found && atol(e->d_name) == want)
			*found = 1;
	}
	closedir(d);
	return n;
}

static void test_threads(void)
{
	CHECK(pipe(thread_pipe) == 0, "pipe for thread");
	pthread_t th;
	CHECK(pthread_create(&th, NULL, thread_main, NULL) == 0, "pthread_create");
	/* Let the thread name itself and block. */
	char status[4096], path[300], comm[64], f[64][32];
	int named = 0;
	for (int i = 0; i < 200 && !named; i++) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
			char c[64];
			if (slurp(path, c, sizeof c) > 0 && strcmp(c, "proc-worker\n") == 0)
				named = atoi(e->d_name);
		}
		if (d)
			closedir(d);
		if (!named)
			usleep(5000);
	}
	CHECK(named > 0, "task/TID/comm shows the thread's own name");
	int found = 0;
	CHECK(count_dir("/proc/self/task", syscall(SYS_gettid), &found) == 2, "task/ lists two threads");
	CHECK(found, "task/ lists the main thread");
	CHECK(slurp("/proc/self/status", status, sizeof status) > 0, "read status");
	const char *th_s = field(status, "Threads");
	CHECK(th_s && atoi(th_s) == 2, "status Threads is 2 after pthread_create");
	int n = stat_fields("/proc/self/stat", comm, sizeof comm, f);
	CHECK(n >= 20 && atoi(f[20]) == 2, "stat num_threads is 2 after pthread_create");
	if (named) {
		snprintf(path, sizeof path, "/proc/self/task/%d/stat", named);
		char st[4096];
		CHECK(slurp(path, st, sizeof st) > 0 && atoi(st) == named, "task/TID/stat names the thread");
		/* The worker waits in read: sleeping. */
		int sleeping = 0;
		for (int i = 0; i < 200 && !sleeping; i++) {
			n = stat_fields(path, comm, sizeof comm, f);
			sleeping = n > 3 && strcmp(f[3], "S") == 0;
			if (!sleeping)
				usleep(5000);
		}
		CHECK(sleeping, "a thread blocked in read is S");
		snprintf(path, sizeof path, "/proc/%d/status", named);
		CHECK(slurp(path, st, sizeof st) > 0, "/proc/TID (a thread) is reachable");
		const char *pid = field(st, "Pid"), *tgid = field(st, "Tgid");
		CHECK(pid && tgid && atoi(pid) == named && atoi(tgid) == getpid(), "/proc/TID/status Pid and Tgid");
	}
	char self[64], want[64];
	ssize_t l = readlink("/proc/thread-self", self, sizeof self - 1);
	snprintf(want, sizeof want, "%d/task/%ld", getpid(), (long)syscall(SYS_gettid));
	CHECK(l > 0 && (self[l] = 0, strcmp(self, want) == 0), "/proc/thread-self is PID/task/TID");
	CHECK(write(thread_pipe[1], "x", 1) == 1, "wake thread");
	void *ret;
	pthread_join(th, &ret);
	CHECK((long)ret == named, "thread's gettid matches its task/ entry");
	close(thread_pipe[0]);
	close(thread_pipe[1]);
	int one = 0;
	for (int i = 0; i < 200 && one != 1; i++) {
		one = count_dir("/proc/self/task", 0, NULL);
		if (one != 1)
			usleep(5000);
	}
	CHECK(one == 1, "task/ lists one thread after join");
}

static void handler(int sig) { (void)sig; }

static unsigned long long hexfield(const char *text, const char *key)
{
	const char *v = field(text, key);
	return v ? strtoull(v, NULL, 16) : ~0ULL;
}

static void test_status(void)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 2);
	sigprocmask(SIG_BLOCK, &set, &old);
	signal(SIGUSR2, handler);
	signal(SIGPIPE, SIG_IGN);
	char st[8192];
	CHECK(slurp("/proc/self/status", st, sizeof st) > 0, "read status");
	const char *v;
	CHECK((v = field(st, "Tgid")) && atoi(v) == getpid(), "status Tgid == getpid");
	CHECK((v = field(st, "Pid")) && atoi(v) == syscall(SYS_gettid), "status Pid == gettid");
	CHECK((v = field(st, "PPid")) && atoi(v) == getppid(), "status PPid == getppid");
	unsigned a, b, c, d;
	CHECK((v = field(st, "Uid")) && sscanf(v, "%u %u %u %u", &a, &b, &c, &d) == 4 && a == getuid() && b == geteuid(),
	      "status Uid == getuid/geteuid");
	CHECK((v = field(st, "Gid")) && sscanf(v, "%u %u %u %u", &a, &b, &c, &d) == 4 && a == getgid() && b == getegid(),
	      "status Gid == getgid/getegid");
	CHECK((v = field(st, "State")) && v[0] == 'R', "status State of the reader is R");
	unsigned long long want = (1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGRTMIN + 2 - 1));
	CHECK(hexfield(st, "SigBlk") == want, "status SigBlk is sigprocmask's set");
	CHECK(hexfield(st, "SigCgt") & (1ULL << (SIGUSR2 - 1)), "status SigCgt has the handled signal");
	CHECK(hexfield(st, "SigIgn") & (1ULL << (SIGPIPE - 1)), "status SigIgn has the ignored signal");
	raise(SIGUSR1);
	slurp("/proc/self/status", st, sizeof st);
	CHECK((hexfield(st, "SigPnd") | hexfield(st, "ShdPnd")) & (1ULL << (SIGUSR1 - 1)), "status shows a pending blocked signal");
	signal(SIGUSR1, SIG_IGN); /* discard it */
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	CHECK((v = field(st, "VmRSS")) && atol(v) > 0, "status VmRSS > 0");
	CHECK((v = field(st, "VmSize")) && atol(v) > 0, "status VmSize > 0");
	CHECK(field(st, "CapEff") != NULL, "status has CapEff");
	char sm[256];
	long size = 0, res = 0;
	CHECK(slurp("/proc/self/statm", sm, sizeof sm) > 0 && sscanf(sm, "%ld %ld", &size, &res) == 2, "statm parses");
	CHECK(size > 0 && res > 0 && res <= size, "statm size >= resident > 0");
	CHECK((v = field(st, "VmSize")) && atol(v) == size * (sysconf(_SC_PAGESIZE) / 1024), "statm size agrees with VmSize");
}

static int maps_has(unsigned long start, unsigned long end, const char *perms)
{
	static char buf[1 << 18];
	if (slurp("/proc/self/maps", buf, sizeof buf) <= 0)
		return 0;
	char want[64];
	snprintf(want, sizeof want, "%08lx-%08lx %s ", start, end, perms);
	for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, want, strlen(want)) == 0)
			return 1;
	return 0;
}

static void test_maps(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, 3 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap 3 pages");
	unsigned long s = (unsigned long)m;
	CHECK(maps_has(s, s + 3 * pg, "r--p"), "maps shows the r--p mapping");
	CHECK(mprotect(m + pg, pg, PROT_READ | PROT_WRITE) == 0, "mprotect middle page");
	CHECK(maps_has(s, s + pg, "r--p") && maps_has(s + pg, s + 2 * pg, "rw-p") && maps_has(s + 2 * pg, s + 3 * pg, "r--p"),
	      "maps shows the split after mprotect");
	char *sh = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED && maps_has((unsigned long)sh, (unsigned long)sh + pg, "rw-s"), "maps shows a shared mapping as s");
	/* Touch two pages of a private mapping: smaps counts them. */
	char *w = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w[0] = 1;
	w[pg] = 1;
	static char sm[1 << 19];
	long n = slurp("/proc/self/smaps", sm, sizeof sm);
	CHECK(n > 0, "read smaps");
	char head[64];
	snprintf(head, sizeof head, "%08lx-%08lx rw-p ", (unsigned long)w, (unsigned long)w + 4 * pg);
	char *at = n > 0 ? strstr(sm, head) : NULL;
	CHECK(at != NULL, "smaps has the mapping");
	if (at) {
		const char *sz = field(at, "Size"), *rss = field(at, "Rss");
		CHECK(sz && atol(sz) == 4 * pg / 1024, "smaps Size of the mapping");
		CHECK(rss && atol(rss) >= 2 * pg / 1024 && atol(rss) <= 4 * pg / 1024, "smaps Rss counts the touched pages");
	}
	/* A file mapping is named by the file's path. */
	char path[256];
	check_path(path, sizeof path, "procmap");
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, pg) == 0, "create a file to map");
	char *fm = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(fm != MAP_FAILED, "mmap the file");
	static char mp[1 << 18];
	slurp("/proc/self/maps", mp, sizeof mp);
	snprintf(head, sizeof head, "%08lx-%08lx r--s ", (unsigned long)fm, (unsigned long)fm + pg);
	char *line = strstr(mp, head), *eol = line ? strchr(line, '\n') : NULL;
	size_t pl = strlen(path);
	CHECK(line && eol && (size_t)(eol - line) > pl && memcmp(eol - pl, path, pl) == 0, "maps names a file mapping by its path");
	munmap(fm, pg);
	close(fd);
	unlink(path);
	munmap(w, 4 * pg);
	munmap(sh, pg);
	munmap(m, 3 * pg);
	CHECK(!maps_has(s, s + pg, "r--p"), "maps forgets an unmapped region");
}

static void test_fds(void)
{
	char path[256], link[PATH_MAX], lp[64];
	check_path(path, sizeof path, "procfd");
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	CHECK(fd >= 0, "create temp file");
	snprintf(lp, sizeof lp, "/proc/self/fd/%d", fd);
	ssize_t l = readlink(lp, link, sizeof link - 1);
	CHECK(l > 0 && (link[l] = 0, strcmp(link, path) == 0), "readlink fd/N is the file's path");
	int found = 0;
	count_dir("/proc/self/fd", fd, &found);
	CHECK(found, "fd/ lists the open fd");
	CHECK(write(fd, "hello", 5) == 5, "write");
	char info[256], ip[64];
	snprintf(ip, sizeof ip, "/proc/self/fdinfo/%d", fd);
	const char *v;
	CHECK(slurp(ip, info, sizeof info) > 0 && (v = field(info, "pos")) && atol(v) == 5, "fdinfo pos is the offset");
	CHECK((v = field(info, "flags")) && (strtoul(v, NULL, 8) & O_ACCMODE) == O_RDWR, "fdinfo flags has the access mode");
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	slurp(ip, info, sizeof info);
	CHECK((v = field(info, "flags")) && (strtoul(v, NULL, 8) & O_CLOEXEC), "fdinfo flags shows O_CLOEXEC");
	/* Re-open through the link: a new description of the same file. */
	int fd2 = open(lp, O_RDONLY);
	char got[8] = {0};
	CHECK(fd2 >= 0 && read(fd2, got, 5) == 5 && memcmp(got, "hello", 5) == 0, "open fd/N reads the file from 0");
	struct stat a, b;
	CHECK(fd2 >= 0 && fstat(fd, &a) == 0 && fstat(fd2, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev,
	      "fd/N reopens the same inode");
	close(fd2);
	/* A deleted file is still reachable, and named so. */
	unlink(path);
	l = readlink(lp, link, sizeof link - 1);
	CHECK(l > 0 && (link[l] = 0, strstr(link, " (deleted)") != NULL), "readlink of a deleted file says (deleted)");
	fd2 = open(lp, O_RDONLY);
	CHECK(fd2 >= 0 && read(fd2, got, 5) == 5, "open fd/N of a deleted file");
	close(fd2);
	close(fd);
	CHECK_ERR(readlink(lp, link, sizeof link), ENOENT, "readlink of a closed fd is ENOENT");

	/* Pipes: named pipe:[N], and reopening the write end writes into it. */
	int p[2];
	CHECK(pipe(p) == 0, "pipe");
	snprintf(lp, sizeof lp, "/proc/self/fd/%d", p[1]);
	l = readlink(lp, link, sizeof link - 1);
	CHECK(l > 0 && (link[l] = 0, strncmp(link, "pipe:[", 6) == 0), "readlink of a pipe is pipe:[N]");
	int w = open(lp, O_WRONLY);
	CHECK(w >= 0 && write(w, "abc", 3) == 3, "write through a reopened pipe end");
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	CHECK(read(p[0], got, 3) == 3 && memcmp(got, "abc", 3) == 0, "the pipe's reader gets it");
	if (w >= 0)
		close(w);
	close(p[0]);
	close(p[1]);

	char cwd[PATH_MAX];
	CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
	l = readlink("/proc/self/cwd", link, sizeof link - 1);
	CHECK(l > 0 && (link[l] = 0, strcmp(link, cwd) == 0), "readlink cwd == getcwd");
	l = readlink("/proc/self/root", link, sizeof link - 1);
	CHECK(l == 1 && link[0] == '/', "readlink root is /");
	/* Through root, .. stays at the root. */
	struct stat r1, r2;
	CHECK(stat("/proc/self/root/..", &r1) == 0 && stat("/", &r2) == 0 && r1.st_ino == r2.st_ino && r1.st_dev == r2.st_dev,
	      "/proc/self/root/.. is /");
	l = readlink("/proc/self/exe", link, sizeof link - 1);
	CHECK(l > 0 && (link[l] = 0, link[0] == '/'), "readlink exe is absolute");
	int e = open("/proc/self/exe", O_RDONLY);
	CHECK(e >= 0 && fstat(e, &a) == 0 && stat(link, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev,
	      "exe opens the file its link names");
	if (e >= 0)
		close(e);
	l = readlink("/proc/self/ns/pid", link, sizeof link - 1);
	CHECK(l > 6 && (link[l] = 0, strncmp(link, "pid:[", 5) == 0), "ns/pid is pid:[N]");
}

static void test_cmdline_environ(void)
{
	static char buf[65536];
	long n = slurp("/proc/self/cmdline", buf, sizeof buf);
	long want = 0;
	for (int i = 0; i < saved_argc; i++)
		want += strlen(saved_argv[i]) + 1;
	CHECK(n == want, "cmdline length is argv's");
	int ok = n == want;
	char *p = buf;
	for (int i = 0; ok && i < saved_argc; i++) {
		ok = strcmp(p, saved_argv[i]) == 0;
		p += strlen(p) + 1;
	}
	CHECK(ok, "cmdline matches argv");
	n = slurp("/proc/self/environ", buf, sizeof buf);
	CHECK(n > 0 || saved_envp[0] == NULL, "read environ");
	if (saved_envp[0]) {
		CHECK(n > 0 && strcmp(buf, saved_envp[0]) == 0, "environ starts with envp[0]");
	}
}

static void test_comm(void)
{
	char c[64], name[32];
	CHECK(prctl(PR_SET_NAME, "a-very-long-process-name") == 0, "PR_SET_NAME");
	CHECK(slurp("/proc/self/comm", c, sizeof c) > 0 && strcmp(c, "a-very-long-pro\n") == 0, "comm is truncated to 15 bytes");
	int fd = open("/proc/self/comm", O_WRONLY);
	CHECK(fd >= 0 && write(fd, "written", 7) == 7, "write comm");
	if (fd >= 0)
		close(fd);
	CHECK(prctl(PR_GET_NAME, name) == 0 && strcmp(name, "written") == 0, "PR_GET_NAME sees the written comm");
	prctl(PR_SET_NAME, "proc");
}

static void test_global(void)
{
	char buf[8192];
	double u1 = 0, u2 = 0, idle = 0;
	CHECK(slurp("/proc/uptime", buf, sizeof buf) > 0 && sscanf(buf, "%lf %lf", &u1, &idle) == 2 && u1 > 0, "uptime parses");
	usleep(20000);
	slurp("/proc/uptime", buf, sizeof buf);
	u2 = atof(buf);
	CHECK(u2 >= u1, "uptime is monotonic");
	struct sysinfo si;
	sysinfo(&si);
	CHECK(u2 + 2 >= si.uptime && u2 <= si.uptime + 2, "uptime agrees with sysinfo");

	CHECK(slurp("/proc/meminfo", buf, sizeof buf) > 0, "read meminfo");
	const char *t = field(buf, "MemTotal"), *f = field(buf, "MemFree"), *av = field(buf, "MemAvailable");
	CHECK(t && f && av && atoll(t) > 0 && atoll(t) >= atoll(f), "meminfo MemTotal >= MemFree");
	unsigned long long total_kb = (unsigned long long)si.totalram * si.mem_unit / 1024;
	CHECK(t && (unsigned long long)atoll(t) == total_kb, "meminfo MemTotal == sysinfo totalram");
	CHECK(strstr(buf, " kB\n") != NULL, "meminfo values are in kB");

	double l1, l5, l15;
	int run, tot, last;
	CHECK(slurp("/proc/loadavg", buf, sizeof buf) > 0 &&
	          sscanf(buf, "%lf %lf %lf %d/%d %d", &l1, &l5, &l15, &run, &tot, &last) == 6,
	      "loadavg parses");
	CHECK(run >= 1 && tot >= run && last > 0, "loadavg counts are sane");

	CHECK(slurp("/proc/stat", buf, sizeof buf) > 0 && strncmp(buf, "cpu ", 4) == 0, "stat starts with cpu");
	const char *bt = strstr(buf, "\nbtime ");
	CHECK(bt && atoll(bt + 7) > 0 && atoll(bt + 7) <= time(NULL), "stat has btime in the past");

	int procs = 0;
	CHECK(slurp("/proc/cpuinfo", buf, sizeof buf) > 0, "read cpuinfo");
	for (char *p = buf; (p = strstr(p, "processor")); p++)
		if (p == buf || p[-1] == '\n')
			procs++;
	CHECK(procs == sysconf(_SC_NPROCESSORS_ONLN), "cpuinfo lists the online CPUs");

	struct utsname un;
	uname(&un);
	CHECK(slurp("/proc/sys/kernel/ostype", buf, sizeof buf) > 0 && strcmp(buf, "Linux\n") == 0, "ostype is Linux");
	char want[512];
	snprintf(want, sizeof want, "%s\n", un.release);
	CHECK(slurp("/proc/sys/kernel/osrelease", buf, sizeof buf) > 0 && strcmp(buf, want) == 0, "osrelease == uname release");
	snprintf(want, sizeof want, "%s\n", un.nodename);
	CHECK(slurp("/proc/sys/kernel/hostname", buf, sizeof buf) > 0 && strcmp(buf, want) == 0, "hostname == uname nodename");
	CHECK(slurp("/proc/sys/kernel/pid_max", buf, sizeof buf) > 0 && atol(buf) > getpid(), "pid_max > getpid");
	char u1s[64], u2s[64], b1[64], b2[64];
	slurp("/proc/sys/kernel/random/uuid", u1s, sizeof u1s);
	slurp("/proc/sys/kernel/random/uuid", u2s, sizeof u2s);
	CHECK(strlen(u1s) == 37 && u1s[8] == '-' && strcmp(u1s, u2s) != 0, "random/uuid is fresh each read");
	slurp("/proc/sys/kernel/random/boot_id", b1, sizeof b1);
	slurp("/proc/sys/kernel/random/boot_id", b2, sizeof b2);
	CHECK(strlen(b1) == 37 && strcmp(b1, b2) == 0, "random/boot_id is stable");
	CHECK(slurp("/proc/sys/kernel/cap_last_cap", buf, sizeof buf) > 0 && atoi(buf) >= 40, "cap_last_cap");
	CHECK(slurp("/proc/sys/vm/mmap_min_addr", buf, sizeof buf) > 0, "vm/mmap_min_addr");
	CHECK(atol(buf) >= 0, "vm/mmap_min_addr parses");
	CHECK(slurp("/proc/sys/fs/nr_open", buf, sizeof buf) > 0, "fs/nr_open");
	struct rlimit rl = {atol(buf) + 1, atol(buf) + 1};
	CHECK(geteuid() != 0 || setrlimit(RLIMIT_NOFILE, &rl) == -1, "RLIMIT_NOFILE above nr_open fails");
	CHECK(slurp("/proc/sys/fs/pipe-max-size", buf, sizeof buf) > 0 && atol(buf) >= 4096, "fs/pipe-max-size");
	CHECK(slurp("/proc/sys/vm/max_map_count", buf, sizeof buf) > 0 && atol(buf) > 0, "vm/max_map_count");

	getrlimit(RLIMIT_NOFILE, &rl);
	CHECK(slurp("/proc/self/limits", buf, sizeof buf) > 0, "read limits");
	const char *nf = strstr(buf, "Max open files");
	CHECK(nf && strtoull(nf + 14, NULL, 10) == rl.rlim_cur, "limits Max open files == getrlimit");

	/* Mount tables: the root and /proc are there; mountinfo has its
	 * separator. */
	CHECK(slurp("/proc/self/mounts", buf, sizeof buf) > 0, "read mounts");
	int root = 0, proc = 0;
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char dev[256], mp[256], type[64];
		if (sscanf(l, "%255s %255s %63s", dev, mp, type) == 3) {
			root |= strcmp(mp, "/") == 0;
			proc |= strcmp(mp, "/proc") == 0 && strcmp(type, "proc") == 0;
		}
	}
	CHECK(root && proc, "mounts lists / and /proc");
	CHECK(slurp("/proc/self/mountinfo", buf, sizeof buf) > 0 && strstr(buf, " - proc ") != NULL, "mountinfo lists proc");
	CHECK(slurp("/proc/mounts", want, sizeof want) > 0, "/proc/mounts is readable");
	CHECK(slurp("/proc/self/cgroup", buf, sizeof buf) > 0 && strstr(buf, "0::/") != NULL, "cgroup has the v2 line");
	CHECK(slurp("/proc/filesystems", buf, sizeof buf) > 0 && strstr(buf, "\tproc\n") != NULL, "filesystems lists proc");
	CHECK(slurp("/proc/net/unix", buf, sizeof buf) > 0 && strncmp(buf, "Num", 3) == 0, "net/unix has its header");
	CHECK(slurp("/proc/net/tcp", buf, sizeof buf) > 0 && strstr(buf, "local_address") != NULL, "net/tcp has its header");
}

static void test_io_oom(void)
{
	char buf[1024];
	const char *v;
	slurp("/proc/self/io", buf, sizeof buf);
	long long r1 = (v = field(buf, "rchar")) ? atoll(v) : -1;
	int fd = open("/proc/self/status", O_RDONLY);
	char junk[512];
	ssize_t n = read(fd, junk, sizeof junk);
	close(fd);
	slurp("/proc/self/io", buf, sizeof buf);
	long long r2 = (v = field(buf, "rchar")) ? atoll(v) : -1;
	CHECK(r1 >= 0 && n > 0 && r2 >= r1 + n, "io rchar counts a read");

	fd = open("/proc/self/oom_score_adj", O_RDWR);
	CHECK(fd >= 0 && write(fd, "100\n", 4) == 4, "write oom_score_adj");
	if (fd >= 0)
		close(fd);
	CHECK(slurp("/proc/self/oom_score_adj", buf, sizeof buf) > 0 && atoi(buf) == 100, "oom_score_adj reads back");
	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	CHECK_ERR(write(fd, "1001", 4), EINVAL, "oom_score_adj above 1000 is EINVAL");
	close(fd);
	CHECK(slurp("/proc/self/oom_score", buf, sizeof buf) > 0 && atoi(buf) >= 0, "oom_score parses");
}

static char state_of(pid_t pid)
{
	char path[64], comm[64], f[64][32];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (stat_fields(path, comm, sizeof comm, f) < 3)
		return 0;
	return f[3][0];
}

static void test_states(void)
{
	/* A child in pause() is S; stopped is T; exited and unreaped is Z;
	 * reaped is gone. */
	pid_t c = check_fork();
	if (c == 0) {
		prctl(PR_SET_NAME, "proc-child");
		for (;;)
			pause();
	}
	char s = 0;
	for (int i = 0; i < 400 && s != 'S'; i++) {
		s = state_of(c);
		if (s != 'S')
			usleep(5000);
	}
	CHECK(s == 'S', "a child in pause() is S");
	char path[64], c2[64];
	snprintf(path, sizeof path, "/proc/%d/comm", c);
	CHECK(slurp(path, c2, sizeof c2) > 0 && strcmp(c2, "proc-child\n") == 0, "the child's comm");
	int found = 0;
	count_dir("/proc", c, &found);
	CHECK(found, "/proc lists the child");
	kill(c, SIGSTOP);
	int st;
	waitpid(c, &st, WUNTRACED);
	CHECK(state_of(c) == 'T', "a stopped child is T");
	kill(c, SIGKILL);
	siginfo_t si;
	CHECK(waitid(P_PID, c, &si, WEXITED | WNOWAIT) == 0, "waitid WNOWAIT");
	CHECK(state_of(c) == 'Z', "an unreaped child is Z");
	snprintf(path, sizeof path, "/proc/%d/status", c);
	char stx[4096];
	CHECK(slurp(path, stx, sizeof stx) > 0 && strstr(stx, "State:\tZ") != NULL, "zombie status says Z");
	CHECK(slurp(path, stx, sizeof stx) > 0 && field(stx, "VmSize") == NULL, "zombie status has no Vm lines");
	waitpid(c, &st, 0);
	snprintf(path, sizeof path, "/proc/%d", c);
	struct stat sb;
	CHECK_ERR(stat(path, &sb), ENOENT, "a reaped child's /proc/PID is gone");
	found = 0;
	count_dir("/proc", c, &found);
	CHECK(!found, "/proc no longer lists it");
}

static void test_access(void)
{
	if (geteuid() != 0)
		return; /* needs to change user */
	pid_t parent = getpid();
	pid_t c = check_fork();
	if (c == 0) {
		int bad = 0;
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(100);
		char path[64], link[256], buf[256];
		snprintf(path, sizeof path, "/proc/%d/cwd", parent);
		errno = 0;
		if (readlink(path, link, sizeof link) != -1 || errno != EACCES)
			bad |= 1;
		snprintf(path, sizeof path, "/proc/%d/environ", parent);
		if (open(path, O_RDONLY) != -1 || errno != EACCES)
			bad |= 2;
		snprintf(path, sizeof path, "/proc/%d/fd/0", parent);
		if (open(path, O_RDONLY) != -1 || errno != EACCES)
			bad |= 4;
		snprintf(path, sizeof path, "/proc/%d/stat", parent);
		if (slurp(path, buf, sizeof buf) <= 0)
			bad |= 8;
		_exit(bad);
	}
	int st;
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "another user cannot read cwd, environ, fd/ but can read stat");
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		printf("  (child status %d)\n", WEXITSTATUS(st));
}

int main(int argc, char **argv, char **envp)
{
	saved_argc = argc;
	saved_argv = argv;
	saved_envp = envp;
	setvbuf(stdout, NULL, _IONBF, 0);
	test_stat_self();
	test_status();
	test_threads();
	test_maps();
	test_fds();
	test_cmdline_environ();
	test_comm();
	test_global();
	test_io_oom();
	test_states();
	test_access();
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed != 0;
}
