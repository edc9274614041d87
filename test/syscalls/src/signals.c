/*
 * signals: handlers, masks, pending sets, alternate stacks, synchronous
 * faults recovered with siglongjmp, SIGCHLD, SA_RESTART against EINTR,
 * sigsuspend, real-time queueing, kill/tgkill, SIGFPE, alarm and the
 * default actions.
 *
 * Deaths by default action are provoked in children: inside a sandbox this
 * program may be its PID namespace's init, which Linux shields from
 * default-action signals sent from inside the namespace.
 */
#include "check.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t hits, last_sig;
static volatile pid_t handler_tid;
static volatile int mask_had_self;

static void count_handler(int sig)
{
	hits++;
	last_sig = sig;
	handler_tid = (pid_t)syscall(SYS_gettid);
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	mask_had_self = sigismember(&cur, sig);
}

static int install(int sig, void (*h)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

static sigjmp_buf jb;
/* no_fault is volatile so the compiler cannot move the store above the
 * faulting access it follows, as it could with a plain counter. */
static volatile int no_fault;
static volatile void *fault_addr;
static volatile int fault_code, fault_signo;

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_signo = sig;
	fault_addr = si->si_addr;
	fault_code = si->si_code;
	siglongjmp(jb, 1);
}

static int install_info(int sig, void (*h)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = h;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

static char *altstack;
static volatile int on_alt, ss_onstack;

static void alt_handler(int sig)
{
	(void)sig;
	char local;
	on_alt = &local >= altstack && &local < altstack + SIGSTKSZ * 4;
	stack_t cur;
	sigaltstack(NULL, &cur);
	ss_onstack = (cur.ss_flags & SS_ONSTACK) != 0;
}

static volatile int rt_values[8], rt_n;

static void rt_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (rt_n < 8)
		rt_values[rt_n++] = si->si_value.sival_int;
}

static volatile pid_t chld_pid;
static volatile int chld_code, chld_status;

static void chld_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	chld_pid = si->si_pid;
	chld_code = si->si_code;
	chld_status = si->si_status;
}

static void *tgkill_target(void *arg)
{
	volatile int *stop = arg;
	while (!*stop)
		usleep(1000);
	return NULL;
}

/* die_by runs fn in a child and returns the child's wait status. */
static int die_by(void (*fn)(void))
{
	pid_t c = check_fork();
	if (c == 0) {
		fn();
		_exit(0);
	}
	int st = 0;
	waitpid(c, &st, 0);
	return st;
}

static int *volatile bad_ptr = (int *)8;
static void do_segv(void) { *bad_ptr = 1; }
static void do_fpe(void)
{
	/* Both operands volatile: gcc turns 1/z into a compare, no idiv. */
	volatile int z = 0, one = 1;
	volatile int x = one / z;
	(void)x;
}
static void do_abort(void) { abort(); }
static void do_usr1(void) { kill(getpid(), SIGUSR1); pause(); }
static void do_alarm(void) { alarm(1); for (;;) pause(); }
static void do_pipe(void)
{
	int p[2];
	pipe(p);
	close(p[0]);
	write(p[1], "x", 1);
	pause();
}
static void do_ignored(void)
{
	/* Default action "ignore": the process lives on. */
	kill(getpid(), SIGCHLD);
	kill(getpid(), SIGURG);
	kill(getpid(), SIGWINCH);
	_exit(17);
}
static void do_sig_ign(void)
{
	signal(SIGTERM, SIG_IGN);
	kill(getpid(), SIGTERM);
	_exit(18);
}

/* restart_read: a SIGALRM handler interrupts a read on an empty pipe that
 * a child fills later. Returns the read's result and its errno. */
static long restart_read(int flags, int *err)
{
	int p[2];
	pipe(p);
	install(SIGALRM, count_handler, flags);
	pid_t c = check_fork();
	if (c == 0) {
		usleep(300000);
		write(p[1], "z", 1);
		_exit(0);
	}
	struct itimerval it = {{0, 0}, {0, 50000}};
	setitimer(ITIMER_REAL, &it, NULL);
	char b;
	errno = 0;
	long r = read(p[0], &b, 1);
	*err = errno;
	waitpid(c, NULL, 0);
	close(p[0]);
	close(p[1]);
	return r;
}

int main(void)
{
	sigset_t set, old, pend;

	/* A handler runs, with its own signal blocked while it runs. */
	hits = 0;
	CHECK(install(SIGUSR1, count_handler, 0) == 0, "sigaction SIGUSR1");
	CHECK(raise(SIGUSR1) == 0 && hits == 1 && last_sig == SIGUSR1, "handler runs on raise");
	CHECK(mask_had_self == 1, "signal blocked inside its own handler");
	CHECK(install(SIGUSR1, count_handler, SA_NODEFER) == 0, "sigaction SA_NODEFER");
	raise(SIGUSR1);
	CHECK(mask_had_self == 0, "SA_NODEFER leaves signal unblocked in handler");

	/* SA_RESETHAND restores the default after one delivery. */
	install(SIGUSR2, count_handler, SA_RESETHAND);
	raise(SIGUSR2);
	struct sigaction cur;
	sigaction(SIGUSR2, NULL, &cur);
	CHECK(cur.sa_handler == SIG_DFL, "SA_RESETHAND resets to SIG_DFL");

	/* sigaction on SIGKILL/SIGSTOP and bad numbers. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = count_handler;
	CHECK_ERR(sigaction(SIGKILL, &sa, NULL), EINVAL, "sigaction SIGKILL EINVAL");
	CHECK_ERR(sigaction(SIGSTOP, &sa, NULL), EINVAL, "sigaction SIGSTOP EINVAL");
	CHECK_ERR(sigaction(0, &sa, NULL), EINVAL, "sigaction 0 EINVAL");
	CHECK_ERR(sigaction(65, &sa, NULL), EINVAL, "sigaction 65 EINVAL");
	CHECK_ERR(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 4), EINVAL,
		  "rt_sigprocmask bad sigsetsize EINVAL");

	/* Blocking, pending and delivery on unblock. */
	install(SIGUSR1, count_handler, 0);
	hits = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	CHECK(sigprocmask(SIG_BLOCK, &set, &old) == 0, "sigprocmask block");
	raise(SIGUSR1);
	raise(SIGUSR1);
	CHECK(hits == 0, "blocked signal not delivered");
	sigpending(&pend);
	CHECK(sigismember(&pend, SIGUSR1), "blocked signal is pending");
	CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0, "sigprocmask unblock");
	CHECK(hits == 1, "standard signal coalesced: delivered once on unblock");
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGUSR1), "no longer pending");

	/* SIGKILL and SIGSTOP cannot be blocked: silently dropped from mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGKILL);
	sigaddset(&set, SIGSTOP);
	sigprocmask(SIG_BLOCK, &set, &old);
	sigprocmask(SIG_BLOCK, NULL, &set);
	CHECK(!sigismember(&set, SIGKILL) && !sigismember(&set, SIGSTOP),
	      "SIGKILL/SIGSTOP not blockable");
	sigprocmask(SIG_SETMASK, &old, NULL);

	/* sigtimedwait dequeues a blocked pending signal and times out. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	raise(SIGUSR2);
	siginfo_t si;
	struct timespec ts = {0, 0};
	CHECK(sigtimedwait(&set, &si, &ts) == SIGUSR2, "sigtimedwait dequeues");
	CHECK(si.si_signo == SIGUSR2, "sigtimedwait siginfo signo");
	kill(getpid(), SIGUSR2);
	CHECK(sigtimedwait(&set, &si, &ts) == SIGUSR2 && si.si_code == SI_USER && si.si_pid == getpid(),
	      "kill gives SI_USER and sender pid");
	/* Not checked: si_code of tgkill, documented as SI_TKILL, reads
	 * SI_USER on some recent kernels. */
	ts.tv_nsec = 10 * 1000 * 1000;
	CHECK_ERR(sigtimedwait(&set, &si, &ts), EAGAIN, "sigtimedwait timeout EAGAIN");
	sigprocmask(SIG_SETMASK, &old, NULL);

	/* sigaltstack. */
	altstack = malloc(SIGSTKSZ * 4);
	stack_t ss = {.ss_sp = altstack, .ss_size = SIGSTKSZ * 4, .ss_flags = 0};
	CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack install");
	stack_t got;
	CHECK(sigaltstack(NULL, &got) == 0 && got.ss_sp == altstack &&
	      got.ss_size == SIGSTKSZ * 4 && !(got.ss_flags & SS_ONSTACK),
	      "sigaltstack reads back");
	install(SIGUSR2, alt_handler, SA_ONSTACK);
	raise(SIGUSR2);
	CHECK(on_alt, "SA_ONSTACK handler runs on the alternate stack");
	CHECK(ss_onstack, "SS_ONSTACK reported inside the handler");
	install(SIGUSR2, alt_handler, 0);
	raise(SIGUSR2);
	CHECK(!on_alt, "handler without SA_ONSTACK stays on the normal stack");
	stack_t tiny = {.ss_sp = altstack, .ss_size = 16, .ss_flags = 0};
	CHECK_ERR(sigaltstack(&tiny, NULL), ENOMEM, "sigaltstack too small ENOMEM");

	/* SIGSEGV: recover with siglongjmp, with the faulting address. */
	install_info(SIGSEGV, fault_handler, SA_ONSTACK);
	if (sigsetjmp(jb, 1) == 0) {
		*(volatile int *)((char *)bad_ptr + 8) = 1;
		no_fault = 1; /* reached only if no fault */
	} else {
		CHECK(fault_signo == SIGSEGV && fault_addr == (void *)0x10 && fault_code == SEGV_MAPERR,
		      "SIGSEGV si_addr and SEGV_MAPERR");
	}
	char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sigsetjmp(jb, 1) == 0) {
		ro[5] = 1;
		no_fault = 1; /* reached only if no fault */
	} else {
		CHECK(fault_addr == ro + 5 && fault_code == SEGV_ACCERR, "SIGSEGV SEGV_ACCERR on read-only page");
	}
	munmap(ro, 4096);
	/* siglongjmp with savemask=1 restored the mask: SIGSEGV usable again. */
	sigprocmask(SIG_BLOCK, NULL, &set);
	CHECK(!sigismember(&set, SIGSEGV), "siglongjmp restored signal mask");

	/* SIGFPE from an integer divide by zero. */
	install_info(SIGFPE, fault_handler, 0);
	if (sigsetjmp(jb, 1) == 0) {
		volatile int z = 0;
		volatile int x = 10 / z;
		(void)x;
		no_fault = 1; /* reached only if no fault */
	} else {
		CHECK(fault_signo == SIGFPE && fault_code == FPE_INTDIV, "SIGFPE FPE_INTDIV");
	}

	/* SIGCHLD with siginfo, waited for with sigsuspend. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	install_info(SIGCHLD, chld_handler, 0);
	chld_pid = 0;
	pid_t c = check_fork();
	if (c == 0)
		_exit(3);
	sigset_t wait_mask = old;
	sigdelset(&wait_mask, SIGCHLD);
	int r = sigsuspend(&wait_mask);
	CHECK(r == -1 && errno == EINTR, "sigsuspend returns EINTR");
	CHECK(chld_pid == c && chld_code == CLD_EXITED && chld_status == 3, "SIGCHLD siginfo");
	sigprocmask(SIG_BLOCK, NULL, &set);
	CHECK(sigismember(&set, SIGCHLD), "sigsuspend restored the mask");
	waitpid(c, NULL, 0);
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGCHLD, SIG_DFL);

	/* Real-time signals queue, in order, with their values. */
	int rt = SIGRTMIN + 1;
	/* Each handler blocks every rt signal so that deliveries do not nest:
	 * Linux dequeues the lowest signal first, but a second unblocked
	 * signal would get its frame built on top and run first. */
	struct sigaction rsa;
	memset(&rsa, 0, sizeof(rsa));
	rsa.sa_sigaction = rt_handler;
	rsa.sa_flags = SA_SIGINFO;
	sigemptyset(&rsa.sa_mask);
	sigaddset(&rsa.sa_mask, SIGRTMIN + 1);
	sigaddset(&rsa.sa_mask, SIGRTMIN + 2);
	sigaction(rt, &rsa, NULL);
	sigemptyset(&set);
	sigaddset(&set, rt);
	sigprocmask(SIG_BLOCK, &set, &old);
	for (int i = 0; i < 5; i++) {
		union sigval v = {.sival_int = 100 + i};
		CHECK(sigqueue(getpid(), rt, v) == 0, "sigqueue");
	}
	rt_n = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	CHECK(rt_n == 5, "five queued rt signals delivered five times");
	int order = 1;
	for (int i = 0; i < rt_n; i++)
		order = order && rt_values[i] == 100 + i;
	CHECK(order, "rt signal values delivered in order");
	/* Lower-numbered rt signal is delivered first. */
	sigaction(SIGRTMIN + 2, &rsa, NULL);
	sigaddset(&set, SIGRTMIN + 2);
	sigprocmask(SIG_BLOCK, &set, &old);
	sigqueue(getpid(), SIGRTMIN + 2, (union sigval){.sival_int = 2});
	sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = 1});
	rt_n = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	CHECK(rt_n == 2 && rt_values[0] == 1 && rt_values[1] == 2, "lowest rt signal first");

	/* tgkill reaches the named thread. */
	install(SIGUSR1, count_handler, 0);
	volatile int stop = 0;
	pthread_t th;
	pthread_create(&th, NULL, tgkill_target, (void *)&stop);
	usleep(10000);
	pid_t main_tid = (pid_t)syscall(SYS_gettid);
	hits = 0;
	CHECK(syscall(SYS_tgkill, getpid(), main_tid, SIGUSR1) == 0, "tgkill self thread");
	CHECK(hits == 1 && handler_tid == main_tid, "tgkill delivered to the named thread");
	CHECK_ERR(syscall(SYS_tgkill, getpid(), 999999999, SIGUSR1), ESRCH, "tgkill bad tid ESRCH");
	CHECK_ERR(syscall(SYS_tgkill, getpid(), main_tid, 99), EINVAL, "tgkill bad signal EINVAL");
	stop = 1;
	pthread_join(th, NULL);
	CHECK_ERR(kill(getpid(), 99), EINVAL, "kill bad signal EINVAL");

	/* alarm: returns the seconds left of the previous one; fires SIGALRM. */
	install(SIGALRM, count_handler, 0);
	CHECK(alarm(10) == 0, "first alarm returns 0");
	unsigned left = alarm(1);
	CHECK(left >= 9 && left <= 10, "alarm returns remaining seconds");
	hits = 0;
	while (!hits)
		pause();
	CHECK(last_sig == SIGALRM, "alarm delivers SIGALRM");
	CHECK(alarm(0) == 0, "no alarm left after firing");

	/* SA_RESTART restarts a blocked pipe read; without it, EINTR. */
	int err;
	hits = 0;
	long n = restart_read(SA_RESTART, &err);
	CHECK(n == 1 && hits == 1, "SA_RESTART: read restarted and returned data");
	hits = 0;
	n = restart_read(0, &err);
	CHECK(n == -1 && err == EINTR && hits == 1, "no SA_RESTART: read fails with EINTR");

	/* Fork keeps handlers and mask, clears pending signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	raise(SIGUSR1);
	c = check_fork();
	if (c == 0) {
		sigset_t m, p;
		sigprocmask(SIG_BLOCK, NULL, &m);
		sigpending(&p);
		_exit(sigismember(&m, SIGUSR1) && !sigismember(&p, SIGUSR1) ? 0 : 1);
	}
	int st;
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork inherits mask, not pending");
	hits = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	CHECK(hits == 1, "parent's pending signal still delivered");

	CHECK(!no_fault, "every provoked fault trapped");

	/* Default actions. The fault handlers above must not be inherited:
	 * they would longjmp a child back into this function. */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGFPE, SIG_DFL);
	st = die_by(do_segv);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "default SIGSEGV kills");
	st = die_by(do_fpe);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGFPE, "default SIGFPE kills");
	st = die_by(do_abort);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "abort kills with SIGABRT");
	signal(SIGUSR1, SIG_DFL);
	st = die_by(do_usr1);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1, "default SIGUSR1 kills");
	signal(SIGALRM, SIG_DFL);
	st = die_by(do_alarm);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM, "default SIGALRM kills");
	st = die_by(do_pipe);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE, "default SIGPIPE kills");
	st = die_by(do_ignored);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 17, "SIGCHLD/SIGURG/SIGWINCH ignored by default");
	st = die_by(do_sig_ign);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 18, "SIG_IGN SIGTERM survives");

	return check_summary();
}
