/*
 * inotify: inotify_init1 flags, watches on directories (events about
 * children, with names) and on files, IN_CREATE/IN_OPEN/IN_MODIFY/
 * IN_ACCESS/IN_CLOSE_WRITE/IN_CLOSE_NOWRITE/IN_ATTRIB/IN_DELETE/IN_DELETE_SELF/IN_MOVED_*
 * with a shared cookie/IN_MOVE_SELF/IN_IGNORED, IN_ONESHOT, watch
 * descriptors and masks, reading (EINVAL for a small buffer, EAGAIN,
 * blocking), poll readiness and FIONREAD.
 */
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char base[512];

static const char *P(const char *name)
{
	static char bufs[4][1024];
	static int i;
	char *b = bufs[i++ & 3];
	snprintf(b, sizeof(bufs[0]), "%s/%s", base, name);
	return b;
}

struct ev {
	int wd;
	unsigned mask, cookie, len;
	char name[64];
};

/* drain reads every queued event (nonblocking fd). */
static int drain(int fd, struct ev *evs, int max)
{
	char buf[8192] __attribute__((aligned(8)));
	int n = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0)
			break;
		for (ssize_t off = 0; off < r && n < max;) {
			struct inotify_event *e = (struct inotify_event *)(buf + off);
			evs[n].wd = e->wd;
			evs[n].mask = e->mask;
			evs[n].cookie = e->cookie;
			evs[n].len = e->len;
			snprintf(evs[n].name, sizeof evs[n].name, "%s", e->len ? e->name : "");
			n++;
			off += sizeof *e + e->len;
		}
	}
	return n;
}

static int is(struct ev *e, int wd, unsigned mask, const char *name)
{
	return e->wd == wd && e->mask == mask && strcmp(e->name, name) == 0;
}

static void dump(struct ev *evs, int n)
{
	for (int i = 0; i < n; i++)
		printf("  event %d: wd=%d mask=%#x cookie=%u name=%s\n", i, evs[i].wd, evs[i].mask, evs[i].cookie, evs[i].name);
}

static void test_init(void)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	CHECK(fd >= 0, "inotify_init1");
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "IN_CLOEXEC");
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "IN_NONBLOCK");
	char buf[64];
	CHECK_ERR(read(fd, buf, sizeof buf), EAGAIN, "empty nonblocking read EAGAIN");
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek does nothing");
	CHECK_ERR(pread(fd, buf, sizeof buf, 0), ESPIPE, "pread ESPIPE");
	CHECK_ERR(inotify_init1(0x1000), EINVAL, "unknown flag EINVAL");
	CHECK_ERR(inotify_add_watch(fd, base, 0), EINVAL, "empty mask EINVAL");
	CHECK_ERR(inotify_add_watch(fd, base, IN_MODIFY | IN_MASK_ADD | IN_MASK_CREATE), EINVAL, "MASK_ADD|MASK_CREATE EINVAL");
	CHECK_ERR(inotify_add_watch(fd, P("nothere"), IN_MODIFY), ENOENT, "missing path ENOENT");
	int f = open(P("plain"), O_CREAT | O_WRONLY, 0644);
	CHECK_ERR(inotify_add_watch(fd, P("plain"), IN_MODIFY | IN_ONLYDIR), ENOTDIR, "IN_ONLYDIR on a file ENOTDIR");
	CHECK_ERR(inotify_add_watch(f, base, IN_MODIFY), EINVAL, "not an inotify fd EINVAL");
	CHECK_ERR(inotify_add_watch(-1, base, IN_MODIFY), EBADF, "bad fd EBADF");
	int w1 = inotify_add_watch(fd, P("plain"), IN_MODIFY);
	link(P("plain"), P("plain2"));
	CHECK(w1 > 0 && inotify_add_watch(fd, P("plain2"), IN_ATTRIB) == w1, "the same file has one watch descriptor");
	CHECK_ERR(inotify_add_watch(fd, P("plain"), IN_ATTRIB | IN_MASK_CREATE), EEXIST, "IN_MASK_CREATE on a watched file EEXIST");
	CHECK_ERR(inotify_rm_watch(fd, w1 + 100), EINVAL, "rm_watch of an unknown wd EINVAL");
	CHECK(inotify_rm_watch(fd, w1) == 0, "rm_watch");
	struct ev evs[8];
	int n = drain(fd, evs, 8);
	CHECK(n == 1 && is(&evs[0], w1, IN_IGNORED, ""), "rm_watch queues IN_IGNORED");
	unlink(P("plain2"));
	close(f);
	close(fd);
}

static void test_dir_events(void)
{
	int fd = inotify_init1(IN_NONBLOCK);
	int wd = inotify_add_watch(fd, base, IN_ALL_EVENTS);
	CHECK(wd > 0, "watch the directory");
	struct ev evs[32];
	int n;

	int f = open(P("a"), O_CREAT | O_WRONLY, 0644);
	write(f, "x", 1);
	close(f);
	n = drain(fd, evs, 32);
	CHECK(n == 4 && is(&evs[0], wd, IN_CREATE, "a") && is(&evs[1], wd, IN_OPEN, "a") && is(&evs[2], wd, IN_MODIFY, "a") &&
		      is(&evs[3], wd, IN_CLOSE_WRITE, "a"),
	      "create, open, modify, close-write with the name");
	if (n != 4)
		dump(evs, n);
	CHECK(evs[0].len > 0 && evs[0].len % 16 == 0, "name length padded to 16");

	f = open(P("a"), O_RDONLY);
	char c;
	read(f, &c, 1);
	close(f);
	n = drain(fd, evs, 32);
	CHECK(n == 3 && is(&evs[0], wd, IN_OPEN, "a") && is(&evs[1], wd, IN_ACCESS, "a") && is(&evs[2], wd, IN_CLOSE_NOWRITE, "a"),
	      "open, access, close-nowrite");

	chmod(P("a"), 0600);
	n = drain(fd, evs, 32);
	CHECK(n == 1 && is(&evs[0], wd, IN_ATTRIB, "a"), "chmod: IN_ATTRIB");
	truncate(P("a"), 0);
	n = drain(fd, evs, 32);
	CHECK(n == 1 && is(&evs[0], wd, IN_MODIFY, "a"), "truncate: IN_MODIFY");

	mkdir(P("sub"), 0755);
	n = drain(fd, evs, 32);
	CHECK(n == 1 && is(&evs[0], wd, IN_CREATE | IN_ISDIR, "sub"), "mkdir: IN_CREATE|IN_ISDIR");

	rename(P("a"), P("b"));
	n = drain(fd, evs, 32);
	CHECK(n == 2 && is(&evs[0], wd, IN_MOVED_FROM, "a") && is(&evs[1], wd, IN_MOVED_TO, "b") && evs[0].cookie != 0 &&
		      evs[0].cookie == evs[1].cookie,
	      "rename: IN_MOVED_FROM and IN_MOVED_TO sharing a cookie");
	rename(P("b"), P("sub/b"));
	n = drain(fd, evs, 32);
	CHECK(n == 1 && is(&evs[0], wd, IN_MOVED_FROM, "b"), "move out: only IN_MOVED_FROM here");
	unlink(P("sub/b"));
	n = drain(fd, evs, 32);
	CHECK(n == 0, "events in a subdirectory are not reported");

	symlink("x", P("sl"));
	unlink(P("sl"));
	n = drain(fd, evs, 32);
	CHECK(n == 2 && is(&evs[0], wd, IN_CREATE, "sl") && is(&evs[1], wd, IN_DELETE, "sl"), "symlink then unlink");
	rmdir(P("sub"));
	n = drain(fd, evs, 32);
	CHECK(n == 1 && is(&evs[0], wd, IN_DELETE | IN_ISDIR, "sub"), "rmdir: IN_DELETE|IN_ISDIR");
	close(fd);
}

static void test_file_events(void)
{
	int fd = inotify_init1(IN_NONBLOCK);
	int f = open(P("w"), O_CREAT | O_RDWR, 0644);
	int wd = inotify_add_watch(fd, P("w"), IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_CLOSE);
	struct ev evs[16];
	write(f, "1", 1);
	write(f, "2", 1);
	int n = drain(fd, evs, 16);
	CHECK(n == 1 && is(&evs[0], wd, IN_MODIFY, ""), "two writes merge into one IN_MODIFY, no name");
	rename(P("w"), P("w2"));
	n = drain(fd, evs, 16);
	CHECK(n == 1 && is(&evs[0], wd, IN_MOVE_SELF, ""), "IN_MOVE_SELF");
	close(f);
	n = drain(fd, evs, 16);
	CHECK(n == 1 && is(&evs[0], wd, IN_CLOSE_WRITE, ""), "IN_CLOSE_WRITE on the file watch");
	unlink(P("w2"));
	n = drain(fd, evs, 16);
	CHECK(n == 3 && is(&evs[0], wd, IN_ATTRIB, "") && is(&evs[1], wd, IN_DELETE_SELF, "") && is(&evs[2], wd, IN_IGNORED, ""),
	      "unlink: IN_ATTRIB, IN_DELETE_SELF, IN_IGNORED");
	if (n != 3)
		dump(evs, n);
	CHECK_ERR(inotify_rm_watch(fd, wd), EINVAL, "the watch is gone");

	mkdir(P("d"), 0755);
	wd = inotify_add_watch(fd, P("d"), IN_DELETE_SELF);
	rmdir(P("d"));
	n = drain(fd, evs, 16);
	CHECK(n == 2 && is(&evs[0], wd, IN_DELETE_SELF, "") && is(&evs[1], wd, IN_IGNORED, ""), "rmdir of a watched directory");
	if (n != 2)
		dump(evs, n);

	f = open(P("once"), O_CREAT | O_WRONLY, 0644);
	wd = inotify_add_watch(fd, P("once"), IN_MODIFY | IN_ONESHOT);
	write(f, "a", 1);
	write(f, "b", 1);
	n = drain(fd, evs, 16);
	CHECK(n == 2 && is(&evs[0], wd, IN_MODIFY, "") && is(&evs[1], wd, IN_IGNORED, ""), "IN_ONESHOT: one event then IN_IGNORED");
	close(f);
	unlink(P("once"));
	close(fd);
}

static void test_reading(void)
{
	int fd = inotify_init1(0);
	int wd = inotify_add_watch(fd, base, IN_CREATE);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	CHECK(poll(&pfd, 1, 0) == 0, "not readable while empty");
	int avail = -1;
	CHECK(ioctl(fd, FIONREAD, &avail) == 0 && avail == 0, "FIONREAD 0");
	int f = open(P("longer-name-for-padding"), O_CREAT | O_WRONLY, 0644);
	close(f);
	CHECK(poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN), "readable with an event queued");
	CHECK(ioctl(fd, FIONREAD, &avail) == 0 && avail == (int)sizeof(struct inotify_event) + 32, "FIONREAD counts the padded event");
	char small[sizeof(struct inotify_event) + 4];
	CHECK_ERR(read(fd, small, sizeof small), EINVAL, "buffer smaller than the event EINVAL");
	char buf[256];
	CHECK(read(fd, buf, sizeof buf) == avail, "read the event");
	struct inotify_event *e = (struct inotify_event *)buf;
	CHECK(e->wd == wd && e->mask == IN_CREATE && strcmp(e->name, "longer-name-for-padding") == 0, "event contents");

	/* A blocking read waits for an event. */
	pid_t pid = check_fork();
	if (pid == 0) {
		usleep(100 * 1000);
		int g = open(P("late"), O_CREAT | O_WRONLY, 0644);
		close(g);
		_exit(0);
	}
	ssize_t r = read(fd, buf, sizeof buf);
	e = (struct inotify_event *)buf;
	CHECK(r > 0 && e->mask == IN_CREATE && strcmp(e->name, "late") == 0, "blocking read woken by an event");
	waitpid(pid, NULL, 0);
	unlink(P("late"));
	unlink(P("longer-name-for-padding"));
	close(fd);
}

int main(void)
{
	check_path(base, sizeof base, "inotify");
	if (mkdir(base, 0755) != 0) {
		perror("mkdir");
		return 1;
	}
	test_init();
	test_dir_events();
	test_file_events();
	test_reading();
	unlink(P("plain"));
	rmdir(base);
	return check_summary();
}
