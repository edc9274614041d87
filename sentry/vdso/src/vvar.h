/*
 * The vvar page: the data the sentry publishes for the vDSO. The sentry
 * (sentry/kernel's timekeeper, through sentry/vdso's VVar) is the only
 * writer; every application maps the page read-only just below the vDSO
 * image and reads it with the seqlock protocol described in vdso.c.
 *
 * The layout is shared with sentry/vdso/vvar.go; vdso_test.go checks that
 * the offsets asserted here are the ones the Go side uses.
 */
#ifndef VEIL_VDSO_VVAR_H
#define VEIL_VDSO_VVAR_H

#include <stdint.h>

/* mode: how the vDSO may compute the time. */
#define VVAR_MODE_SYSCALL 0 /* it may not: make the syscall */
#define VVAR_MODE_TSC 1     /* from the TSC and the parameters below */

struct veil_vvar {
	/* Odd while the sentry rewrites the clock fields below. */
	uint32_t seq;
	uint32_t mode;
	/*
	 * CLOCK_MONOTONIC in nanoseconds at TSC value tsc_base is mono_base;
	 * after it the clock runs at mult / 2^shift nanoseconds per TSC tick.
	 */
	uint64_t tsc_base;
	uint64_t mono_base;
	uint64_t mult;
	uint32_t shift;
	uint32_t pad0;
	/* Differences, in nanoseconds, of other clocks from CLOCK_MONOTONIC. */
	int64_t realtime_offset; /* CLOCK_REALTIME - CLOCK_MONOTONIC */
	int64_t boottime_offset; /* CLOCK_BOOTTIME - CLOCK_MONOTONIC */
	int64_t tai_offset;      /* CLOCK_TAI - CLOCK_REALTIME */
	/* What getcpu reports; not under seq (each is read on its own). */
	uint32_t cpu;
	uint32_t node;
};

#define VVAR_ASSERT_OFFSET(field, off) \
	_Static_assert(__builtin_offsetof(struct veil_vvar, field) == (off), #field)

VVAR_ASSERT_OFFSET(seq, 0);
VVAR_ASSERT_OFFSET(mode, 4);
VVAR_ASSERT_OFFSET(tsc_base, 8);
VVAR_ASSERT_OFFSET(mono_base, 16);
VVAR_ASSERT_OFFSET(mult, 24);
VVAR_ASSERT_OFFSET(shift, 32);
VVAR_ASSERT_OFFSET(realtime_offset, 40);
VVAR_ASSERT_OFFSET(boottime_offset, 48);
VVAR_ASSERT_OFFSET(tai_offset, 56);
VVAR_ASSERT_OFFSET(cpu, 64);
VVAR_ASSERT_OFFSET(node, 68);
_Static_assert(sizeof(struct veil_vvar) == 72, "size");

#endif
