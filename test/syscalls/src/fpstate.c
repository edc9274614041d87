/*
 * fpstate: the floating-point and vector state (x87 control word, MXCSR,
 * xmm/ymm registers, and zmm where the CPU has AVX-512) is preserved
 * exactly across syscalls, including ones repeated from one site (which a
 * platform may rewrite), and across signal handlers that change all of it;
 * a handler starts with a clean MXCSR and x87 control word as Linux gives
 * it.
 */
#include "check.h"

#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>

static int have_avx, have_avx512;

static void detect(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return;
	int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
	if (!osxsave || !avx)
		return;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	have_avx = (lo & 6) == 6;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && ((b >> 16) & 1))
		have_avx512 = have_avx && (lo & 0xe0) == 0xe0;
}

/* ymmrun loads ymm0-15 from in, makes n getpid syscalls through one
 * `mov $39,%eax; syscall` site and stores ymm0-15 to out. */
void ymmrun(const void *in, void *out, long n);
__asm__(".text\n.globl ymmrun\n.type ymmrun,@function\nymmrun:\n"
	"	mov %rdx, %r8\n"
	"	vmovdqu 0(%rdi), %ymm0\n	vmovdqu 32(%rdi), %ymm1\n	vmovdqu 64(%rdi), %ymm2\n"
	"	vmovdqu 96(%rdi), %ymm3\n	vmovdqu 128(%rdi), %ymm4\n	vmovdqu 160(%rdi), %ymm5\n"
	"	vmovdqu 192(%rdi), %ymm6\n	vmovdqu 224(%rdi), %ymm7\n	vmovdqu 256(%rdi), %ymm8\n"
	"	vmovdqu 288(%rdi), %ymm9\n	vmovdqu 320(%rdi), %ymm10\n	vmovdqu 352(%rdi), %ymm11\n"
	"	vmovdqu 384(%rdi), %ymm12\n	vmovdqu 416(%rdi), %ymm13\n	vmovdqu 448(%rdi), %ymm14\n"
	"	vmovdqu 480(%rdi), %ymm15\n"
	"1:	test %r8, %r8\n	jz 2f\n	mov $39, %eax\n	syscall\n	dec %r8\n	jmp 1b\n"
	"2:	vmovdqu %ymm0, 0(%rsi)\n	vmovdqu %ymm1, 32(%rsi)\n	vmovdqu %ymm2, 64(%rsi)\n"
	"	vmovdqu %ymm3, 96(%rsi)\n	vmovdqu %ymm4, 128(%rsi)\n	vmovdqu %ymm5, 160(%rsi)\n"
	"	vmovdqu %ymm6, 192(%rsi)\n	vmovdqu %ymm7, 224(%rsi)\n	vmovdqu %ymm8, 256(%rsi)\n"
	"	vmovdqu %ymm9, 288(%rsi)\n	vmovdqu %ymm10, 320(%rsi)\n	vmovdqu %ymm11, 352(%rsi)\n"
	"	vmovdqu %ymm12, 384(%rsi)\n	vmovdqu %ymm13, 416(%rsi)\n	vmovdqu %ymm14, 448(%rsi)\n"
	"	vmovdqu %ymm15, 480(%rsi)\n"
	"	vzeroupper\n	ret\n");

/* zmmrun does the same for zmm0-31 and the opmask registers k1-k7. */
void zmmrun(const void *in, void *out, long n);
__asm__(".text\n.globl zmmrun\n.type zmmrun,@function\nzmmrun:\n"
	"	mov %rdx, %r8\n"
	".irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 \\i*64(%rdi), %zmm\\i\n"
	".endr\n"
	".irp i,1,2,3,4,5,6,7\n"
	"	kmovq 2048+\\i*8(%rdi), %k\\i\n"
	".endr\n"
	"1:	test %r8, %r8\n	jz 2f\n	mov $39, %eax\n	syscall\n	dec %r8\n	jmp 1b\n"
	"2:\n"
	".irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 %zmm\\i, \\i*64(%rsi)\n"
	".endr\n"
	".irp i,1,2,3,4,5,6,7\n"
	"	kmovq %k\\i, 2048+\\i*8(%rsi)\n"
	".endr\n"
	"	vzeroupper\n	ret\n");

static volatile int handled;
static volatile unsigned handler_mxcsr;
static volatile unsigned short handler_fcw;

static void on_sig(int sig)
{
	(void)sig;
	unsigned m;
	unsigned short cw;
	__asm__ volatile("stmxcsr %0" : "=m"(m));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	handler_mxcsr = m;
	handler_fcw = cw;
	/* Change everything the interrupted code holds. */
	unsigned newm = 0x7f80 | 0x6000; /* all masked, round toward zero */
	unsigned short newcw = 0x0c7f;
	__asm__ volatile("ldmxcsr %0" ::"m"(newm));
	__asm__ volatile("fldcw %0" ::"m"(newcw));
	if (have_avx)
		__asm__ volatile(".irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
				 "vpcmpeqb %%ymm\\i, %%ymm\\i, %%ymm\\i\n.endr\n" ::
					 : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
				   "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	if (have_avx512)
		__asm__ volatile(".irp i,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
				 "vpternlogd $0xff, %%zmm\\i, %%zmm\\i, %%zmm\\i\n.endr\n"
				 "kxnorq %%k1, %%k1, %%k1\n kxnorq %%k7, %%k7, %%k7\n" ::: "memory");
	handled++;
}


static void fill(unsigned char *b, int n, int salt)
{
	for (int i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 7 + salt * 13 + 1);
}

int main(void)
{
	detect();
	unsigned m0, m1;
	unsigned short cw0, cw1;

	/* MXCSR and the x87 control word across syscalls. */
	unsigned m = 0x1f80 | 0x4000; /* round down */
	unsigned short cw = 0x037f & ~0x0c00;
	cw |= 0x0400; /* round down */
	__asm__ volatile("ldmxcsr %0" ::"m"(m));
	__asm__ volatile("fldcw %0" ::"m"(cw));
	for (int i = 0; i < 100; i++)
		syscall(SYS_getppid);
	__asm__ volatile("stmxcsr %0" : "=m"(m0));
	__asm__ volatile("fnstcw %0" : "=m"(cw0));
	CHECK(m0 == m, "MXCSR survives syscalls");
	CHECK(cw0 == cw, "x87 control word survives syscalls");

	/* And across a signal handler that changes both; the handler starts
	 * from Linux's defaults. */
	struct sigaction sa = {.sa_handler = on_sig};
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction SIGUSR1");
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction SIGALRM");
	kill(getpid(), SIGUSR1);
	__asm__ volatile("stmxcsr %0" : "=m"(m1));
	__asm__ volatile("fnstcw %0" : "=m"(cw1));
	CHECK(handled == 1, "handler ran");
	CHECK(m1 == m && cw1 == cw, "MXCSR and control word restored after the handler");
	CHECK((handler_mxcsr & 0xffbf) == 0x1f80, "handler starts with the default MXCSR");
	CHECK(handler_fcw == 0x037f, "handler starts with the default x87 control word");

	if (!have_avx) {
		printf("no AVX on this CPU: ymm checks skipped\n");
	} else {
		unsigned char in[512], out[512];
		/* ymm across many syscalls from one site. */
		fill(in, sizeof in, 1);
		ymmrun(in, out, 1000);
		CHECK(memcmp(in, out, sizeof in) == 0, "ymm0-15 survive 1000 syscalls from one site");

		/* ymm across syscall loops that an interval timer interrupts
		 * every 100 us with a handler that clobbers them. */
		struct itimerval it = {{0, 100}, {0, 100}};
		handled = 0;
		CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
		int bad = 0, rounds = 0;
		for (; handled < 50 && rounds < 200000; rounds++) {
			fill(in, sizeof in, rounds);
			ymmrun(in, out, 200);
			bad += memcmp(in, out, sizeof in) != 0;
		}
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_REAL, &off, NULL);
		CHECK(handled >= 50, "timer signals were handled during the syscall loops");
		CHECK(bad == 0, "ymm0-15 survive syscalls interrupted by handlers that clobber them");
	}
	if (have_avx512) {
		static unsigned char in[2048 + 64], out[2048 + 64];
		fill(in, sizeof in, 3);
		memset(out, 0, sizeof out);
		/* kmovq of k0 is not loaded; compare k1-k7 only. */
		zmmrun(in, out, 1000);
		CHECK(memcmp(in, out, 2048) == 0 && memcmp(in + 2056, out + 2056, 56) == 0,
		      "zmm0-31 and k1-k7 survive 1000 syscalls from one site");
		struct itimerval it = {{0, 100}, {0, 100}};
		handled = 0;
		setitimer(ITIMER_REAL, &it, NULL);
		int bad = 0, rounds = 0;
		for (; handled < 20 && rounds < 100000; rounds++) {
			fill(in, 2048, rounds);
			zmmrun(in, out, 100);
			bad += memcmp(in, out, 2048) != 0;
		}
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_REAL, &off, NULL);
		CHECK(bad == 0, "zmm0-31 survive syscalls interrupted by handlers that clobber them");
	}
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed != 0;
}
