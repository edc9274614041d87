/*
 * pty: pseudo-terminals. posix_openpt/grantpt/unlockpt/ptsname and the
 * lock, the line discipline (canonical lines, echo, erase, kill, werase,
 * EOF, ICRNL, ONLCR, ECHOCTL, literal next), non-canonical VMIN/VTIME
 * reads, ^C/^\/^Z to the foreground process group, window size and
 * SIGWINCH, controlling terminals (setsid, TIOCSCTTY, /dev/tty,
 * TIOCNOTTY), job control (SIGTTIN, SIGTTOU with TOSTOP and termios
 * changes, EIO for orphaned groups), hangups (master close, session
 * leader exit) and EIO on the master once the replica is gone.
 *
 * The line discipline of a real kernel runs input through a work queue,
 * so every read that expects data polls first (readn), and a check that
 * something did NOT arrive waits a little before looking.
 */
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* readn reads until want bytes arrived, EOF/error, or timeout_ms passed
 * without data; it returns the count (or -1 with errno if nothing). */
static ssize_t readn(int fd, char *buf, size_t want, int timeout_ms)
{
	size_t got = 0;
	while (got < want) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, timeout_ms);
		if (r <= 0)
			break;
		ssize_t n = read(fd, buf + got, want - got);
		if (n < 0)
			return got ? (ssize_t)got : -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* drain reads whatever arrives within timeout_ms into buf (NUL ended). */
static size_t drain(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t got = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, timeout_ms) <= 0 || !(p.revents & POLLIN))
			break;
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	return got;
}

static int readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* open_pair makes an unlocked pair; the replica is opened O_NOCTTY. */
static int open_pair(int *m, int *s, char *name, size_t n)
{
	*m = posix_openpt(O_RDWR | O_NOCTTY);
	if (*m < 0 || grantpt(*m) || unlockpt(*m) || ptsname_r(*m, name, n))
		return -1;
	*s = open(name, O_RDWR | O_NOCTTY);
	return *s < 0 ? -1 : 0;
}

static int set_lflag(int fd, tcflag_t on, tcflag_t off)
{
	struct termios t;
	if (tcgetattr(fd, &t))
		return -1;
	t.c_lflag = (t.c_lflag | on) & ~off;
	return tcsetattr(fd, TCSANOW, &t);
}

/* child_status waits for pid and reports whether it exited with 0. */
static int child_ok(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return 0;
	if (!WIFEXITED(st))
		printf("child %d: status %#x\n", (int)pid, st);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static volatile sig_atomic_t got_sig[65];
static void on_sig(int sig) { got_sig[sig]++; }

static void catch(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(sig, &sa, NULL);
}

/* wait_sig waits up to ms for sig to have been caught. */
static int wait_sig(int sig, int ms)
{
	long end = now_ms() + ms;
	while (!got_sig[sig] && now_ms() < end)
		usleep(2000);
	return got_sig[sig] != 0;
}

/* Sync between a parent and a child: one byte through a pipe. */
static void post(int fd) { (void)!write(fd, "x", 1); }
static int await(int fd)
{
	char c;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 5000) == 1 && read(fd, &c, 1) == 1;
}

static void test_basics(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	CHECK(m >= 0, "posix_openpt");
	CHECK(isatty(m), "master isatty");
	struct stat st;
	CHECK(fstat(m, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 5 && minor(st.st_rdev) == 2,
	      "master is char 5:2");
	unsigned int n = 9999;
	CHECK(ioctl(m, TIOCGPTN, &n) == 0 && n < 9999, "TIOCGPTN");
	char name[64], want[64];
	snprintf(want, sizeof(want), "/dev/pts/%u", n);
	CHECK(ptsname_r(m, name, sizeof(name)) == 0 && strcmp(name, want) == 0, "ptsname is /dev/pts/N");
	CHECK(grantpt(m) == 0, "grantpt");
	int lk = -1;
	CHECK(ioctl(m, TIOCGPTLCK, &lk) == 0 && lk == 1, "new pair is locked");
	CHECK_ERR(open(name, O_RDWR | O_NOCTTY), EIO, "open of a locked replica");
	CHECK_ERR(ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY), EIO, "TIOCGPTPEER of a locked pair");
	CHECK(unlockpt(m) == 0, "unlockpt");
	CHECK(ioctl(m, TIOCGPTLCK, &lk) == 0 && lk == 0, "TIOCGPTLCK after unlock");
	int s = open(name, O_RDWR | O_NOCTTY);
	CHECK(s >= 0, "open replica");
	CHECK(isatty(s), "replica isatty");
	CHECK(fstat(s, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 136 + n / 256 &&
	          minor(st.st_rdev) == n % 256,
	      "replica is char 136:N");
	struct stat st2;
	CHECK(stat(name, &st2) == 0 && st2.st_rdev == st.st_rdev && st2.st_ino == st.st_ino, "stat of /dev/pts/N");
	CHECK(stat("/dev/pts/ptmx", &st2) == 0 && S_ISCHR(st2.st_mode) && st2.st_rdev == makedev(5, 2),
	      "/dev/pts/ptmx is 5:2");
	char tn[64];
	CHECK(ttyname_r(s, tn, sizeof(tn)) == 0 && strcmp(tn, name) == 0, "ttyname of the replica");
	CHECK_ERR(ioctl(s, TIOCGPTN, &n), ENOTTY, "TIOCGPTN on the replica");
	int peer = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	CHECK(peer >= 0, "TIOCGPTPEER");
	CHECK(fstat(peer, &st2) == 0 && st2.st_rdev == st.st_rdev, "TIOCGPTPEER opens the replica");
	CHECK(fcntl(peer, F_GETFD) == FD_CLOEXEC, "TIOCGPTPEER honours O_CLOEXEC");
	CHECK_ERR(ioctl(s, TIOCGPTPEER, O_RDWR), EIO, "TIOCGPTPEER on the replica");
	close(peer);

	struct termios t;
	CHECK(tcgetattr(s, &t) == 0, "tcgetattr");
	CHECK((t.c_lflag & (ICANON | ECHO | ISIG | ECHOE | ECHOK | IEXTEN)) == (ICANON | ECHO | ISIG | ECHOE | ECHOK | IEXTEN),
	      "default lflag");
	CHECK((t.c_iflag & ICRNL) && (t.c_oflag & (OPOST | ONLCR)) == (OPOST | ONLCR), "default iflag/oflag");
	CHECK(t.c_cc[VINTR] == 3 && t.c_cc[VQUIT] == 034 && t.c_cc[VERASE] == 0177 && t.c_cc[VKILL] == 025 &&
	          t.c_cc[VEOF] == 4 && t.c_cc[VMIN] == 1 && t.c_cc[VTIME] == 0 && t.c_cc[VSUSP] == 032,
	      "default control characters");
	struct termios tm;
	CHECK(tcgetattr(m, &tm) == 0 && tm.c_lflag == t.c_lflag && tm.c_iflag == t.c_iflag,
	      "the master reports the replica's termios");
	struct winsize ws = {1, 1, 1, 1};
	CHECK(ioctl(s, TIOCGWINSZ, &ws) == 0 && ws.ws_row == 0 && ws.ws_col == 0, "initial window size is 0x0");
	CHECK_ERR(ioctl(s, 0x54ff, 0), ENOTTY, "unknown tty ioctl");
	CHECK_ERR(ioctl(s, TCGETS, (void *)8), EFAULT, "TCGETS to a bad pointer");
	int q = -1;
	CHECK(ioctl(s, TIOCOUTQ, &q) == 0 && q == 0, "TIOCOUTQ");
	close(s);
	close(m);

	/* /dev/ptmx opens the same devpts instance. */
	m = open("/dev/ptmx", O_RDWR | O_NOCTTY);
	CHECK(m >= 0, "open /dev/ptmx");
	CHECK(ioctl(m, TIOCGPTN, &n) == 0, "TIOCGPTN via /dev/ptmx");
	int zero = 0;
	CHECK(ioctl(m, TIOCSPTLCK, &zero) == 0, "TIOCSPTLCK 0");
	snprintf(name, sizeof(name), "/dev/pts/%u", n);
	s = open(name, O_RDWR | O_NOCTTY);
	CHECK(s >= 0, "replica of /dev/ptmx");
	close(s);
	close(m);
	CHECK_ERR(open(name, O_RDWR | O_NOCTTY), ENOENT, "replica is gone once the master closes");
}

static void test_canonical(void)
{
	int m, s;
	char name[64], buf[256];
	if (open_pair(&m, &s, name, sizeof(name))) {
		CHECK(0, "open pair");
		return;
	}
	(void)!write(m, "hello\n", 6);
	CHECK(readn(s, buf, 6, 2000) == 6 && memcmp(buf, "hello\n", 6) == 0, "a line reaches the replica");
	CHECK(readn(m, buf, 7, 2000) == 7 && memcmp(buf, "hello\r\n", 7) == 0, "echo with ONLCR");

	(void)!write(m, "abc", 3);
	CHECK(drain(m, buf, sizeof(buf), 200) == 3 && strcmp(buf, "abc") == 0, "partial line echoed");
	CHECK(!readable(s, 100), "a partial line is not readable");
	int q = -1;
	CHECK(ioctl(s, FIONREAD, &q) == 0 && q == 0, "FIONREAD counts only complete lines");
	(void)!write(m, "\n", 1);
	CHECK(readable(s, 2000), "readable once the line ends");
	CHECK(ioctl(s, FIONREAD, &q) == 0 && q == 4, "FIONREAD of a complete line");
	CHECK(read(s, buf, 2) == 2 && memcmp(buf, "ab", 2) == 0, "a short read takes part of the line");
	CHECK(read(s, buf, sizeof(buf)) == 2 && memcmp(buf, "c\n", 2) == 0, "then the rest");
	drain(m, buf, sizeof(buf), 100);

	/* Two lines in one write come back one read at a time. */
	(void)!write(m, "one\ntwo\n", 8);
	CHECK(readn(s, buf, 4, 2000) == 4, "first line");
	CHECK(read(s, buf, sizeof(buf)) == 4 && memcmp(buf, "two\n", 4) == 0, "second line in a second read");
	drain(m, buf, sizeof(buf), 100);

	(void)!write(m, "abx\177c\n", 6);
	CHECK(readn(s, buf, 4, 2000) == 4 && memcmp(buf, "abc\n", 4) == 0, "VERASE removes a character");
	CHECK(drain(m, buf, sizeof(buf), 200) > 0 && strcmp(buf, "abx\b \bc\r\n") == 0, "ECHOE erases on screen");

	(void)!write(m, "junk\025ok\n", 8);
	CHECK(readn(s, buf, 3, 2000) == 3 && memcmp(buf, "ok\n", 3) == 0, "VKILL removes the line");
	drain(m, buf, sizeof(buf), 200);
	CHECK(strcmp(buf, "junk\b \b\b \b\b \b\b \bok\r\n") == 0, "ECHOKE erases the line on screen");

	(void)!write(m, "one two\027three\n", 14);
	CHECK(readn(s, buf, 10, 2000) == 10 && memcmp(buf, "one three\n", 10) == 0, "VWERASE removes a word");
	drain(m, buf, sizeof(buf), 100);

	(void)!write(m, "ab\004", 3);
	CHECK(readable(s, 2000), "VEOF ends a line");
	CHECK(read(s, buf, sizeof(buf)) == 2 && memcmp(buf, "ab", 2) == 0, "VEOF is not part of the data");
	(void)!write(m, "\004", 1);
	CHECK(readable(s, 2000) && read(s, buf, sizeof(buf)) == 0, "VEOF on an empty line reads as end of file");
	drain(m, buf, sizeof(buf), 100);

	(void)!write(m, "x\r", 2);
	CHECK(readn(s, buf, 2, 2000) == 2 && memcmp(buf, "x\n", 2) == 0, "ICRNL");
	drain(m, buf, sizeof(buf), 100);

	(void)!write(m, "\001\n", 2);
	CHECK(readn(s, buf, 2, 2000) == 2 && buf[0] == 1, "control character kept");
	CHECK(drain(m, buf, sizeof(buf), 200) == 4 && strcmp(buf, "^A\r\n") == 0, "ECHOCTL shows ^A");

	(void)!write(m, "\026\003\n", 3);
	CHECK(readn(s, buf, 2, 2000) == 2 && buf[0] == 3, "VLNEXT quotes ^C");
	drain(m, buf, sizeof(buf), 100);

	CHECK(set_lflag(s, 0, ECHO) == 0, "ECHO off");
	(void)!write(m, "secret\n", 7);
	CHECK(readn(s, buf, 7, 2000) == 7, "line read without echo");
	CHECK(drain(m, buf, sizeof(buf), 200) == 0, "no echo");
	CHECK(set_lflag(s, ECHONL, 0) == 0, "ECHONL on");
	(void)!write(m, "pw\n", 3);
	CHECK(readn(s, buf, 3, 2000) == 3, "line read with ECHONL");
	CHECK(drain(m, buf, sizeof(buf), 200) == 2 && strcmp(buf, "\r\n") == 0, "ECHONL echoes only the newline");
	CHECK(set_lflag(s, ECHO, ECHONL) == 0, "ECHO back on");

	/* Output processing on the replica's writes. */
	(void)!write(s, "x\n", 2);
	CHECK(readn(m, buf, 3, 2000) == 3 && memcmp(buf, "x\r\n", 3) == 0, "ONLCR on output");
	struct termios t;
	tcgetattr(s, &t);
	t.c_oflag &= ~OPOST;
	CHECK(tcsetattr(s, TCSANOW, &t) == 0, "OPOST off");
	(void)!write(s, "y\n", 2);
	CHECK(readn(m, buf, 2, 2000) == 2 && memcmp(buf, "y\n", 2) == 0, "no output processing without OPOST");
	CHECK(drain(m, buf, sizeof(buf), 100) == 0, "nothing more");
	t.c_oflag |= OPOST | OCRNL;
	tcsetattr(s, TCSANOW, &t);
	(void)!write(s, "z\r", 2);
	CHECK(readn(m, buf, 2, 2000) == 2 && memcmp(buf, "z\n", 2) == 0, "OCRNL");

	/* Flushing pending input. */
	(void)!write(m, "gone\n", 5);
	CHECK(readable(s, 2000), "input pending");
	CHECK(tcflush(s, TCIFLUSH) == 0, "tcflush TCIFLUSH");
	CHECK(!readable(s, 100), "input flushed");
	drain(m, buf, sizeof(buf), 100);
	CHECK_ERR(ioctl(s, TCFLSH, 7), EINVAL, "TCFLSH with a bad queue");
	CHECK(tcdrain(s) == 0, "tcdrain");
	CHECK(tcflow(s, TCOOFF) == 0, "tcflow TCOOFF");
	CHECK(tcflow(s, TCOON) == 0, "tcflow TCOON");
	CHECK_ERR(ioctl(s, TCXONC, 9), EINVAL, "TCXONC with a bad action");

	/* epoll on the master sees the replica's output. */
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, m, &ev) == 0, "epoll_ctl master");
	CHECK(epoll_wait(ep, &ev, 1, 0) == 0, "master not readable yet");
	(void)!write(s, "e", 1);
	CHECK(epoll_wait(ep, &ev, 1, 2000) == 1 && (ev.events & EPOLLIN), "epoll wakes on replica output");
	drain(m, buf, sizeof(buf), 100);
	close(ep);
	close(s);
	close(m);
}

static void test_packet(void)
{
	int m, s;
	char name[64], buf[64];
	if (open_pair(&m, &s, name, sizeof(name))) {
		CHECK(0, "open pair");
		return;
	}
	int on = 1, got = 0;
	CHECK(ioctl(m, TIOCPKT, &on) == 0, "TIOCPKT on");
	CHECK(ioctl(m, TIOCGPKT, &got) == 0 && got == 1, "TIOCGPKT");
	(void)!write(s, "x", 1);
	CHECK(readn(m, buf, 2, 2000) == 2 && buf[0] == TIOCPKT_DATA && buf[1] == 'x', "packet mode data has a 0 header");
	CHECK(tcflush(s, TCIFLUSH) == 0, "tcflush in packet mode");
	CHECK(readable(m, 2000), "a flush is reported to the master");
	CHECK(read(m, buf, sizeof(buf)) == 1 && (buf[0] & TIOCPKT_FLUSHREAD), "TIOCPKT_FLUSHREAD");
	on = 0;
	CHECK(ioctl(m, TIOCPKT, &on) == 0, "TIOCPKT off");
	(void)!write(s, "y", 1);
	CHECK(readn(m, buf, 1, 2000) == 1 && buf[0] == 'y', "plain data again");
	close(s);
	close(m);
}

static void test_raw(void)
{
	int m, s;
	char name[64], buf[256];
	if (open_pair(&m, &s, name, sizeof(name))) {
		CHECK(0, "open pair");
		return;
	}
	struct termios t;
	tcgetattr(s, &t);
	cfmakeraw(&t);
	t.c_cc[VMIN] = 3;
	t.c_cc[VTIME] = 0;
	CHECK(tcsetattr(s, TCSANOW, &t) == 0, "raw mode");
	(void)!write(m, "a\rb", 3);
	CHECK(readn(s, buf, 3, 2000) == 3 && memcmp(buf, "a\rb", 3) == 0, "raw input is not translated");
	CHECK(drain(m, buf, sizeof(buf), 100) == 0, "no echo in raw mode");

	(void)!write(m, "ab", 2);
	CHECK(!readable(s, 200), "poll waits for VMIN bytes");
	(void)!write(m, "c", 1);
	CHECK(readable(s, 2000), "readable at VMIN bytes");
	CHECK(read(s, buf, sizeof(buf)) == 3, "VMIN read");

	/* A blocking read waits until VMIN bytes arrive. */
	(void)!write(m, "ab", 2);
	pid_t c = check_fork();
	if (c == 0) {
		usleep(150000);
		(void)!write(m, "cd", 2);
		_exit(0);
	}
	long t0 = now_ms();
	ssize_t n = read(s, buf, sizeof(buf));
	CHECK(n == 4 && memcmp(buf, "abcd", 4) == 0, "blocking read returns once VMIN is reached");
	CHECK(now_ms() - t0 >= 100, "blocking read waited for the rest");
	child_ok(c);

	/* O_NONBLOCK returns what there is, or EAGAIN. */
	int fl = fcntl(s, F_GETFL);
	fcntl(s, F_SETFL, fl | O_NONBLOCK);
	CHECK_ERR(read(s, buf, sizeof(buf)), EAGAIN, "O_NONBLOCK read of nothing");
	(void)!write(m, "z", 1);
	usleep(50000);
	CHECK(read(s, buf, sizeof(buf)) == 1, "O_NONBLOCK read returns fewer than VMIN bytes");
	fcntl(s, F_SETFL, fl);

	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	tcsetattr(s, TCSANOW, &t);
	CHECK(read(s, buf, sizeof(buf)) == 0, "VMIN=0 VTIME=0 returns 0 at once");

	t.c_cc[VTIME] = 2;
	tcsetattr(s, TCSANOW, &t);
	t0 = now_ms();
	CHECK(read(s, buf, sizeof(buf)) == 0, "VMIN=0 VTIME=2 times out with 0");
	long el = now_ms() - t0;
	CHECK(el >= 150 && el < 2000, "VTIME=2 waits about 0.2 s");
	c = check_fork();
	if (c == 0) {
		usleep(50000);
		(void)!write(m, "q", 1);
		_exit(0);
	}
	t.c_cc[VTIME] = 30;
	tcsetattr(s, TCSANOW, &t);
	t0 = now_ms();
	CHECK(read(s, buf, sizeof(buf)) == 1, "VMIN=0 VTIME>0 returns when data arrives");
	CHECK(now_ms() - t0 < 2500, "without waiting for VTIME");
	child_ok(c);

	t.c_cc[VMIN] = 5;
	t.c_cc[VTIME] = 2;
	tcsetattr(s, TCSANOW, &t);
	(void)!write(m, "xy", 2);
	t0 = now_ms();
	CHECK(read(s, buf, sizeof(buf)) == 2, "VMIN>0 VTIME>0: the inter-byte timer ends the read");
	CHECK(now_ms() - t0 < 2000, "inter-byte timeout is short");

	/* Back to canonical: pending raw input becomes a line. */
	t.c_lflag |= ICANON;
	tcsetattr(s, TCSANOW, &t);
	(void)!write(m, "l\n", 2);
	CHECK(readn(s, buf, 2, 2000) == 2, "canonical again");
	close(s);
	close(m);
}

/* In a new session with name as controlling terminal: run fn, exit with
 * its failure count. rd/wr are the sync pipe ends fn may use. */
static pid_t in_session(int m, const char *name, int (*fn)(int s, int rd, int wr), int rd, int wr)
{
	pid_t c = check_fork();
	if (c == 0) {
		check_passed = check_failed = 0;
		close(m); /* the parent's close of the master must be the last */
		signal(SIGTTOU, SIG_DFL);
		CHECK(setsid() == getpid(), "setsid");
		int s = open(name, O_RDWR); /* no O_NOCTTY: becomes the ctty */
		CHECK(s >= 0, "open replica as a session leader");
		int r = fn(s, rd, wr);
		fflush(stdout);
		_exit(r || check_failed ? 1 : 0);
	}
	return c;
}

static int sig_child(int s, int rd, int wr)
{
	CHECK(tcgetsid(s) == getpid(), "opening made it the controlling terminal");
	CHECK(tcgetpgrp(s) == getpgrp(), "foreground group is ours");
	int t = open("/dev/tty", O_RDWR);
	CHECK(t >= 0, "/dev/tty opens the controlling terminal");
	struct stat st;
	CHECK(fstat(t, &st) == 0 && st.st_rdev == makedev(5, 0), "/dev/tty is 5:0");
	CHECK(write(t, "T", 1) == 1, "write through /dev/tty");
	catch(SIGINT);
	catch(SIGQUIT);
	catch(SIGWINCH);
	post(wr);
	CHECK(wait_sig(SIGINT, 3000), "^C sends SIGINT to the foreground group");
	post(wr);
	CHECK(wait_sig(SIGQUIT, 3000), "^\\ sends SIGQUIT");
	char buf[64];
	/* ^C flushed "abc"; only the next line is read. */
	post(wr);
	ssize_t n = read(s, buf, sizeof(buf));
	CHECK(n == 2 && memcmp(buf, "x\n", 2) == 0, "ISIG flushes pending input");
	post(wr);
	CHECK(wait_sig(SIGWINCH, 3000), "TIOCSWINSZ on the master sends SIGWINCH");
	struct winsize ws;
	CHECK(ioctl(t, TIOCGWINSZ, &ws) == 0 && ws.ws_row == 24 && ws.ws_col == 80, "window size seen by the replica");
	int before = got_sig[SIGWINCH];
	CHECK(ioctl(s, TIOCSWINSZ, &ws) == 0, "TIOCSWINSZ to the same size");
	usleep(100000);
	CHECK(got_sig[SIGWINCH] == before, "no SIGWINCH without a change");
	post(wr);
	await(rd);
	close(t);
	return 0;
}

static void test_signals(void)
{
	int m, s;
	char name[64], buf[256];
	if (open_pair(&m, &s, name, sizeof(name))) {
		CHECK(0, "open pair");
		return;
	}
	close(s);
	int up[2], down[2];
	(void)!pipe(up);
	(void)!pipe(down);
	pid_t c = in_session(m, name, sig_child, down[0], up[1]);
	CHECK(await(up[0]), "child ready");
	CHECK(readn(m, buf, 1, 2000) == 1 && buf[0] == 'T', "output via /dev/tty");
	(void)!write(m, "\003", 1);
	CHECK(await(up[0]), "child saw SIGINT");
	CHECK(drain(m, buf, sizeof(buf), 200) == 2 && strcmp(buf, "^C") == 0, "^C echoed");
	(void)!write(m, "\034", 1);
	CHECK(await(up[0]), "child saw SIGQUIT");
	drain(m, buf, sizeof(buf), 100);
	(void)!write(m, "abc", 3);
	usleep(50000);
	(void)!write(m, "\003x\n", 3);
	CHECK(await(up[0]), "child reading");
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
	CHECK(ioctl(m, TIOCSWINSZ, &ws) == 0, "TIOCSWINSZ on the master");
	CHECK(await(up[0]), "child saw SIGWINCH");
	/* The child's group is orphaned (its parent, us, is in another
	 * session): a stop from the keyboard is discarded. */
	(void)!write(m, "\032", 1);
	usleep(200000);
	int st;
	CHECK(waitpid(c, &st, WUNTRACED | WNOHANG) == 0, "^Z does not stop an orphaned group");
	post(down[1]);
	CHECK(child_ok(c), "session child");
	close(m);
	close(up[0]), close(up[1]), close(down[0]), close(down[1]);
}

static int ctty_child(int s, int rd, int wr)
{
	(void)rd;
	(void)wr;
	/* A second open does not change anything; TIOCSCTTY on our own
	 * controlling terminal succeeds. */
	CHECK(ioctl(s, TIOCSCTTY, 0) == 0, "TIOCSCTTY on our own terminal");
	pid_t g = check_fork();
	if (g == 0) {
		check_passed = check_failed = 0;
		/* Not a session leader. */
		CHECK_ERR(ioctl(s, TIOCSCTTY, 0), EPERM, "TIOCSCTTY by a non-leader");
		CHECK(setsid() > 0, "grandchild setsid");
		CHECK_ERR(open("/dev/tty", O_RDWR), ENXIO, "setsid drops the controlling terminal");
		CHECK_ERR(tcgetpgrp(s), ENOTTY, "tcgetpgrp of a terminal that is not ours");
		CHECK_ERR(ioctl(s, TIOCSCTTY, 0), EPERM, "TIOCSCTTY of another session's terminal");
		_exit(check_failed ? 1 : 0);
	}
	CHECK(child_ok(g), "grandchild");
	CHECK_ERR(tcsetpgrp(s, getppid()), EPERM, "tcsetpgrp to another session's group");
	pid_t dead = check_fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	CHECK_ERR(tcsetpgrp(s, dead), ESRCH, "tcsetpgrp to no group");
	signal(SIGHUP, SIG_IGN);
	CHECK(ioctl(s, TIOCNOTTY) == 0, "TIOCNOTTY");
	CHECK_ERR(open("/dev/tty", O_RDWR), ENXIO, "no /dev/tty after TIOCNOTTY");
	CHECK_ERR(ioctl(s, TIOCNOTTY), ENOTTY, "TIOCNOTTY without a terminal");
	CHECK(ioctl(s, TIOCSCTTY, 0) == 0, "TIOCSCTTY takes it back");
	CHECK(tcgetsid(s) == getpid(), "session of the terminal");
	return 0;
}

static void test_ctty(void)
{
	int m, s;
	char name[64];
	if (open_pair(&m, &s, name, sizeof(name))) {
		CHECK(0, "open pair");
		return;
	}
	CHECK_ERR(tcgetsid(s), ENOTTY, "tcgetsid of a terminal with no session");
	pid_t c = in_session(m, name, ctty_child, -1, -1);
	CHECK(child_ok(c), "ctty child");
	close(s);
	close(m);
}

/* job_child: the session leader starts background jobs. */
static int job_child(int s, int rd, int wr)
{
	(void)rd;
	(void)wr;
	struct termios t;
	tcgetattr(s, &t);
	int st;

	/* ^Z stops a foreground job (not orphaned: we are its parent). */
	pid_t g = check_fork();
	if (g == 0) {
		setpgid(0, 0);
		for (;;)
			pause();
	}
	setpgid(g, g);
	CHECK(tcsetpgrp(s, g) == 0, "tcsetpgrp to the job");
	post(wr);
	CHECK(waitpid(g, &st, WUNTRACED) == g && WIFSTOPPED(st) && WSTOPSIG(st) == SIGTSTP,
	      "^Z stops the foreground job");
	kill(g, SIGKILL);
	waitpid(g, &st, 0);
	/* We are in the background now, and our group is orphaned (our
	 * parent is in another session): SIGTTOU must be ignored. */
	signal(SIGTTOU, SIG_IGN);
	CHECK(tcsetpgrp(s, getpgrp()) == 0, "foreground back to the leader");
	signal(SIGTTOU, SIG_DFL);

	/* A background read stops the job with SIGTTIN. */
	g = check_fork();
	if (g == 0) {
		setpgid(0, 0);
		char b;
		(void)!read(s, &b, 1);
		_exit(3);
	}
	setpgid(g, g);
	CHECK(waitpid(g, &st, WUNTRACED) == g && WIFSTOPPED(st) && WSTOPSIG(st) == SIGTTIN,
	      "background read gets SIGTTIN");
	kill(g, SIGKILL);
	waitpid(g, &st, 0);

	/* ... or EIO when SIGTTIN is ignored. */
	g = check_fork();
	if (g == 0) {
		setpgid(0, 0);
		signal(SIGTTIN, SIG_IGN);
		char b;
		_exit(read(s, &b, 1) == -1 && errno == EIO ? 0 : 1);
	}
	setpgid(g, g);
	CHECK(child_ok(g), "background read with SIGTTIN ignored gets EIO");

	/* Writing is allowed until TOSTOP is set. */
	g = check_fork();
	if (g == 0) {
		setpgid(0, 0);
		_exit(write(s, "w", 1) == 1 ? 0 : 1);
	}
	setpgid(g, g);
	CHECK(child_ok(g), "background write without TOSTOP");
	t.c_lflag |= TOSTOP;
	tcsetattr(s, TCSANOW, &t);
	g = check_fork();
	if (g == 0) {
		setpgid(0, 0);
		(void)!write(s, "w", 1);
		_exit(3);
	}
	setpgid(g, g);
	CHECK(waitpid(g, &st, WUNTRACED) == g && WIFSTOPPED(st) && WSTOPSIG(st) == SIGTTOU,
	      "background write with TOSTOP gets SIGTTOU");
	kill(g, SIGKILL);
	waitpid(g, &st, 0);
	t.c_lflag &= ~TOSTOP;
	tcsetattr(s, TCSANOW, &t);

	/* Changing termios from the background: SIGTTOU, unless ignored. */
	g = check_fork();
	if (g == 0) {
		setpgid(0, 0);
		tcsetattr(s, TCSANOW, &t);
		_exit(3);
	}
	setpgid(g, g);
	CHECK(waitpid(g, &st, WUNTRACED) == g && WIFSTOPPED(st) && WSTOPSIG(st) == SIGTTOU,
	      "background tcsetattr gets SIGTTOU");
	kill(g, SIGKILL);
	waitpid(g, &st, 0);

	/* A job that blocks SIGTTOU may take the foreground, then read. */
	g = check_fork();
	if (g == 0) {
		check_passed = check_failed = 0;
		setpgid(0, 0);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGTTOU);
		sigprocmask(SIG_BLOCK, &set, NULL);
		CHECK(tcsetattr(s, TCSANOW, &t) == 0, "background tcsetattr with SIGTTOU blocked");
		CHECK(tcsetpgrp(s, getpgrp()) == 0, "tcsetpgrp from the background");
		CHECK(tcgetpgrp(s) == getpgrp(), "now in the foreground");
		char b[8];
		CHECK(read(s, b, sizeof(b)) == 2, "foreground read");
		_exit(check_failed ? 1 : 0);
	}
	setpgid(g, g);
	/* Feed the line once the job is in the foreground: the parent
	 * watches the master; we just wait here. */
	post(wr);
	CHECK(child_ok(g), "job that took the foreground");

	/* An orphaned background group gets EIO instead of a stop. */
	signal(SIGTTOU, SIG_IGN);
	int p[2], reaped[2];
	(void)!pipe(p);
	(void)!pipe(reaped);
	g = check_fork();
	if (g == 0) {
		setpgid(0, 0);
		pid_t gg = check_fork();
		if (gg == 0) {
			close(p[0]);
			close(reaped[1]);
			/* Once our parent is reaped, our group has no member
			 * with a parent in the session outside it. */
			await(reaped[0]);
			char b;
			int ok = read(s, &b, 1) == -1 && errno == EIO;
			if (!ok)
				printf("orphan read: errno %d\n", errno);
			(void)!write(p[1], ok ? "y" : "n", 1);
			_exit(0);
		}
		_exit(0);
	}
	setpgid(g, g);
	waitpid(g, &st, 0);
	post(reaped[1]);
	close(p[1]);
	close(reaped[0]);
	close(reaped[1]);
	char r = 0;
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	CHECK(poll(&pf, 1, 5000) == 1 && read(p[0], &r, 1) == 1 && r == 'y', "orphaned group's read gets EIO");
	close(p[0]);
	return 0;
}

static void test_jobs(void)
{
	int m, s;
	char name[64], buf[64];
	if (open_pair(&m, &s, name, sizeof(name))) {
		CHECK(0, "open pair");
		return;
	}
	close(s);
	int up[2];
	(void)!pipe(up);
	pid_t c = in_session(m, name, job_child, -1, up[1]);
	CHECK(await(up[0]), "job to stop in the foreground");
	(void)!write(m, "\032", 1);
	CHECK(await(up[0]), "job in the foreground");
	usleep(100000);
	(void)!write(m, "f\n", 2);
	CHECK(child_ok(c), "job control child");
	drain(m, buf, sizeof(buf), 50);
	close(up[0]);
	close(up[1]);
	close(m);
	/* Reap anything reparented to us (the orphan above may be ours). */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static int hup_child(int s, int rd, int wr)
{
	catch(SIGHUP);
	catch(SIGCONT);
	post(wr);
	CHECK(wait_sig(SIGHUP, 3000), "master close sends SIGHUP to the session leader");
	CHECK(wait_sig(SIGCONT, 3000), "and SIGCONT");
	char b;
	CHECK(read(s, &b, 1) == 0, "read of a hung-up terminal returns 0");
	CHECK_ERR(write(s, "x", 1), EIO, "write of a hung-up terminal");
	struct pollfd p = {.fd = s, .events = POLLIN};
	CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLHUP), "poll reports POLLHUP");
	CHECK_ERR(open("/dev/tty", O_RDWR), ENXIO, "hangup drops the controlling terminal");
	(void)rd;
	return 0;
}

static int leader_exit_child(int s, int rd, int wr)
{
	(void)s;
	(void)rd;
	int q[2];
	(void)!pipe(q);
	pid_t g = check_fork();
	if (g == 0) {
		/* Same (foreground) group as the leader. */
		catch(SIGHUP);
		post(q[1]);
		int ok = wait_sig(SIGHUP, 5000);
		(void)!write(wr, ok ? "y" : "n", 1);
		_exit(0);
	}
	CHECK(await(q[0]), "grandchild ready");
	return 0; /* the leader exits: its foreground group gets SIGHUP */
}

static void test_hangup(void)
{
	int m, s;
	char name[64], buf[64];
	if (open_pair(&m, &s, name, sizeof(name))) {
		CHECK(0, "open pair");
		return;
	}
	/* Replica closed: the master reads what is left, then EIO. */
	(void)!write(s, "bye", 3);
	close(s);
	CHECK(readn(m, buf, 3, 2000) == 3, "data written before the close");
	CHECK_ERR(read(m, buf, sizeof(buf)), EIO, "master read after the replica closes");
	struct pollfd p = {.fd = m, .events = POLLIN};
	CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLHUP), "master poll reports POLLHUP");
	s = open(name, O_RDWR | O_NOCTTY);
	CHECK(s >= 0, "the replica can be reopened");
	(void)!write(s, "a", 1);
	CHECK(readn(m, buf, 1, 2000) == 1, "and works again");
	close(s);

	/* Master closed under a session. */
	int up[2];
	(void)!pipe(up);
	pid_t c = in_session(m, name, hup_child, -1, up[1]);
	CHECK(await(up[0]), "hangup child ready");
	close(m);
	CHECK(child_ok(c), "hangup child");

	/* The session leader exits: the foreground group gets SIGHUP. */
	if (open_pair(&m, &s, name, sizeof(name))) {
		CHECK(0, "open pair");
		return;
	}
	close(s);
	c = in_session(m, name, leader_exit_child, -1, up[1]);
	CHECK(child_ok(c), "leader exited");
	char r = 0;
	struct pollfd pf = {.fd = up[0], .events = POLLIN};
	CHECK(poll(&pf, 1, 6000) == 1 && read(up[0], &r, 1) == 1 && r == 'y', "leader exit sends SIGHUP to the foreground group");
	close(up[0]);
	close(up[1]);
	close(m);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_basics();
	test_canonical();
	test_packet();
	test_raw();
	test_signals();
	test_ctty();
	test_jobs();
	test_hangup();
	return check_summary();
}
