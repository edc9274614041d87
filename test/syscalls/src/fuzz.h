/*
 * fuzz.h: what the two sandbox-only programs, badinput and stress, share:
 * the syscalls they must never make, and the helpers that keep a fuzzing
 * process alive and its output clean.
 *
 * These programs are never run natively: garbage arguments to a real
 * kernel, as root, could change the host (hostnames, mounts, limits).
 * Inside Veil they may only ever harm their own sandbox.
 */
#ifndef VEIL_FUZZ_H
#define VEIL_FUZZ_H

#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>

#define FUZZ_MAX_NR 600

/* fuzz_excluded lists the calls that would end, freeze or hijack the
 * fuzzing process itself, or reach outside it; the reason is given for
 * each so that the list stays deliberate. */
static inline int fuzz_excluded(long nr)
{
	switch (nr) {
	/* Ending the process ends the test. */
	case SYS_exit:
	case SYS_exit_group:
	/* A garbage signal frame would be restored as our registers. */
	case SYS_rt_sigreturn:
	/* Wait for a signal that never comes, or for fds with no timeout. */
	case SYS_pause:
	case SYS_rt_sigsuspend:
	case SYS_select:
	case SYS_pselect6:
	case SYS_ppoll:
	/* Process creation multiplies the fuzzer (a garbage clone stack
	 * crashes at once); processes.c covers these. A successful exec
	 * would replace the fuzzer. */
	case SYS_clone:
	case SYS_clone3:
	case SYS_fork:
	case SYS_vfork:
	case SYS_execve:
	case SYS_execveat:
	/* Signals to garbage pids may reach the harness's process or, with
	 * pid -1, every process of the sandbox. */
	case SYS_kill:
	case SYS_tkill:
	case SYS_tgkill:
	case SYS_rt_sigqueueinfo:
	case SYS_rt_tgsigqueueinfo:
	case SYS_pidfd_send_signal:
	/* May reach into another process: its memory or its limits. */
	case SYS_process_vm_writev:
	case SYS_prlimit64:
	/* PTRACE_TRACEME makes the next signal stop us for good. */
	case SYS_ptrace:
	/* Strict seccomp kills us at the next call. */
	case SYS_seccomp:
	/* Reboot-like: they end the machine, not a process. */
	case SYS_reboot:
	case SYS_kexec_load:
	case SYS_kexec_file_load:
	/* Hangs up the controlling terminal and sends SIGHUP around. */
	case SYS_vhangup:
	/* Changes how our own later mmaps and execs behave. */
	case SYS_personality:
		return 1;
	}
	return 0;
}

static void fuzz_on_alarm(int sig) { (void)sig; }

/* fuzz_guard arms a one-shot timer whose signal interrupts a call that
 * blocks longer than ms, without SA_RESTART so the call returns EINTR. */
static inline void fuzz_guard(long ms)
{
	struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
	setitimer(ITIMER_REAL, &it, NULL);
}

/* fuzz_signals ignores every signal a garbage call might provoke so that
 * the process survives it (faults still kill: they cannot be ignored),
 * and installs the non-restarting timer handler. */
static inline void fuzz_signals(void)
{
	for (int s = 1; s < 65; s++) {
		if (s == SIGKILL || s == SIGSTOP || s == SIGCHLD || s == SIGSEGV || s == SIGBUS ||
		    s == SIGFPE || s == SIGILL || s == SIGTRAP || s == SIGALRM || s == 32 || s == 33)
			continue;
		signal(s, SIG_IGN);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fuzz_on_alarm;
	sigaction(SIGALRM, &sa, NULL);
}

#endif
