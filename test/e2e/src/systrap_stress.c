/*
 * systrap_stress: 16 threads making syscalls, waiting on futexes and
 * taking signals for argv[1] seconds (default 3). It fails on a register
 * that did not survive a syscall or a signal (the callee-saved ones, the
 * syscall argument registers and all sixteen ymm registers are loaded with
 * known values around a loop of raw getpid syscalls, while signal handlers
 * clobber every register they may), on a lost futex wake-up (a wait that
 * times out although the word changed), on a partner that stops answering
 * (a hang), and on a queued signal that never arrives. Ends with
 * "N passed, N failed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 16
#define SIG (SIGRTMIN + 1)

static int passed, failed;
static void check(int ok, const char *what)
{
	if (ok) {
		passed++;
	} else {
		failed++;
		printf("FAIL: %s\n", what);
		fflush(stdout);
	}
}

struct regs_out {
	unsigned long g[11];
	unsigned char y[16][32];
};

/* regrun loads ymm0-15 from in, rbx, rbp, r12-r15, rdi, rsi, rdx, r9 and
 * r10 from seed, makes n raw getpid syscalls (mov $39,%eax; syscall: the
 * pattern glibc uses) and stores them all in *out. */
void regrun(const unsigned char *in, struct regs_out *out, long n, unsigned long seed);
__asm__(".text\n"
	".globl regrun\n"
	".type regrun,@function\n"
	"regrun:\n"
	"	push %rbx\n	push %rbp\n	push %r12\n	push %r13\n	push %r14\n	push %r15\n"
	"	push %rsi\n"
	"	vmovdqu 0(%rdi), %ymm0\n	vmovdqu 32(%rdi), %ymm1\n	vmovdqu 64(%rdi), %ymm2\n"
	"	vmovdqu 96(%rdi), %ymm3\n	vmovdqu 128(%rdi), %ymm4\n	vmovdqu 160(%rdi), %ymm5\n"
	"	vmovdqu 192(%rdi), %ymm6\n	vmovdqu 224(%rdi), %ymm7\n	vmovdqu 256(%rdi), %ymm8\n"
	"	vmovdqu 288(%rdi), %ymm9\n	vmovdqu 320(%rdi), %ymm10\n	vmovdqu 352(%rdi), %ymm11\n"
	"	vmovdqu 384(%rdi), %ymm12\n	vmovdqu 416(%rdi), %ymm13\n	vmovdqu 448(%rdi), %ymm14\n"
	"	vmovdqu 480(%rdi), %ymm15\n"
	"	mov %rdx, %r8\n"
	"	mov %rcx, %rbx\n	lea 1(%rcx), %rbp\n	lea 2(%rcx), %r12\n	lea 3(%rcx), %r13\n"
	"	lea 4(%rcx), %r14\n	lea 5(%rcx), %r15\n	lea 6(%rcx), %rdi\n	lea 7(%rcx), %rsi\n"
	"	lea 8(%rcx), %rdx\n	lea 9(%rcx), %r9\n	lea 10(%rcx), %r10\n"
	"1:	test %r8, %r8\n	jz 2f\n"
	"	mov $39, %eax\n	syscall\n"
	"	dec %r8\n	jmp 1b\n"
	"2:	pop %rax\n"
	"	mov %rbx, 0(%rax)\n	mov %rbp, 8(%rax)\n	mov %r12, 16(%rax)\n	mov %r13, 24(%rax)\n"
	"	mov %r14, 32(%rax)\n	mov %r15, 40(%rax)\n	mov %rdi, 48(%rax)\n	mov %rsi, 56(%rax)\n"
	"	mov %rdx, 64(%rax)\n	mov %r9, 72(%rax)\n	mov %r10, 80(%rax)\n"
	"	vmovdqu %ymm0, 88(%rax)\n	vmovdqu %ymm1, 120(%rax)\n	vmovdqu %ymm2, 152(%rax)\n"
	"	vmovdqu %ymm3, 184(%rax)\n	vmovdqu %ymm4, 216(%rax)\n	vmovdqu %ymm5, 248(%rax)\n"
	"	vmovdqu %ymm6, 280(%rax)\n	vmovdqu %ymm7, 312(%rax)\n	vmovdqu %ymm8, 344(%rax)\n"
	"	vmovdqu %ymm9, 376(%rax)\n	vmovdqu %ymm10, 408(%rax)\n	vmovdqu %ymm11, 440(%rax)\n"
	"	vmovdqu %ymm12, 472(%rax)\n	vmovdqu %ymm13, 504(%rax)\n	vmovdqu %ymm14, 536(%rax)\n"
	"	vmovdqu %ymm15, 568(%rax)\n"
	"	vzeroupper\n"
	"	pop %r15\n	pop %r14\n	pop %r13\n	pop %r12\n	pop %rbp\n	pop %rbx\n"
	"	ret\n");

static volatile int stop;
static pid_t tids[NTHREADS];
static atomic_long sent[NTHREADS], received[NTHREADS];
static atomic_long bad_regs, lost_wakeups, hangs, iterations[NTHREADS];
static _Thread_local int self = -1;

/* Futex ping-pong between threads 2k and 2k+1: the even one moves the word
 * from even to odd, the odd one from odd to even, each waking the other. */
static atomic_int words[NTHREADS / 2];

static long futex(atomic_int *w, int op, int val, const struct timespec *ts)
{
	return syscall(SYS_futex, w, op, val, ts, NULL, 0);
}

static void on_sig(int sig)
{
	(void)sig;
	/* Clobber every register a handler may (all vector registers and the
	 * caller-saved general ones); the interrupted code must not notice. */
	__asm__ volatile("vpcmpeqb %%ymm0, %%ymm0, %%ymm0\n vpcmpeqb %%ymm1, %%ymm1, %%ymm1\n"
			 "vpcmpeqb %%ymm2, %%ymm2, %%ymm2\n vpcmpeqb %%ymm3, %%ymm3, %%ymm3\n"
			 "vpcmpeqb %%ymm4, %%ymm4, %%ymm4\n vpcmpeqb %%ymm5, %%ymm5, %%ymm5\n"
			 "vpcmpeqb %%ymm6, %%ymm6, %%ymm6\n vpcmpeqb %%ymm7, %%ymm7, %%ymm7\n"
			 "vpcmpeqb %%ymm8, %%ymm8, %%ymm8\n vpcmpeqb %%ymm9, %%ymm9, %%ymm9\n"
			 "vpcmpeqb %%ymm10, %%ymm10, %%ymm10\n vpcmpeqb %%ymm11, %%ymm11, %%ymm11\n"
			 "vpcmpeqb %%ymm12, %%ymm12, %%ymm12\n vpcmpeqb %%ymm13, %%ymm13, %%ymm13\n"
			 "vpcmpeqb %%ymm14, %%ymm14, %%ymm14\n vpcmpeqb %%ymm15, %%ymm15, %%ymm15\n"
			 "mov $-1, %%r8\n mov $-1, %%r9\n mov $-1, %%r10\n mov $-1, %%r11\n"
			 "mov $-1, %%rdi\n mov $-1, %%rsi\n mov $-1, %%rdx\n mov $-1, %%rcx\n"
			 "vzeroupper\n"
			 ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
			 "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
			 "r8", "r9", "r10", "r11", "rdi", "rsi", "rdx", "rcx", "memory");
	if (self >= 0)
		atomic_fetch_add(&received[self], 1);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* pingpong takes one turn with the partner; 0 once stopping. */
static int pingpong(int me)
{
	atomic_int *w = &words[me / 2];
	int mine = me & 1; /* my turn when word % 2 == mine */
	double since = now();
	for (;;) {
		int v = atomic_load(w);
		if ((v & 1) == mine) {
			atomic_store(w, v + 1);
			futex(w, FUTEX_WAKE, 1, NULL);
			return 1;
		}
		if (stop)
			return 0;
		struct timespec ts = {.tv_sec = 2};
		long r = futex(w, FUTEX_WAIT, v, &ts);
		if (r == -1 && errno == ETIMEDOUT) {
			if (atomic_load(w) != v) {
				atomic_fetch_add(&lost_wakeups, 1);
				printf("lost wake-up: thread %d, word moved from %d to %d\n", me, v, atomic_load(w));
				fflush(stdout);
			} else if (now() - since > 20) {
				atomic_fetch_add(&hangs, 1);
				printf("hang: thread %d waited %.0f s for its partner\n", me, now() - since);
				fflush(stdout);
				return 0;
			}
		}
	}
}

static void *worker(void *arg)
{
	int me = (int)(long)arg;
	self = me;
	tids[me] = syscall(SYS_gettid);
	unsigned char in[16][32];
	struct regs_out out;
	for (unsigned long it = 0; !stop; it++) {
		unsigned long seed = ((unsigned long)me << 48) ^ (it * 0x9e3779b97f4a7c15UL);
		for (int i = 0; i < 16; i++)
			for (int j = 0; j < 32; j++)
				in[i][j] = (unsigned char)(seed >> (j % 8 * 8)) ^ (unsigned char)(i * 32 + j);
		regrun(&in[0][0], &out, 20, seed);
		int bad = memcmp(in, out.y, sizeof in) != 0;
		for (int i = 0; i < 11; i++)
			bad |= out.g[i] != seed + i;
		if (bad) {
			atomic_fetch_add(&bad_regs, 1);
			printf("registers changed in thread %d, round %lu\n", me, it);
			fflush(stdout);
		}
		if (!pingpong(me))
			break;
		if (it % 16 == 0)
			sched_yield();
		if (it % 64 == 0) {
			struct timespec ts = {0, 1000};
			nanosleep(&ts, NULL);
		}
		atomic_fetch_add(&iterations[me], 1);
	}
	/* Every signal sent to this thread must arrive before it exits. */
	double t0 = now();
	while (atomic_load(&received[me]) < atomic_load(&sent[me]) && now() - t0 < 10)
		sched_yield();
	return NULL;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3;
	struct sigaction sa = {.sa_handler = on_sig, .sa_flags = SA_RESTART};
	sigaction(SIG, &sa, NULL);
	pthread_t th[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(long)i) != 0) {
			printf("FAIL: pthread_create\n0 passed, 1 failed\n");
			return 1;
		}
	/* The main thread is the signaller: queued real-time signals, a few
	 * in flight per thread at most. */
	unsigned int r = 1;
	double end = now() + secs;
	long total = 0;
	while (now() < end) {
		r = r * 1103515245 + 12345;
		int i = (r >> 8) % NTHREADS;
		if (tids[i] && atomic_load(&sent[i]) - atomic_load(&received[i]) < 8) {
			atomic_fetch_add(&sent[i], 1);
			if (syscall(SYS_tgkill, getpid(), tids[i], SIG) != 0)
				atomic_fetch_sub(&sent[i], 1);
			else
				total++;
		}
		struct timespec ts = {0, 50000};
		nanosleep(&ts, NULL);
	}
	stop = 1;
	for (int i = 0; i < NTHREADS / 2; i++)
		futex(&words[i], FUTEX_WAKE, INT_MAX, NULL);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);

	long iters = 0, got = 0;
	int all_ran = 1, all_signalled = 1;
	for (int i = 0; i < NTHREADS; i++) {
		iters += iterations[i];
		got += received[i];
		all_ran &= iterations[i] > 0;
		all_signalled &= received[i] == sent[i];
		if (received[i] != sent[i])
			printf("thread %d: %ld signals sent, %ld received\n", i, (long)sent[i], (long)received[i]);
	}
	printf("systrap_stress: %.1f s, %d threads, %ld rounds, %ld signals\n", secs, NTHREADS, iters, total);
	check(bad_regs == 0, "registers survive syscalls and signal handlers");
	check(lost_wakeups == 0, "no lost futex wake-up");
	check(hangs == 0, "no thread stops answering");
	check(all_ran, "every thread made progress");
	check(total > 0 && all_signalled, "every queued signal arrives");
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
