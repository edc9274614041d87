//go:build linux && amd64

package boot

import "golang.org/x/sys/unix"

// SentryAllowlist is every host syscall the confined sentry may make, each
// with why it needs it. Calls made only before confinement (opening files,
// mounting, creating namespaces or the platform's first stub) are not here.
// Run with --debug-seccomp-log to find calls that are missing: the kernel
// then logs them (audit, dmesg) instead of killing the sentry.
//
// Ordered roughly by how often they are made, since the filter tests the
// entries in order.
var SentryAllowlist = []SyscallRule{
	// Go runtime: scheduling, locks, memory, signals, threads.
	{NR: unix.SYS_FUTEX, Name: "futex"},                         // runtime locks and notes; sentry futexes are its own
	{NR: unix.SYS_READ, Name: "read"},                           // donated FDs, pipes, the gofer socket
	{NR: unix.SYS_WRITE, Name: "write"},                         // logs, donated FDs
	{NR: unix.SYS_PTRACE, Name: "ptrace"},                       // ptrace platform: run and inspect stubs
	{NR: unix.SYS_WAIT4, Name: "wait4"},                         // ptrace platform: stub stops; reaping stubs
	{NR: unix.SYS_GETCPU, Name: "getcpu"},                       // ptrace platform: the tracer's CPU; gofer client: CPU hint
	{NR: unix.SYS_SCHED_SETAFFINITY, Name: "sched_setaffinity"}, // ptrace platform: pin a stub thread to its tracer's CPU
	{NR: unix.SYS_WAITID, Name: "waitid"},                       // same, with WNOWAIT
	{NR: unix.SYS_EPOLL_PWAIT, Name: "epoll_pwait"},             // Go netpoller
	{NR: unix.SYS_EPOLL_WAIT, Name: "epoll_wait"},               // Go netpoller (older path)
	{NR: unix.SYS_EPOLL_PWAIT2, Name: "epoll_pwait2"},           // netpoller with a timespec timeout
	{NR: unix.SYS_EPOLL_CTL, Name: "epoll_ctl"},                 // netpoller registration
	{NR: unix.SYS_EPOLL_CREATE1, Name: "epoll_create1"},         // netpoller, sentry epoll over host FDs
	{NR: unix.SYS_NANOSLEEP, Name: "nanosleep"},                 // runtime usleep
	{NR: unix.SYS_CLOCK_NANOSLEEP, Name: "clock_nanosleep"},     // timed sleeps
	{NR: unix.SYS_SCHED_YIELD, Name: "sched_yield"},             // runtime osyield
	{NR: unix.SYS_CLOCK_GETTIME, Name: "clock_gettime"},         // when the vDSO falls back
	{NR: unix.SYS_GETTIMEOFDAY, Name: "gettimeofday"},           // same
	{NR: unix.SYS_MMAP, Name: "mmap"},                           // heap, stacks, memory-file mappings
	{NR: unix.SYS_MUNMAP, Name: "munmap"},                       // heap scavenger, unmapping the memory file
	{NR: unix.SYS_MPROTECT, Name: "mprotect"},                   // guard pages
	{NR: unix.SYS_MADVISE, Name: "madvise"},                     // scavenger returns pages; MADV_DONTNEED on the memory file
	{NR: unix.SYS_MREMAP, Name: "mremap"},                       // growing sentry mappings
	{NR: unix.SYS_RT_SIGACTION, Name: "rt_sigaction"},           // runtime and os/signal handlers
	{NR: unix.SYS_RT_SIGPROCMASK, Name: "rt_sigprocmask"},       // runtime per-thread masks
	{NR: unix.SYS_RT_SIGRETURN, Name: "rt_sigreturn"},           // returning from every signal handler
	{NR: unix.SYS_SIGALTSTACK, Name: "sigaltstack"},             // runtime gsignal stacks on new threads
	{NR: unix.SYS_CLONE, Name: "clone"},                         // new runtime threads; stubs forked by the platform
	{NR: unix.SYS_CLONE3, Name: "clone3", Errno: unix.ENOSYS},   // callers fall back to clone, whose flags are simpler to vet later
	{NR: unix.SYS_EXIT, Name: "exit"},                           // runtime thread exit
	{NR: unix.SYS_EXIT_GROUP, Name: "exit_group"},               // the sentry's own exit
	{NR: unix.SYS_RESTART_SYSCALL, Name: "restart_syscall"},     // restarted interrupted sleeps
	{NR: unix.SYS_GETTID, Name: "gettid"},                       // runtime, signal targeting
	{NR: unix.SYS_GETPID, Name: "getpid"},                       // runtime, signal targeting
	{NR: unix.SYS_TGKILL, Name: "tgkill"},                       // goroutine preemption (SIGURG); interrupting stubs
	{NR: unix.SYS_TKILL, Name: "tkill"},                         // platform interrupts of one stub thread
	{NR: unix.SYS_KILL, Name: "kill"},                           // killing stubs
	{NR: unix.SYS_SCHED_GETAFFINITY, Name: "sched_getaffinity"}, // runtime CPU count
	{NR: unix.SYS_GETRANDOM, Name: "getrandom"},                 // map seeds, crypto/rand, AT_RANDOM for applications
	{NR: unix.SYS_PIPE2, Name: "pipe2"},                         // host pipes
	{NR: unix.SYS_EVENTFD2, Name: "eventfd2"},                   // waking pollers
	{NR: unix.SYS_CLOSE, Name: "close"},                         // every FD it holds
	{NR: unix.SYS_FCNTL, Name: "fcntl"},                         // non-blocking and close-on-exec flags
	{NR: unix.SYS_DUP3, Name: "dup3"},                           // placing FDs
	{NR: unix.SYS_PRCTL, Name: "prctl"},                         // PR_SET_PDEATHSIG and friends in forked stubs
	{NR: unix.SYS_PROCESS_VM_READV, Name: "process_vm_readv"},   // ptrace platform: reading stub memory
	{NR: unix.SYS_PROCESS_VM_WRITEV, Name: "process_vm_writev"}, // ptrace platform: writing stub memory

	// Files: the memory file, donated FDs from the gofer, host stdio.
	{NR: unix.SYS_PREAD64, Name: "pread64"},
	{NR: unix.SYS_PWRITE64, Name: "pwrite64"},
	{NR: unix.SYS_PREADV, Name: "preadv"},
	{NR: unix.SYS_PWRITEV, Name: "pwritev"},
	{NR: unix.SYS_PREADV2, Name: "preadv2"},
	{NR: unix.SYS_PWRITEV2, Name: "pwritev2"},
	{NR: unix.SYS_READV, Name: "readv"},
	{NR: unix.SYS_WRITEV, Name: "writev"},
	{NR: unix.SYS_LSEEK, Name: "lseek"},
	{NR: unix.SYS_FSTAT, Name: "fstat"},
	{NR: unix.SYS_NEWFSTATAT, Name: "newfstatat"}, // the sentry uses it only with AT_EMPTY_PATH on FDs it holds; the filter does not check arguments yet
	{NR: unix.SYS_STATX, Name: "statx"},           // same, newer libraries
	{NR: unix.SYS_FSTATFS, Name: "fstatfs"},       // statfs of gofer-donated FDs
	{NR: unix.SYS_GETDENTS64, Name: "getdents64"}, // reading donated directory FDs
	{NR: unix.SYS_FTRUNCATE, Name: "ftruncate"},   // sizing the memory file
	{NR: unix.SYS_FALLOCATE, Name: "fallocate"},   // committing and punching memory-file pages
	{NR: unix.SYS_FSYNC, Name: "fsync"},           // fsync of donated FDs
	{NR: unix.SYS_FDATASYNC, Name: "fdatasync"},
	{NR: unix.SYS_MEMFD_CREATE, Name: "memfd_create"}, // memory files (no path involved)
	{NR: unix.SYS_IOCTL, Name: "ioctl"},               // host TTY stdio, FIONREAD
	{NR: unix.SYS_POLL, Name: "poll"},
	{NR: unix.SYS_PPOLL, Name: "ppoll"},

	// Gofer and host sockets (no socket(2): the sentry only uses sockets
	// it was given).
	{NR: unix.SYS_RECVMSG, Name: "recvmsg"},
	{NR: unix.SYS_SENDMSG, Name: "sendmsg"},
	{NR: unix.SYS_RECVFROM, Name: "recvfrom"},
	{NR: unix.SYS_SENDTO, Name: "sendto"},
	{NR: unix.SYS_SHUTDOWN, Name: "shutdown"},
	{NR: unix.SYS_GETSOCKOPT, Name: "getsockopt"},
	{NR: unix.SYS_ACCEPT4, Name: "accept4"}, // the control socket runsc create made
}
