/*
 * timerfd: creation flags and clocks, one-shot and interval timers,
 * expiration counts, TFD_TIMER_ABSTIME (also in the past), gettime,
 * disarming, old values, EAGAIN/EINVAL, blocking reads and
 * poll/epoll readiness.
 */
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct itimerspec its(int64_t value_ns, int64_t interval_ns)
{
	struct itimerspec s;
	s.it_value.tv_sec = value_ns / 1000000000LL;
	s.it_value.tv_nsec = value_ns % 1000000000LL;
	s.it_interval.tv_sec = interval_ns / 1000000000LL;
	s.it_interval.tv_nsec = interval_ns % 1000000000LL;
	return s;
}

static int64_t ts_ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec; }

#define MS 1000000LL

int main(void)
{
	uint64_t n;
	struct itimerspec s, old;

	/* Creation. */
	CHECK_ERR(timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0), EINVAL, "CPU-time clock is EINVAL");
	CHECK_ERR(timerfd_create(12345, 0), EINVAL, "bad clock is EINVAL");
	CHECK_ERR(timerfd_create(CLOCK_MONOTONIC, 0x4), EINVAL, "bad flag is EINVAL");
	int fr = timerfd_create(CLOCK_REALTIME, 0);
	CHECK(fr >= 0, "timerfd_create(REALTIME)");
	int fbt = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC);
	CHECK(fbt >= 0, "timerfd_create(BOOTTIME)");
	CHECK((fcntl(fbt, F_GETFD) & FD_CLOEXEC) != 0, "TFD_CLOEXEC sets FD_CLOEXEC");
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	CHECK(fd >= 0, "timerfd_create(MONOTONIC, NONBLOCK)");
	CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0, "TFD_NONBLOCK sets O_NONBLOCK");

	/* A fresh timer is disarmed. */
	CHECK(timerfd_gettime(fd, &s) == 0 && ts_ns(s.it_value) == 0 && ts_ns(s.it_interval) == 0,
	      "new timer is disarmed");
	CHECK_ERR(read(fd, &n, 8), EAGAIN, "read of unexpired timer is EAGAIN");
	CHECK_ERR(read(fd, &n, 4), EINVAL, "read with 4-byte buffer is EINVAL");
	CHECK_ERR(write(fd, &n, 8), EINVAL, "write is EINVAL");

	/* Bad arguments. */
	s = its(0, 0);
	s.it_value.tv_nsec = 1000000000;
	CHECK_ERR(timerfd_settime(fd, 0, &s, NULL), EINVAL, "tv_nsec of 1e9 is EINVAL");
	s = its(0, 0);
	s.it_interval.tv_sec = -1;
	CHECK_ERR(timerfd_settime(fd, 0, &s, NULL), EINVAL, "negative interval is EINVAL");
	s = its(10 * MS, 0);
	CHECK_ERR(timerfd_settime(fd, 0x10, &s, NULL), EINVAL, "bad settime flag is EINVAL");
	CHECK_ERR(timerfd_settime(fd, 0, (void *)8, NULL), EFAULT, "bad new_value is EFAULT");
	CHECK_ERR(timerfd_settime(999, 0, &s, NULL), EBADF, "settime on a closed fd is EBADF");
	CHECK_ERR(timerfd_settime(0, 0, &s, NULL), EINVAL, "settime on a non-timerfd is EINVAL");
	CHECK_ERR(timerfd_gettime(0, &s), EINVAL, "gettime on a non-timerfd is EINVAL");
	CHECK_ERR(timerfd_gettime(fd, (void *)8), EFAULT, "gettime to bad address is EFAULT");

	/* One-shot, relative. */
	s = its(50 * MS, 0);
	CHECK(timerfd_settime(fd, 0, &s, &old) == 0, "settime 50ms one-shot");
	CHECK(ts_ns(old.it_value) == 0, "old value of a disarmed timer is 0");
	CHECK(timerfd_gettime(fd, &s) == 0 && ts_ns(s.it_value) > 0 && ts_ns(s.it_value) <= 50 * MS,
	      "gettime: 0 < remaining <= 50ms");
	CHECK_ERR(read(fd, &n, 8), EAGAIN, "not yet expired");
	struct pollfd p = {fd, POLLIN, 0};
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN), "poll wakes on expiry");
	CHECK(now_ns(CLOCK_MONOTONIC) - t0 >= 40 * MS, "poll waited for the timer");
	CHECK(read(fd, &n, 8) == 8 && n == 1, "one expiration");
	CHECK_ERR(read(fd, &n, 8), EAGAIN, "one-shot expires once");
	CHECK(timerfd_gettime(fd, &s) == 0 && ts_ns(s.it_value) == 0, "expired one-shot is disarmed");

	/* Interval: expirations accumulate. */
	s = its(10 * MS, 10 * MS);
	int64_t set0 = now_ns(CLOCK_MONOTONIC);
	CHECK(timerfd_settime(fd, 0, &s, NULL) == 0, "settime 10ms interval");
	struct timespec sl = {0, 105 * MS};
	nanosleep(&sl, NULL);
	/* A loaded machine may oversleep: the count must match the time that
	 * really passed between settime and the read. */
	int ok = read(fd, &n, 8) == 8;
	int64_t passed = now_ns(CLOCK_MONOTONIC) - set0;
	CHECK(ok && n >= 9 && (int64_t)n <= passed / (10 * MS) + 1, "about one expiration per 10ms slept");
	CHECK(timerfd_gettime(fd, &s) == 0 && ts_ns(s.it_interval) == 10 * MS && ts_ns(s.it_value) > 0 &&
	          ts_ns(s.it_value) <= 10 * MS,
	      "gettime of interval timer");

	/* Replacing returns the old setting and drops unread expirations. */
	nanosleep(&sl, NULL);
	s = its(0, 0);
	CHECK(timerfd_settime(fd, 0, &s, &old) == 0, "disarm");
	CHECK(ts_ns(old.it_interval) == 10 * MS && ts_ns(old.it_value) > 0, "old setting returned");
	CHECK_ERR(read(fd, &n, 8), EAGAIN, "disarming drops unread expirations");
	nanosleep(&sl, NULL);
	CHECK_ERR(read(fd, &n, 8), EAGAIN, "disarmed timer does not fire");

	/* Absolute: in the past fires at once; in the future on time. */
	s = its(now_ns(CLOCK_MONOTONIC) - 1000 * MS, 0);
	CHECK(timerfd_settime(fd, TFD_TIMER_ABSTIME, &s, NULL) == 0, "absolute time in the past");
	CHECK(read(fd, &n, 8) == 8 && n == 1, "past absolute time expires at once");
	s = its(now_ns(CLOCK_MONOTONIC) - 1000 * MS, 100 * MS);
	CHECK(timerfd_settime(fd, TFD_TIMER_ABSTIME, &s, NULL) == 0, "absolute in the past with interval");
	CHECK(read(fd, &n, 8) == 8 && n >= 10 && n <= 12, "overruns counted for past absolute interval");
	s = its(now_ns(CLOCK_REALTIME) + 30 * MS, 0);
	CHECK(timerfd_settime(fr, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &s, NULL) == 0,
	      "realtime absolute with CANCEL_ON_SET");
	CHECK(timerfd_gettime(fr, &s) == 0 && ts_ns(s.it_value) > 0 && ts_ns(s.it_value) <= 30 * MS,
	      "gettime of absolute timer is relative");
	t0 = now_ns(CLOCK_MONOTONIC);
	CHECK(read(fr, &n, 8) == 8 && n == 1, "blocking read waits for realtime timer");
	CHECK(now_ns(CLOCK_MONOTONIC) - t0 >= 20 * MS, "blocking read waited");

	/* BOOTTIME, relative, with epoll. */
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fbt};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fbt, &ev) == 0, "epoll_ctl ADD timerfd");
	struct epoll_event out[2];
	CHECK(epoll_wait(ep, out, 2, 0) == 0, "epoll: disarmed timer not ready");
	s = its(20 * MS, 0);
	timerfd_settime(fbt, 0, &s, NULL);
	CHECK(epoll_wait(ep, out, 2, 5000) == 1 && out[0].data.fd == fbt, "epoll_wait wakes on expiry");
	CHECK(epoll_wait(ep, out, 2, 0) == 1, "level-triggered: still ready until read");
	CHECK(read(fbt, &n, 8) == 8 && n == 1, "read after epoll");
	CHECK(epoll_wait(ep, out, 2, 0) == 0, "not ready after read");
	close(ep);

	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek succeeds");
	close(fd);
	close(fr);
	close(fbt);
	return check_summary();
}
