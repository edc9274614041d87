/*
 * mqueue: POSIX message queues. mq_open's flags, attributes and name
 * rules, priority order, full and empty queues (EAGAIN, blocking, absolute
 * timeouts), EMSGSIZE, mq_getsetattr, mq_notify with a signal, poll, the
 * queue seen through a mounted mqueue filesystem when one is at
 * /dev/mqueue, mq_unlink, and two processes passing messages.
 */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_sig, got_code, got_val;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_sig = sig;
	got_code = si->si_code;
	got_val = si->si_value.sival_int;
}

static struct timespec in_ms(long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (ms % 1000) * 1000000;
	ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	return ts;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	char name[64], buf[8192];
	snprintf(name, sizeof name, "/veil-mq-%d", getpid());
	mq_unlink(name);

	CHECK_ERR(mq_open(name, O_RDWR), ENOENT, "open of a missing queue");
	CHECK_ERR(mq_open("/a/b", O_RDWR | O_CREAT, 0600, NULL), EACCES, "a name with a slash");
	struct mq_attr bad = {.mq_maxmsg = 0, .mq_msgsize = 16};
	CHECK_ERR(mq_open(name, O_RDWR | O_CREAT, 0600, &bad), EINVAL, "mq_maxmsg 0");
	bad.mq_maxmsg = 4;
	bad.mq_msgsize = -1;
	CHECK_ERR(mq_open(name, O_RDWR | O_CREAT, 0600, &bad), EINVAL, "negative mq_msgsize");
	bad.mq_msgsize = 1L << 30;
	CHECK_ERR(mq_open(name, O_RDWR | O_CREAT, 0600, &bad), EINVAL, "mq_msgsize above the hard limit");

	struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 64};
	mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0640, &a);
	CHECK(q >= 0, "mq_open O_CREAT|O_EXCL");
	CHECK_ERR(mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a), EEXIST, "O_EXCL of an existing queue");
	struct mq_attr g;
	CHECK(mq_getattr(q, &g) == 0 && g.mq_maxmsg == 4 && g.mq_msgsize == 64 && g.mq_curmsgs == 0 && g.mq_flags == 0,
	      "mq_getattr: the attributes given, empty, blocking");

	/* Priority order, FIFO within a priority. */
	CHECK(mq_send(q, "low", 3, 1) == 0, "send prio 1");
	CHECK(mq_send(q, "high", 4, 9) == 0, "send prio 9");
	CHECK(mq_send(q, "low2", 4, 1) == 0, "send another prio 1");
	CHECK(mq_send(q, "mid", 3, 5) == 0, "send prio 5");
	CHECK(mq_getattr(q, &g) == 0 && g.mq_curmsgs == 4, "four messages queued");
	struct pollfd p = {q, POLLIN | POLLOUT, 0};
	CHECK(poll(&p, 1, 0) == 1 && p.revents == POLLIN, "a full queue polls readable, not writable");

	/* Full: non-blocking EAGAIN, a timed send times out. */
	struct mq_attr nb = {.mq_flags = O_NONBLOCK}, old;
	CHECK(mq_setattr(q, &nb, &old) == 0 && old.mq_flags == 0, "mq_setattr O_NONBLOCK");
	CHECK_ERR(mq_send(q, "x", 1, 0), EAGAIN, "send to a full non-blocking queue");
	nb.mq_flags = 0;
	CHECK(mq_setattr(q, &nb, NULL) == 0, "back to blocking");
	struct timespec ts = in_ms(100);
	double t0 = now_s();
	CHECK_ERR(mq_timedsend(q, "x", 1, 0, &ts), ETIMEDOUT, "timed send to a full queue");
	CHECK(now_s() - t0 >= 0.09, "the send waited for its timeout");
	ts.tv_nsec = 2000000000L;
	CHECK_ERR(mq_timedsend(q, "x", 1, 0, &ts), EINVAL, "malformed timeout");
	CHECK_ERR(mq_send(q, "x", 1, 40000), EINVAL, "priority past MQ_PRIO_MAX");

	unsigned prio;
	CHECK_ERR(mq_receive(q, buf, 63, &prio), EMSGSIZE, "a buffer below mq_msgsize");
	const char *want[] = {"high", "mid", "low", "low2"};
	unsigned wantp[] = {9, 5, 1, 1};
	int order_ok = 1;
	for (int i = 0; i < 4; i++) {
		ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
		if (n != (ssize_t)strlen(want[i]) || memcmp(buf, want[i], n) != 0 || prio != wantp[i])
			order_ok = 0;
	}
	CHECK(order_ok, "received by priority, then in order sent");
	CHECK(poll(&p, 1, 0) == 1 && p.revents == POLLOUT, "an empty queue polls writable");
	ts = in_ms(50);
	CHECK_ERR(mq_timedreceive(q, buf, sizeof buf, NULL, &ts), ETIMEDOUT, "timed receive from an empty queue");
	char big[65] = {0};
	CHECK_ERR(mq_send(q, big, 65, 0), EMSGSIZE, "a message above mq_msgsize");

	/* mq_notify with a signal, once. */
	struct sigaction sa = {0};
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	struct sigevent ev = {0};
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGUSR1;
	ev.sigev_value.sival_int = 77;
	CHECK(mq_notify(q, &ev) == 0, "mq_notify SIGEV_SIGNAL");
	CHECK_ERR(mq_notify(q, &ev) == 0 ? 0 : -1, EBUSY, "a second registration");
	char status[128] = {0};
	char path[128];
	int have_fs = 0;
	struct statfs sf;
	if (statfs("/dev/mqueue", &sf) == 0 && sf.f_type == 0x19800202) {
		have_fs = 1;
		snprintf(path, sizeof path, "/dev/mqueue%s", name);
		int f = open(path, O_RDONLY);
		CHECK(f >= 0 && read(f, status, sizeof status - 1) > 0, "the queue's file in /dev/mqueue reads");
		char want_status[128];
		snprintf(want_status, sizeof want_status, "QSIZE:%-10d NOTIFY:%-5d SIGNO:%-5d NOTIFY_PID:%-6d\n", 0, 0,
			 SIGUSR1, getpid());
		CHECK(strcmp(status, want_status) == 0, "its status line names the registration");
		close(f);
		struct stat st;
		CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0640, "stat of the queue's file");
	}
	CHECK(mq_send(q, "n", 1, 0) == 0, "send to the empty queue");
	for (int i = 0; i < 100 && !got_sig; i++)
		usleep(1000);
	CHECK(got_sig == SIGUSR1 && got_code == SI_MESGQ && got_val == 77, "the notification signal, SI_MESGQ, its value");
	got_sig = 0;
	CHECK(mq_send(q, "m", 1, 0) == 0 && (usleep(20000), got_sig == 0), "notified once: the registration is gone");
	CHECK(mq_notify(q, &ev) == 0 && mq_notify(q, NULL) == 0 && mq_notify(q, &ev) == 0 && mq_notify(q, NULL) == 0,
	      "register, unregister, register again");
	while (mq_receive(q, buf, sizeof buf, NULL) >= 0 && (mq_getattr(q, &g), g.mq_curmsgs > 0))
		;

	/* Two processes: the child blocks receiving until the parent sends. */
	pid_t c = check_fork();
	if (c == 0) {
		mqd_t cq = mq_open(name, O_RDONLY);
		char b[64];
		unsigned pr;
		ssize_t n = mq_receive(cq, b, sizeof b, &pr);
		_exit(n == 5 && memcmp(b, "hello", 5) == 0 && pr == 3 ? 0 : 1);
	}
	usleep(50000);
	CHECK(mq_send(q, "hello", 5, 3) == 0, "send to a waiting receiver in another process");
	int st;
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child received it");

	/* Permissions: a write-only open of a 0440 queue by its owner fails
	 * without CAP_DAC_OVERRIDE; root has it, so only check read-only. */
	mqd_t ro = mq_open(name, O_RDONLY);
	CHECK(ro >= 0, "a second, read-only description");
	CHECK_ERR(mq_send(ro, "x", 1, 0), EBADF, "send on a read-only description");
	mq_close(ro);

	CHECK(mq_unlink(name) == 0, "mq_unlink");
	CHECK_ERR(mq_unlink(name), ENOENT, "mq_unlink twice");
	CHECK_ERR(mq_open(name, O_RDWR), ENOENT, "the name is gone");
	if (have_fs)
		CHECK(access(path, F_OK) != 0, "and gone from /dev/mqueue");
	CHECK(mq_send(q, "still", 5, 0) == 0 && mq_receive(q, buf, sizeof buf, NULL) == 5,
	      "an open description of an unlinked queue still works");
	CHECK(mq_close(q) == 0, "mq_close");
	CHECK_ERR(mq_close(q), EBADF, "mq_close twice");
	return check_summary();
}
