/*
 * processes: fork, exec, wait and its statuses, waitid, close-on-exec,
 * process IDs, process groups and sessions, vfork.
 *
 * The program re-executes itself (via /proc/self/exe, else argv[0]) with a
 * "child-*" argument for the exec checks, so it needs no other binary.
 */
#include "check.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

static char self[4096];

static int child_mode(int argc, char **argv)
{
	if (strcmp(argv[1], "child-exit") == 0)
		return atoi(argv[2]);
	if (strcmp(argv[1], "child-fdcheck") == 0) {
		/* Exit 0 if fd argv[2] is closed, 1 if it is open. */
		int fd = atoi(argv[2]);
		return fcntl(fd, F_GETFD) == -1 && errno == EBADF ? 0 : 1;
	}
	if (strcmp(argv[1], "child-ppid") == 0) {
		/* Exit 0 if our parent is the PID in argv[2]. */
		return getppid() == (pid_t)atoi(argv[2]) ? 0 : 1;
	}
	(void)argc;
	return 99;
}

static int run_self(char *const args[])
{
	pid_t p = check_fork();
	if (p == 0) {
		execv(self, args);
		_exit(127);
	}
	int st;
	if (waitpid(p, &st, 0) != p)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strncmp(argv[1], "child-", 6) == 0)
		return child_mode(argc, argv);

	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0)
		self[n] = 0;
	else
		snprintf(self, sizeof(self), "%s", argv[0]);

	/* getpid/getppid agree with the raw syscalls and with a child. */
	pid_t me = getpid();
	CHECK(me > 0, "getpid positive");
	CHECK(syscall(SYS_getpid) == me, "getpid matches raw syscall");
	CHECK(getppid() >= 0, "getppid non-negative");
	int pfd[2];
	CHECK(pipe(pfd) == 0, "pipe for pid exchange");
	pid_t c = check_fork();
	if (c == 0) {
		pid_t v[2] = {getpid(), getppid()};
		write(pfd[1], v, sizeof(v));
		_exit(0);
	}
	CHECK(c > 0, "fork returns child pid");
	pid_t v[2] = {0, 0};
	CHECK(read(pfd[0], v, sizeof(v)) == sizeof(v), "read child pids");
	CHECK(v[0] == c, "child getpid equals fork return");
	CHECK(v[1] == me, "child getppid equals parent pid");
	int st;
	CHECK(waitpid(c, &st, 0) == c, "waitpid reaps child");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exit 0");
	close(pfd[0]);
	close(pfd[1]);

	/* Exit statuses survive intact through wait, all 8 bits. */
	int codes[] = {0, 1, 42, 255};
	for (unsigned i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		c = check_fork();
		if (c == 0)
			_exit(codes[i]);
		CHECK(waitpid(c, &st, 0) == c, "waitpid exit code child");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == codes[i],
		      "exit status preserved");
	}
	c = check_fork();
	if (c == 0)
		_exit(256 + 7); /* only the low 8 bits survive */
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "exit status truncated to 8 bits");

	/* Deaths by signal. */
	int sigs[] = {SIGKILL, SIGTERM, SIGUSR1, SIGABRT};
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		c = check_fork();
		if (c == 0) {
			signal(sigs[i], SIG_DFL);
			kill(getpid(), sigs[i]);
			for (;;)
				pause();
		}
		CHECK(waitpid(c, &st, 0) == c, "waitpid signalled child");
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == sigs[i],
		      "WIFSIGNALED/WTERMSIG report the killing signal");
		CHECK(!WIFEXITED(st), "signalled child not WIFEXITED");
	}
	/* Killed from outside while blocked. */
	c = check_fork();
	if (c == 0) {
		for (;;)
			pause();
	}
	CHECK(kill(c, SIGKILL) == 0, "kill child");
	waitpid(c, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "external SIGKILL status");

	/* Stopped and continued children are visible with WUNTRACED/WCONTINUED. */
	c = check_fork();
	if (c == 0) {
		for (;;)
			pause();
	}
	kill(c, SIGSTOP);
	CHECK(waitpid(c, &st, WUNTRACED) == c && WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP,
	      "WUNTRACED reports stop");
	kill(c, SIGCONT);
	CHECK(waitpid(c, &st, WCONTINUED) == c && WIFCONTINUED(st), "WCONTINUED reports continue");
	kill(c, SIGKILL);
	waitpid(c, &st, 0);

	/* WNOHANG with a live child returns 0; with no children ECHILD. */
	c = check_fork();
	if (c == 0) {
		for (;;)
			pause();
	}
	CHECK(waitpid(c, &st, WNOHANG) == 0, "WNOHANG on running child returns 0");
	kill(c, SIGKILL);
	waitpid(c, &st, 0);
	CHECK_ERR(waitpid(-1, &st, 0), ECHILD, "waitpid with no children ECHILD");
	CHECK_ERR(waitpid(c, &st, 0), ECHILD, "waitpid on reaped pid ECHILD");

	/* waitid fills siginfo; WNOWAIT leaves the child waitable. */
	c = check_fork();
	if (c == 0)
		_exit(5);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	CHECK(waitid(P_PID, c, &si, WEXITED | WNOWAIT) == 0, "waitid WNOWAIT");
	CHECK(si.si_pid == c && si.si_code == CLD_EXITED && si.si_status == 5,
	      "waitid siginfo for exit");
	CHECK(si.si_signo == SIGCHLD, "waitid si_signo is SIGCHLD");
	memset(&si, 0, sizeof(si));
	CHECK(waitid(P_PID, c, &si, WEXITED) == 0 && si.si_pid == c,
	      "waitid after WNOWAIT still reaps");
	c = check_fork();
	if (c == 0) {
		signal(SIGTERM, SIG_DFL);
		raise(SIGTERM);
		_exit(0);
	}
	memset(&si, 0, sizeof(si));
	CHECK(waitid(P_ALL, 0, &si, WEXITED) == 0, "waitid P_ALL");
	CHECK(si.si_pid == c && si.si_code == CLD_KILLED && si.si_status == SIGTERM,
	      "waitid siginfo for kill");
	CHECK_ERR(waitid(P_ALL, 0, &si, 0), EINVAL, "waitid without options EINVAL");

	/* exec replaces the image; status comes from the new image. */
	char *a1[] = {self, "child-exit", "33", NULL};
	CHECK(run_self(a1) == 33, "exec'd image's exit status");

	/* exec of a missing file fails with ENOENT and keeps the caller. */
	char *bad[] = {"/nonexistent-veil", NULL};
	CHECK_ERR(execv("/nonexistent-veil", bad), ENOENT, "execv missing file ENOENT");

	/* Close-on-exec: O_CLOEXEC fds vanish across exec, others stay. */
	int fds[2];
	CHECK(pipe2(fds, O_CLOEXEC) == 0, "pipe2 O_CLOEXEC");
	CHECK((fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0, "FD_CLOEXEC set by pipe2");
	char num[16];
	snprintf(num, sizeof(num), "%d", fds[0]);
	char *a2[] = {self, "child-fdcheck", num, NULL};
	CHECK(run_self(a2) == 0, "CLOEXEC fd closed after exec");
	CHECK(fcntl(fds[0], F_SETFD, 0) == 0, "clear FD_CLOEXEC");
	CHECK(run_self(a2) == 1, "non-CLOEXEC fd survives exec");
	close(fds[0]);
	close(fds[1]);

	/* exec keeps the pid, so the exec'd child still sees us as parent. */
	snprintf(num, sizeof(num), "%d", (int)getpid());
	char *a3[] = {self, "child-ppid", num, NULL};
	CHECK(run_self(a3) == 0, "exec'd child sees parent pid");

	/* Process groups. */
	pid_t pg = getpgrp();
	CHECK(pg >= 0 && getpgid(0) == pg, "getpgrp equals getpgid(0)");
	/* 0 is legitimate: the session leader may live outside our PID
	 * namespace (as under some CI runners). */
	CHECK(getsid(0) >= 0 && getsid(0) == getsid(getpid()), "getsid(0) is our session");
	CHECK(pipe(pfd) == 0, "pipe for pgid");
	c = check_fork();
	if (c == 0) {
		close(pfd[0]);
		int ok = setpgid(0, 0) == 0 && getpgrp() == getpid();
		/* A group leader cannot create a session... */
		ok = ok && setsid() == -1 && errno == EPERM;
		write(pfd[1], &ok, sizeof(ok));
		_exit(0);
	}
	int ok = 0;
	close(pfd[1]);
	CHECK(read(pfd[0], &ok, sizeof(ok)) == sizeof(ok) && ok,
	      "setpgid(0,0) makes child a group leader; setsid then EPERM");
	close(pfd[0]);
	waitpid(c, &st, 0);

	CHECK(pipe(pfd) == 0, "pipe for setsid");
	c = check_fork();
	if (c == 0) {
		close(pfd[0]);
		pid_t s = setsid();
		pid_t r[3] = {s, getsid(0), getpgrp()};
		write(pfd[1], r, sizeof(r));
		_exit(0);
	}
	close(pfd[1]);
	pid_t r[3] = {0, 0, 0};
	CHECK(read(pfd[0], r, sizeof(r)) == sizeof(r), "read setsid results");
	CHECK(r[0] == c && r[1] == c && r[2] == c, "setsid makes session and group leader");
	close(pfd[0]);
	waitpid(c, &st, 0);
	CHECK_ERR(getsid(999999999), ESRCH, "getsid unknown pid ESRCH");
	CHECK_ERR(setpgid(999999999, 0), ESRCH, "setpgid unknown pid ESRCH");
	CHECK_ERR(kill(999999999, 0), ESRCH, "kill unknown pid ESRCH");
	CHECK(kill(getpid(), 0) == 0, "kill(self, 0) succeeds");

	/* Killing a process group reaches every member. */
	c = check_fork();
	if (c == 0) {
		setpgid(0, 0);
		if (fork() == 0) {
			for (;;)
				pause();
		}
		for (;;)
			pause();
	}
	setpgid(c, c); /* race-free: both sides set it */
	usleep(50000);
	CHECK(kill(-c, SIGKILL) == 0, "kill process group");
	waitpid(c, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "group leader killed by group kill");

	/* vfork: the parent is suspended until the child execs or exits, and
	 * the child shares memory. */
	volatile int shared = 0;
	fflush(stdout);
	c = vfork();
	if (c == 0) {
		shared = 1;
		_exit(9);
	}
	CHECK(c > 0, "vfork returns child pid");
	CHECK(shared == 1, "vfork child wrote parent memory before parent resumed");
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 9, "vfork child exit status");
	fflush(stdout);
	c = vfork();
	if (c == 0) {
		execv(self, a1);
		_exit(127);
	}
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 33, "vfork+exec status");

	/* An orphan is reparented away from its dead parent. */
	CHECK(pipe(pfd) == 0, "pipe for orphan");
	c = check_fork();
	if (c == 0) {
		pid_t parent = getpid();
		if (fork() == 0) {
			while (getppid() == parent)
				usleep(1000);
			int reparented = 1;
			write(pfd[1], &reparented, sizeof(reparented));
			_exit(0);
		}
		_exit(0);
	}
	close(pfd[1]);
	waitpid(c, &st, 0);
	ok = 0;
	CHECK(read(pfd[0], &ok, sizeof(ok)) == sizeof(ok) && ok, "orphan reparented");
	close(pfd[0]);

	return check_summary();
}
