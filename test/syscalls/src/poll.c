/*
 * poll: readiness of pipes through poll, select and epoll; timeouts;
 * epoll level- versus edge-triggered reporting; EPOLLONESHOT; and the
 * errnos for misuse.
 */
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(void)
{
	int p[2];
	CHECK(pipe(p) == 0, "pipe");

	/* poll: empty pipe not readable but writable; timeout honoured. */
	struct pollfd fds[2] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}};
	CHECK(poll(fds, 2, 0) == 1 && fds[0].revents == 0 && fds[1].revents == POLLOUT,
	      "poll: empty pipe writable only");
	int64_t t0 = now_ms();
	CHECK(poll(fds, 1, 100) == 0, "poll times out on empty pipe");
	int64_t el = now_ms() - t0;
	CHECK(el >= 100, "poll waited at least its timeout");
	CHECK(el < 3000, "poll timeout not wildly late");
	write(p[1], "ab", 2);
	CHECK(poll(fds, 1, -1) == 1 && fds[0].revents == POLLIN, "poll: readable after write");

	/* poll wakes when another process writes. */
	char buf[64];
	read(p[0], buf, sizeof(buf));
	pid_t c = check_fork();
	if (c == 0) {
		usleep(50000);
		write(p[1], "z", 1);
		_exit(0);
	}
	fds[0].revents = 0;
	CHECK(poll(fds, 1, 5000) == 1 && (fds[0].revents & POLLIN), "poll woken by writer in another process");
	waitpid(c, NULL, 0);
	read(p[0], buf, sizeof(buf));

	/* POLLHUP when the write end closes; POLLERR on the write end when
	 * the read end closes; POLLNVAL on a closed fd. */
	int q[2];
	pipe(q);
	close(q[1]);
	struct pollfd h = {q[0], POLLIN, 0};
	CHECK(poll(&h, 1, 0) == 1 && (h.revents & POLLHUP), "POLLHUP after writer closes");
	close(q[0]);
	pipe(q);
	close(q[0]);
	h = (struct pollfd){q[1], POLLOUT, 0};
	CHECK(poll(&h, 1, 0) == 1 && (h.revents & POLLERR), "POLLERR on write end without reader");
	close(q[1]);
	h = (struct pollfd){q[1], POLLIN, 0};
	CHECK(poll(&h, 1, 0) == 1 && h.revents == POLLNVAL, "POLLNVAL for closed fd");
	h = (struct pollfd){-1, POLLIN, 0};
	CHECK(poll(&h, 1, 0) == 0 && h.revents == 0, "negative fd ignored by poll");
	CHECK_ERR(syscall(SYS_poll, (struct pollfd *)8, 1, 0), EFAULT, "poll bad pointer EFAULT");

	/* select. */
	fd_set rs, ws;
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	struct timeval tv = {0, 100000};
	t0 = now_ms();
	CHECK(select(p[0] + 1, &rs, NULL, NULL, &tv) == 0 && !FD_ISSET(p[0], &rs), "select times out on empty pipe");
	CHECK(now_ms() - t0 >= 100, "select waited at least its timeout");
	write(p[1], "x", 1);
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	FD_ZERO(&ws);
	FD_SET(p[1], &ws);
	tv = (struct timeval){1, 0};
	int maxfd = p[0] > p[1] ? p[0] : p[1];
	CHECK(select(maxfd + 1, &rs, &ws, NULL, &tv) == 2 && FD_ISSET(p[0], &rs) && FD_ISSET(p[1], &ws),
	      "select: readable and writable");
	read(p[0], buf, sizeof(buf));
	/* The closed fd must lie inside the fd table: Linux silently
	 * ignores bits beyond the table's size. */
	int closed = dup(p[0]);
	close(closed);
	FD_ZERO(&rs);
	FD_SET(closed, &rs);
	tv = (struct timeval){0, 0};
	CHECK_ERR(select(closed + 1, &rs, NULL, NULL, &tv), EBADF, "select on closed fd EBADF");
	CHECK_ERR(select(-1, NULL, NULL, NULL, &tv), EINVAL, "select negative nfds EINVAL");
	struct timespec pts = {0, 10 * 1000 * 1000};
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	CHECK(pselect(p[0] + 1, &rs, NULL, NULL, &pts, NULL) == 0, "pselect timeout");

	/* epoll: level-triggered reports readiness again and again. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0, "epoll_create1");
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ULL};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0, "EPOLL_CTL_ADD");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), EEXIST, "double add EEXIST");
	struct epoll_event out[4];
	t0 = now_ms();
	CHECK(epoll_wait(ep, out, 4, 100) == 0, "epoll_wait times out on empty pipe");
	CHECK(now_ms() - t0 >= 100, "epoll_wait waited at least its timeout");
	write(p[1], "xy", 2);
	CHECK(epoll_wait(ep, out, 4, 1000) == 1 && (out[0].events & EPOLLIN) &&
	      out[0].data.u64 == 0x1122334455667788ULL, "epoll_wait reports EPOLLIN with data");
	CHECK(epoll_wait(ep, out, 4, 0) == 1, "level-triggered reports again without a read");
	read(p[0], buf, 1);
	CHECK(epoll_wait(ep, out, 4, 0) == 1, "level-triggered while data remains");
	read(p[0], buf, 1);
	CHECK(epoll_wait(ep, out, 4, 0) == 0, "not ready once drained");

	/* Edge-triggered reports each new arrival once. */
	ev.events = EPOLLIN | EPOLLET;
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0, "EPOLL_CTL_MOD to EPOLLET");
	write(p[1], "a", 1);
	CHECK(epoll_wait(ep, out, 4, 1000) == 1, "edge reported");
	CHECK(epoll_wait(ep, out, 4, 0) == 0, "edge not reported twice");
	write(p[1], "b", 1);
	CHECK(epoll_wait(ep, out, 4, 1000) == 1, "new data is a new edge");
	read(p[0], buf, sizeof(buf));

	/* EPOLLONESHOT disarms after one report until re-armed with MOD. */
	ev.events = EPOLLIN | EPOLLONESHOT;
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0, "EPOLL_CTL_MOD to EPOLLONESHOT");
	write(p[1], "c", 1);
	CHECK(epoll_wait(ep, out, 4, 1000) == 1, "oneshot reported once");
	write(p[1], "d", 1);
	CHECK(epoll_wait(ep, out, 4, 0) == 0, "oneshot disarmed");
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0, "re-arm oneshot");
	CHECK(epoll_wait(ep, out, 4, 0) == 1, "re-armed oneshot reports pending data");
	read(p[0], buf, sizeof(buf));

	/* Writable end and hang-up. */
	struct epoll_event wev = {.events = EPOLLOUT, .data.fd = p[1]};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &wev) == 0, "add write end");
	int n = epoll_wait(ep, out, 4, 0);
	CHECK(n == 1 && out[0].data.fd == p[1] && (out[0].events & EPOLLOUT), "write end reported writable");
	CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL) == 0, "EPOLL_CTL_DEL");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL), ENOENT, "DEL of absent fd ENOENT");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &wev), ENOENT, "MOD of absent fd ENOENT");
	ev.events = EPOLLIN;
	epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev);
	close(p[1]);
	n = epoll_wait(ep, out, 4, 1000);
	CHECK(n == 1 && (out[0].events & EPOLLHUP), "EPOLLHUP when writer closes");

	/* Misuse. */
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), EINVAL, "epoll adding itself EINVAL");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, 999, &ev), EBADF, "epoll add bad fd EBADF");
	CHECK_ERR(epoll_ctl(p[0], EPOLL_CTL_ADD, p[0], &ev), EINVAL, "epoll_ctl on non-epoll fd EINVAL");
	CHECK_ERR(epoll_wait(ep, out, 0, 0), EINVAL, "epoll_wait maxevents 0 EINVAL");
	CHECK_ERR(epoll_create1(0x1234), EINVAL, "epoll_create1 bad flags EINVAL");
	CHECK_ERR(epoll_create(0), EINVAL, "epoll_create size 0 EINVAL");
	int f = open("/", O_RDONLY | O_DIRECTORY);
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, f, &ev), EPERM, "epoll on a directory EPERM");
	close(f);
	close(ep);
	close(p[0]);

	return check_summary();
}
