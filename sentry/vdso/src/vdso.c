/*
 * Veil's vDSO: the time calls an application can answer without entering
 * the sentry. It is freestanding (no libc), position independent and has
 * no relocations: everything it reads is in the vvar page that sits just
 * below the image (see vdso.lds), which the sentry keeps current.
 *
 * Reading the vvar page (the reader half of a seqlock):
 *
 *   1. load seq; while it is odd the sentry is writing, so wait (and after
 *      a bounded number of tries make the syscall instead, so a writer
 *      descheduled mid-update never stalls the application);
 *   2. load the parameters;
 *   3. read the TSC, fenced on both sides so that it happens after the
 *      loads of step 2 and before the load of step 4;
 *   4. load seq again; if it changed, start over.
 *
 * The sentry starts each update by making seq odd and only then reads the
 * TSC it anchors the new parameters at, with the clock's value under the
 * old parameters at that TSC. A reader that used the old parameters read
 * its TSC before that, and one that uses the new ones read it after, so
 * CLOCK_MONOTONIC never goes back across an update. A TSC slightly behind
 * the anchor (another CPU's) counts as the anchor itself.
 *
 * Anything the page cannot answer (CPU-time clocks, unknown clock IDs, the
 * sentry having found the TSC unusable) is passed on with the syscall
 * instruction, which traps into the sentry like any other syscall.
 */
#include <stdint.h>
#include <stddef.h>

#include "vvar.h"

#define NSEC_PER_SEC 1000000000LL

/* x86-64 syscall numbers. */
#define NR_gettimeofday 96
#define NR_time 201
#define NR_clock_gettime 228
#define NR_clock_getres 229
#define NR_getcpu 309

/* Clock IDs (include/uapi/linux/time.h). */
#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCK_MONOTONIC_RAW 4
#define CLOCK_REALTIME_COARSE 5
#define CLOCK_MONOTONIC_COARSE 6
#define CLOCK_BOOTTIME 7
#define CLOCK_TAI 11

/*
 * Resolutions clock_getres reports, the sentry's: its clocks are read to
 * the nanosecond; the coarse ones claim a 250 Hz tick as Linux's do.
 */
#define HRES_NSEC 1
#define COARSE_RES_NSEC 4000000

/* How many times a reader waits for an odd seq before making the syscall. */
#define SEQ_SPINS 2000

struct vdso_timespec {
	int64_t tv_sec;
	int64_t tv_nsec;
};

struct vdso_timeval {
	int64_t tv_sec;
	int64_t tv_usec;
};

struct vdso_timezone {
	int32_t tz_minuteswest;
	int32_t tz_dsttime;
};

/* Defined by vdso.lds: the page just below the image. */
extern const struct veil_vvar veil_vvar_page __attribute__((visibility("hidden")));

static inline const volatile struct veil_vvar *vvar(void)
{
	return &veil_vvar_page;
}

static inline long raw_syscall1(long nr, long a)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline long raw_syscall2(long nr, long a, long b)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a), "S"(b)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline long raw_syscall3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

/* The TSC, read after every earlier load and before every later one. */
static inline uint64_t rdtsc_fenced(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence\n\trdtsc\n\tlfence"
			 : "=a"(lo), "=d"(hi)
			 :
			 : "memory");
	return ((uint64_t)hi << 32) | lo;
}

struct clock_now {
	uint64_t mono;       /* CLOCK_MONOTONIC, ns */
	int64_t realtime_offset;
	int64_t boottime_offset;
	int64_t tai_offset;
};

/*
 * read_clocks fills *now from the vvar page and returns 0, or returns -1 if
 * the caller must make the syscall.
 */
static int read_clocks(struct clock_now *now)
{
	const volatile struct veil_vvar *v = vvar();
	int spins = 0;

	for (;;) {
		uint32_t seq = v->seq;
		if (seq & 1) {
			if (++spins > SEQ_SPINS)
				return -1;
			__builtin_ia32_pause();
			continue;
		}
		__asm__ volatile("" ::: "memory");
		if (v->mode != VVAR_MODE_TSC)
			return -1;
		uint64_t base = v->tsc_base;
		uint64_t mono = v->mono_base;
		uint64_t mult = v->mult;
		uint32_t shift = v->shift;
		now->realtime_offset = v->realtime_offset;
		now->boottime_offset = v->boottime_offset;
		now->tai_offset = v->tai_offset;
		uint64_t tsc = rdtsc_fenced();
		if (v->seq != seq)
			continue;
		uint64_t delta = tsc > base ? tsc - base : 0;
		now->mono = mono + (uint64_t)(((unsigned __int128)delta * mult) >> (shift & 63));
		return 0;
	}
}

/* Splits nanoseconds (possibly negative) into seconds and [0, 1e9) ns. */
static inline void split_ns(int64_t ns, int64_t *sec, int64_t *nsec)
{
	int64_t s = ns / NSEC_PER_SEC;
	int64_t r = ns % NSEC_PER_SEC;
	if (r < 0) {
		r += NSEC_PER_SEC;
		s--;
	}
	*sec = s;
	*nsec = r;
}

/*
 * clock_ns computes clock clk; it returns 1 if clk is one the vDSO answers,
 * 0 if the caller must make the syscall.
 */
static int clock_ns(int clk, int64_t *ns)
{
	struct clock_now now;

	switch (clk) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
	case CLOCK_TAI:
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_MONOTONIC_COARSE:
	case CLOCK_BOOTTIME:
		break;
	default:
		return 0;
	}
	if (read_clocks(&now) != 0)
		return 0;
	int64_t mono = (int64_t)now.mono;
	switch (clk) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
		*ns = mono + now.realtime_offset;
		break;
	case CLOCK_TAI:
		*ns = mono + now.realtime_offset + now.tai_offset;
		break;
	case CLOCK_BOOTTIME:
		*ns = mono + now.boottime_offset;
		break;
	default:
		*ns = mono;
		break;
	}
	return 1;
}

int __vdso_clock_gettime(int clk, struct vdso_timespec *ts)
{
	int64_t ns;

	if (!clock_ns(clk, &ns))
		return raw_syscall2(NR_clock_gettime, clk, (long)ts);
	split_ns(ns, &ts->tv_sec, &ts->tv_nsec);
	return 0;
}

int __vdso_gettimeofday(struct vdso_timeval *tv, struct vdso_timezone *tz)
{
	if (tv) {
		int64_t ns, sec, nsec;
		if (!clock_ns(CLOCK_REALTIME, &ns))
			return raw_syscall2(NR_gettimeofday, (long)tv, (long)tz);
		split_ns(ns, &sec, &nsec);
		tv->tv_sec = sec;
		tv->tv_usec = nsec / 1000;
	}
	if (tz) {
		/* The sentry keeps no kernel timezone: UTC, no DST. */
		tz->tz_minuteswest = 0;
		tz->tz_dsttime = 0;
	}
	return 0;
}

int64_t __vdso_time(int64_t *t)
{
	int64_t ns, sec, nsec;

	if (!clock_ns(CLOCK_REALTIME, &ns))
		return raw_syscall1(NR_time, (long)t);
	split_ns(ns, &sec, &nsec);
	if (t)
		*t = sec;
	return sec;
}

int __vdso_clock_getres(int clk, struct vdso_timespec *res)
{
	int64_t ns;

	switch (clk) {
	case CLOCK_REALTIME:
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_BOOTTIME:
	case CLOCK_TAI:
		ns = HRES_NSEC;
		break;
	case CLOCK_REALTIME_COARSE:
	case CLOCK_MONOTONIC_COARSE:
		ns = COARSE_RES_NSEC;
		break;
	default:
		return raw_syscall2(NR_clock_getres, clk, (long)res);
	}
	if (res) {
		res->tv_sec = 0;
		res->tv_nsec = ns;
	}
	return 0;
}

long __vdso_getcpu(unsigned *cpu, unsigned *node, void *unused)
{
	const volatile struct veil_vvar *v = vvar();

	(void)unused;
	if (cpu)
		*cpu = v->cpu;
	if (node)
		*node = v->node;
	return 0;
}

/* The unprefixed names Linux's vDSO also exports. */
int clock_gettime(int, struct vdso_timespec *)
	__attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct vdso_timeval *, struct vdso_timezone *)
	__attribute__((weak, alias("__vdso_gettimeofday")));
int64_t time(int64_t *) __attribute__((weak, alias("__vdso_time")));
int clock_getres(int, struct vdso_timespec *)
	__attribute__((weak, alias("__vdso_clock_getres")));
long getcpu(unsigned *, unsigned *, void *)
	__attribute__((weak, alias("__vdso_getcpu")));

/*
 * The "Linux" ELF note Linux's vDSO carries: its descriptor is the kernel
 * version (LINUX_VERSION_CODE of the release the sentry reports, 6.6.0),
 * which older C libraries read to learn the kernel version.
 */
__asm__(".pushsection .note.Linux, \"a\", @note\n"
	"\t.balign 4\n"
	"\t.long 6\n"      /* namesz: "Linux\0" */
	"\t.long 4\n"      /* descsz */
	"\t.long 0\n"      /* type */
	"\t.asciz \"Linux\"\n"
	"\t.balign 4\n"
	"\t.long 0x060600\n"
	"\t.popsection\n");
