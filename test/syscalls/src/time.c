/*
 * time: clock_gettime on the main clocks, monotonicity, nanosleep lasting
 * at least as long as asked, gettimeofday agreeing with CLOCK_REALTIME,
 * clock_getres, and the errnos for bad arguments.
 *
 * Calls go through the raw syscall as well as through libc, since libc
 * normally answers from the vDSO and would not exercise the kernel path.
 */
#include "check.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/times.h>
#include <time.h>

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec; }

static int valid(struct timespec t) { return t.tv_nsec >= 0 && t.tv_nsec < 1000000000L; }

int main(void)
{
	struct timespec a, b, res;
	clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME,
			      CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, CLOCK_REALTIME_COARSE,
			      CLOCK_MONOTONIC_COARSE};
	for (unsigned i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		CHECK(clock_gettime(clocks[i], &a) == 0 && valid(a), "clock_gettime (vDSO) valid");
		CHECK(syscall(SYS_clock_gettime, clocks[i], &b) == 0 && valid(b), "clock_gettime (syscall) valid");
		CHECK(clock_getres(clocks[i], &res) == 0 && valid(res) && ns_of(res) > 0 && ns_of(res) <= 10000000,
		      "clock_getres between 1ns and 10ms");
	}
	CHECK(syscall(SYS_clock_getres, CLOCK_MONOTONIC, &res) == 0 && ns_of(res) >= 1, "clock_getres syscall");
	CHECK(syscall(SYS_clock_getres, CLOCK_MONOTONIC, NULL) == 0, "clock_getres NULL res allowed");
	CHECK_ERR(syscall(SYS_clock_gettime, 12345, &a), EINVAL, "clock_gettime bad clock EINVAL");
	CHECK_ERR(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)8), EFAULT, "clock_gettime bad pointer EFAULT");

	/* Realtime is plausible: after 2020-01-01. */
	clock_gettime(CLOCK_REALTIME, &a);
	CHECK(a.tv_sec > 1577836800, "realtime after 2020");

	/* Monotonic never goes backwards, through vDSO or syscall. */
	int mono = 1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 10000; i++) {
		if (i & 1)
			syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
		else
			clock_gettime(CLOCK_MONOTONIC, &b);
		if (ns_of(b) < ns_of(a))
			mono = 0;
		a = b;
	}
	CHECK(mono, "CLOCK_MONOTONIC never decreases");

	/* nanosleep lasts at least as long as asked (and not absurdly long). */
	struct timespec req = {0, 50 * 1000 * 1000}, rem = {0, 0};
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK(nanosleep(&req, &rem) == 0, "nanosleep 50ms");
	clock_gettime(CLOCK_MONOTONIC, &b);
	int64_t slept = ns_of(b) - ns_of(a);
	CHECK(slept >= 50 * 1000 * 1000, "nanosleep slept at least 50ms");
	CHECK(slept < 2000LL * 1000 * 1000, "nanosleep 50ms took under 2s");
	req.tv_nsec = 0;
	CHECK(nanosleep(&req, NULL) == 0, "nanosleep zero");
	req.tv_nsec = 1000000000L;
	CHECK_ERR(nanosleep(&req, NULL), EINVAL, "nanosleep tv_nsec out of range EINVAL");
	req.tv_sec = -1;
	req.tv_nsec = 0;
	CHECK_ERR(nanosleep(&req, NULL), EINVAL, "nanosleep negative EINVAL");

	/* clock_nanosleep with an absolute deadline. */
	clock_gettime(CLOCK_MONOTONIC, &a);
	struct timespec dl = a;
	dl.tv_nsec += 20 * 1000 * 1000;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	CHECK(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) == 0, "clock_nanosleep TIMER_ABSTIME");
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(ns_of(b) >= ns_of(dl), "woke at or after the absolute deadline");

	/* Many short sleeps, relative and absolute, none ending early by the
	 * clock the application reads (the vDSO's, in a sandbox). */
	int early = 0;
	for (int i = 0; i < 100; i++) {
		struct timespec s = {0, 300 * 1000};
		clock_gettime(CLOCK_MONOTONIC, &a);
		nanosleep(&s, NULL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (ns_of(b) - ns_of(a) < 300 * 1000)
			early++;
		dl = b;
		dl.tv_nsec += 300 * 1000;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (ns_of(a) < ns_of(dl))
			early++;
	}
	CHECK(early == 0, "no short sleep ends early");

	/* gettimeofday agrees with CLOCK_REALTIME to within 100ms. */
	struct timeval tv;
	clock_gettime(CLOCK_REALTIME, &a);
	CHECK(gettimeofday(&tv, NULL) == 0, "gettimeofday");
	struct timeval tv2;
	CHECK(syscall(SYS_gettimeofday, &tv2, NULL) == 0, "gettimeofday syscall");
	clock_gettime(CLOCK_REALTIME, &b);
	int64_t tvns = (int64_t)tv.tv_sec * 1000000000LL + (int64_t)tv.tv_usec * 1000;
	int64_t tv2ns = (int64_t)tv2.tv_sec * 1000000000LL + (int64_t)tv2.tv_usec * 1000;
	CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000, "tv_usec in range");
	CHECK(tvns >= ns_of(a) - 1000 && tvns <= ns_of(b) + 100000000LL, "gettimeofday within realtime bracket");
	CHECK(tv2ns >= ns_of(a) - 1000 && tv2ns <= ns_of(b) + 100000000LL, "gettimeofday syscall within bracket");
	time_t t = time(NULL);
	CHECK(t >= a.tv_sec - 1 && t <= b.tv_sec + 1, "time() agrees");
	CHECK(syscall(SYS_time, NULL) >= a.tv_sec - 1, "time syscall");

	/* CPU time clocks advance with work. */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	volatile uint64_t x = 0;
	for (int i = 0; i < 20000000; i++)
		x += (uint64_t)i;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	CHECK(ns_of(b) > ns_of(a), "process CPU clock advances with work");
	struct tms tm;
	CHECK(times(&tm) != (clock_t)-1, "times");

	/* Sleeping is nobody's CPU time: a 300 ms sleep adds (almost) none. */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	struct timespec nap = {0, 300000000};
	nanosleep(&nap, NULL);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	CHECK(ns_of(b) - ns_of(a) < 100000000, "a 300 ms sleep takes under 100 ms of CPU time");
	struct rusage ru;
	CHECK(getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_stime.tv_sec < 1,
	      "system time is not time spent asleep (getrusage)");

	return check_summary();
}
