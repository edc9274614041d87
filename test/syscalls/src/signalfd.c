/*
 * signalfd: reading blocked signals as struct signalfd_siginfo (fields for
 * kill, sigqueue and a child's exit), several per read, queued real-time
 * signals, EAGAIN/EINVAL, SFD_NONBLOCK/SFD_CLOEXEC, changing the mask of
 * an existing signalfd, blocking reads woken by another thread, and
 * poll/epoll readiness.
 */
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static void *kill_after(void *arg)
{
	struct timespec ts = {0, 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	kill(getpid(), (int)(intptr_t)arg);
	return NULL;
}

int main(void)
{
	struct signalfd_siginfo si[4];
	sigset_t m;

	CHECK(sizeof(struct signalfd_siginfo) == 128, "signalfd_siginfo is 128 bytes");
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigaddset(&m, SIGRTMIN);
	sigaddset(&m, SIGCHLD);
	sigprocmask(SIG_BLOCK, &m, NULL);

	/* Argument checks. */
	CHECK_ERR(syscall(SYS_signalfd4, -1, &m, 4, 0), EINVAL, "sizemask 4 is EINVAL");
	CHECK_ERR(syscall(SYS_signalfd4, -1, (void *)8, 8, 0), EFAULT, "bad mask pointer is EFAULT");
	CHECK_ERR(signalfd(-1, &m, 0x4), EINVAL, "bad flag is EINVAL");
	CHECK_ERR(signalfd(999, &m, 0), EBADF, "closed fd is EBADF");
	CHECK_ERR(signalfd(0, &m, 0), EINVAL, "non-signalfd fd is EINVAL");

	int fd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	CHECK(fd >= 0, "signalfd(-1, mask, NONBLOCK|CLOEXEC)");
	CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "SFD_CLOEXEC sets FD_CLOEXEC");
	CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0, "SFD_NONBLOCK sets O_NONBLOCK");
	CHECK_ERR(read(fd, si, sizeof(si)), EAGAIN, "nothing pending is EAGAIN");
	CHECK_ERR(read(fd, si, 127), EINVAL, "127-byte buffer is EINVAL");
	CHECK_ERR(write(fd, si, 128), EINVAL, "write is EINVAL");
	struct pollfd p = {fd, POLLIN, 0};
	CHECK(poll(&p, 1, 0) == 0, "poll: not readable");

	/* kill: pid and uid. */
	kill(getpid(), SIGUSR1);
	CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLIN), "poll: readable with SIGUSR1 pending");
	sigset_t pend;
	sigpending(&pend);
	CHECK(sigismember(&pend, SIGUSR1), "SIGUSR1 is pending before the read");
	CHECK(read(fd, si, sizeof(si)) == 128, "read returns one record");
	CHECK(si[0].ssi_signo == SIGUSR1 && si[0].ssi_code == SI_USER, "ssi_signo/ssi_code of kill");
	CHECK(si[0].ssi_pid == (uint32_t)getpid() && si[0].ssi_uid == getuid(), "ssi_pid/ssi_uid of kill");
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGUSR1), "read dequeued SIGUSR1");
	CHECK(poll(&p, 1, 0) == 0, "poll: not readable after read");

	/* sigqueue: value; real-time signals queue, standard ones do not. */
	union sigval sv = {.sival_int = 1234};
	sigqueue(getpid(), SIGRTMIN, sv);
	sv.sival_int = 5678;
	sigqueue(getpid(), SIGRTMIN, sv);
	kill(getpid(), SIGUSR2);
	kill(getpid(), SIGUSR2);
	int n = read(fd, si, sizeof(si));
	CHECK(n == 3 * 128, "three records in one read (USR2 once, RTMIN twice)");
	CHECK(si[0].ssi_signo == SIGUSR2, "lowest signal first");
	CHECK(si[1].ssi_signo == (uint32_t)SIGRTMIN && si[1].ssi_code == SI_QUEUE && si[1].ssi_int == 1234,
	      "first sigqueue value");
	CHECK(si[2].ssi_signo == (uint32_t)SIGRTMIN && si[2].ssi_int == 5678, "second sigqueue value, in order");
	CHECK(si[1].ssi_pid == (uint32_t)getpid(), "ssi_pid of sigqueue");

	/* Room for fewer records than pending: the rest stay queued. */
	kill(getpid(), SIGUSR1);
	kill(getpid(), SIGUSR2);
	CHECK(read(fd, si, 200) == 128 && si[0].ssi_signo == SIGUSR1, "200-byte buffer takes one record");
	CHECK(read(fd, si, 128) == 128 && si[0].ssi_signo == SIGUSR2, "the other stays queued");

	/* Changing the mask of an existing signalfd. */
	sigset_t only2;
	sigemptyset(&only2);
	sigaddset(&only2, SIGUSR2);
	sigaddset(&only2, SIGKILL); /* silently ignored */
	CHECK(signalfd(fd, &only2, 0) == fd, "signalfd(fd, new mask) returns fd");
	kill(getpid(), SIGUSR1);
	CHECK_ERR(read(fd, si, 128), EAGAIN, "SIGUSR1 no longer in the mask");
	CHECK(signalfd(fd, &m, 0) == fd, "restore mask");
	CHECK(read(fd, si, 128) == 128 && si[0].ssi_signo == SIGUSR1, "SIGUSR1 read once back in the mask");

	/* A child's exit: SIGCHLD with pid and status. */
	pid_t c = check_fork();
	if (c == 0)
		_exit(7);
	int bfd = signalfd(-1, &m, 0);
	CHECK(read(bfd, si, 128) == 128, "blocking read gets SIGCHLD");
	CHECK(si[0].ssi_signo == SIGCHLD && si[0].ssi_code == CLD_EXITED, "SIGCHLD with CLD_EXITED");
	CHECK(si[0].ssi_pid == (uint32_t)c && si[0].ssi_status == 7, "ssi_pid/ssi_status of the child");
	waitpid(c, NULL, 0);

	/* A blocking read is woken by a signal sent later by another thread. */
	pthread_t th;
	pthread_create(&th, NULL, kill_after, (void *)(intptr_t)SIGUSR2);
	CHECK(read(bfd, si, 128) == 128 && si[0].ssi_signo == SIGUSR2, "blocking read woken by later kill");
	pthread_join(th, NULL);

	/* epoll readiness. */
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl ADD signalfd");
	struct epoll_event out[2];
	CHECK(epoll_wait(ep, out, 2, 0) == 0, "epoll: nothing pending");
	pthread_create(&th, NULL, kill_after, (void *)(intptr_t)SIGUSR1);
	CHECK(epoll_wait(ep, out, 2, 5000) == 1 && out[0].data.fd == fd, "epoll_wait woken by signal");
	pthread_join(th, NULL);
	CHECK(read(fd, si, 128) == 128 && si[0].ssi_signo == SIGUSR1, "read after epoll");
	CHECK(epoll_wait(ep, out, 2, 0) == 0, "epoll: not ready after read");
	close(ep);

	close(bfd);
	close(fd);
	return check_summary();
}
