/*
 * locks: flock(2) and fcntl(2) record locks (process-owned F_SETLK and
 * open-file-description F_OFD_SETLK) between processes: conflicts,
 * F_GETLK reports, range splitting and merging, release on close,
 * blocking F_SETLKW woken by an unlock, interruption by a signal (EINTR)
 * and deadlock detection (EDEADLK).
 */
#include "check.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>

static char path[512];

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	return fcntl(fd, cmd, &fl);
}

/* in_child runs fn in a forked child and returns its exit status. */
static int in_child(int (*fn)(void *), void *arg)
{
	pid_t pid = check_fork();
	if (pid == 0)
		_exit(fn(arg));
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

struct try {
	short type;
	off_t start, len;
	int cmd;
};

/* child_try opens the file anew and returns 0 if the lock could be taken
 * (F_SETLK), else the errno. */
static int child_try_fn(void *p)
{
	struct try *t = p;
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return 100;
	if (setlk(fd, t->cmd ? t->cmd : F_SETLK, t->type, t->start, t->len) == 0)
		return 0;
	return errno;
}

static int child_try(short type, off_t start, off_t len)
{
	struct try t = {type, start, len, 0};
	return in_child(child_try_fn, &t);
}

/* child_getlk writes what F_GETLK reports for a probe into a pipe. */
static int getlk_pipe[2];
static int child_getlk_fn(void *p)
{
	struct try *t = p;
	int fd = open(path, O_RDWR);
	struct flock fl = {.l_type = t->type, .l_whence = SEEK_SET, .l_start = t->start, .l_len = t->len};
	if (fd < 0 || fcntl(fd, F_GETLK, &fl) != 0)
		return 1;
	if (write(getlk_pipe[1], &fl, sizeof fl) != sizeof fl)
		return 2;
	return 0;
}

static struct flock child_getlk(short type, off_t start, off_t len)
{
	struct flock fl = {.l_type = -1};
	struct try t = {type, start, len, 0};
	if (pipe(getlk_pipe) != 0)
		return fl;
	if (in_child(child_getlk_fn, &t) == 0)
		read(getlk_pipe[0], &fl, sizeof fl);
	close(getlk_pipe[0]);
	close(getlk_pipe[1]);
	return fl;
}

static void test_posix_basic(void)
{
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0, "open");
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 100) == 0, "write lock [0,100)");
	CHECK(child_try(F_WRLCK, 50, 10) == EAGAIN, "other process: conflicting write lock EAGAIN");
	CHECK(child_try(F_RDLCK, 99, 1) == EAGAIN, "other process: read lock at the last byte EAGAIN");
	CHECK(child_try(F_WRLCK, 100, 50) == 0, "other process: lock past the range ok");

	struct flock fl = child_getlk(F_RDLCK, 10, 5);
	CHECK(fl.l_type == F_WRLCK && fl.l_start == 0 && fl.l_len == 100 && fl.l_pid == getpid() &&
		      fl.l_whence == SEEK_SET,
	      "F_GETLK names the holder, its range and pid");
	fl = child_getlk(F_WRLCK, 200, 0);
	CHECK(fl.l_type == F_UNLCK, "F_GETLK with no conflict says F_UNLCK");

	/* The owner's own locks never conflict with it. */
	struct flock me = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
	CHECK(fcntl(fd, F_GETLK, &me) == 0 && me.l_type == F_UNLCK, "F_GETLK ignores own locks");

	/* Split: unlock the middle. */
	CHECK(setlk(fd, F_SETLK, F_UNLCK, 40, 20) == 0, "unlock [40,60)");
	CHECK(child_try(F_WRLCK, 40, 20) == 0, "hole is free");
	CHECK(child_try(F_WRLCK, 39, 1) == EAGAIN, "left part still held");
	CHECK(child_try(F_WRLCK, 60, 1) == EAGAIN, "right part still held");
	fl = child_getlk(F_WRLCK, 50, 0);
	CHECK(fl.l_type == F_WRLCK && fl.l_start == 60 && fl.l_len == 40, "F_GETLK reports the right piece");

	/* Downgrade part of it to a read lock: readers may share it. */
	CHECK(setlk(fd, F_SETLK, F_RDLCK, 0, 20) == 0, "downgrade [0,20) to read");
	CHECK(child_try(F_RDLCK, 0, 20) == 0, "other reader shares the read lock");
	CHECK(child_try(F_WRLCK, 10, 1) == EAGAIN, "writer still excluded");
	CHECK(child_try(F_RDLCK, 20, 1) == EAGAIN, "write part [20,40) intact");

	/* Merge: adjacent ranges of one type become one lock. */
	CHECK(setlk(fd, F_SETLK, F_UNLCK, 0, 0) == 0, "unlock everything");
	CHECK(child_try(F_WRLCK, 0, 0) == 0, "all free");
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 10) == 0 && setlk(fd, F_SETLK, F_WRLCK, 10, 10) == 0, "two adjacent locks");
	fl = child_getlk(F_RDLCK, 15, 1);
	CHECK(fl.l_type == F_WRLCK && fl.l_start == 0 && fl.l_len == 20, "adjacent locks merged");
	/* Negative length: [start+len, start). */
	CHECK(setlk(fd, F_SETLK, F_UNLCK, 0, 0) == 0, "unlock");
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 30, -10) == 0, "negative length lock");
	fl = child_getlk(F_RDLCK, 0, 0);
	CHECK(fl.l_type == F_WRLCK && fl.l_start == 20 && fl.l_len == 10, "negative length covers [20,30)");
	/* To EOF: l_len 0 reports 0. */
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 1000, 0) == 0, "lock to EOF");
	fl = child_getlk(F_RDLCK, 5000, 1);
	CHECK(fl.l_type == F_WRLCK && fl.l_start == 1000 && fl.l_len == 0, "lock to EOF reports l_len 0");
	/* SEEK_CUR and SEEK_END. */
	CHECK(setlk(fd, F_SETLK, F_UNLCK, 0, 0) == 0, "unlock");
	CHECK(ftruncate(fd, 500) == 0 && lseek(fd, 100, SEEK_SET) == 100, "size 500, offset 100");
	struct flock cur = {.l_type = F_WRLCK, .l_whence = SEEK_CUR, .l_start = 5, .l_len = 5};
	CHECK(fcntl(fd, F_SETLK, &cur) == 0, "SEEK_CUR lock");
	fl = child_getlk(F_RDLCK, 0, 0);
	CHECK(fl.l_start == 105 && fl.l_len == 5, "SEEK_CUR is relative to the offset");
	CHECK(setlk(fd, F_SETLK, F_UNLCK, 0, 0) == 0, "unlock");
	struct flock end = {.l_type = F_WRLCK, .l_whence = SEEK_END, .l_start = -10, .l_len = 10};
	CHECK(fcntl(fd, F_SETLK, &end) == 0, "SEEK_END lock");
	fl = child_getlk(F_RDLCK, 0, 0);
	CHECK(fl.l_start == 490 && fl.l_len == 10, "SEEK_END is relative to the size");
	CHECK(setlk(fd, F_SETLK, F_UNLCK, 0, 0) == 0, "unlock");
	close(fd);
}

static void test_posix_close(void)
{
	int fd = open(path, O_RDWR);
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 10) == 0, "lock");
	int fd2 = open(path, O_RDONLY);
	CHECK(child_try(F_WRLCK, 0, 10) == EAGAIN, "held");
	close(fd2);
	CHECK(child_try(F_WRLCK, 0, 10) == 0, "closing another descriptor of the file releases the lock");
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 10) == 0, "lock again");
	int fd3 = open(path, O_PATH);
	close(fd3);
	CHECK(child_try(F_WRLCK, 0, 10) == EAGAIN, "closing an O_PATH descriptor does not");
	int d = dup(fd);
	close(d);
	CHECK(child_try(F_WRLCK, 0, 10) == 0, "closing a dup releases");
	close(fd);
}

static void test_ofd(void)
{
	int a = open(path, O_RDWR), b = open(path, O_RDWR);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
	CHECK(fcntl(a, F_OFD_SETLK, &fl) == 0, "OFD write lock");
	fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1};
	CHECK_ERR(fcntl(b, F_OFD_SETLK, &fl), EAGAIN, "second description of the same process conflicts");
	CHECK_ERR(setlk(b, F_SETLK, F_RDLCK, 5, 1), EAGAIN, "a POSIX lock of the same process conflicts with an OFD lock");
	fl = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	CHECK(fcntl(b, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_WRLCK && fl.l_pid == -1 && fl.l_len == 10,
	      "F_OFD_GETLK reports l_pid -1");
	fl = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	CHECK(fcntl(b, F_GETLK, &fl) == 0 && fl.l_type == F_WRLCK && fl.l_pid == -1, "F_GETLK sees the OFD lock");
	int c = open(path, O_RDONLY);
	close(c);
	CHECK(child_try(F_WRLCK, 0, 1) == EAGAIN, "closing another descriptor keeps OFD locks");
	int d = dup(a);
	close(a);
	CHECK(child_try(F_WRLCK, 0, 1) == EAGAIN, "a dup keeps the description's lock");
	close(d);
	CHECK(child_try(F_WRLCK, 0, 1) == 0, "last close of the description releases it");
	fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_pid = 1};
	CHECK_ERR(fcntl(b, F_OFD_SETLK, &fl), EINVAL, "OFD lock with l_pid set EINVAL");
	close(b);
}

static void test_badinput(void)
{
	int ro = open(path, O_RDONLY), wo = open(path, O_WRONLY);
	CHECK_ERR(setlk(ro, F_SETLK, F_WRLCK, 0, 1), EBADF, "write lock on read-only fd EBADF");
	CHECK_ERR(setlk(wo, F_SETLK, F_RDLCK, 0, 1), EBADF, "read lock on write-only fd EBADF");
	CHECK_ERR(setlk(ro, F_SETLK, 7, 0, 1), EINVAL, "bad l_type EINVAL");
	struct flock fl = {.l_type = F_RDLCK, .l_whence = 9};
	CHECK_ERR(fcntl(ro, F_SETLK, &fl), EINVAL, "bad l_whence EINVAL");
	CHECK_ERR(setlk(ro, F_SETLK, F_RDLCK, -1, 1), EINVAL, "negative start EINVAL");
	CHECK_ERR(setlk(ro, F_SETLK, F_RDLCK, 5, -10), EINVAL, "negative length before 0 EINVAL");
	CHECK_ERR(fcntl(ro, F_SETLK, (void *)8), EFAULT, "bad pointer EFAULT");
	int p = open(path, O_PATH);
	CHECK_ERR(setlk(p, F_SETLK, F_RDLCK, 0, 1), EBADF, "O_PATH fd EBADF");
	CHECK_ERR(flock(p, LOCK_SH), EBADF, "flock on O_PATH fd EBADF");
	CHECK_ERR(flock(ro, 0), EINVAL, "flock with no operation EINVAL");
	CHECK_ERR(flock(ro, LOCK_SH | LOCK_EX), EINVAL, "flock with two operations EINVAL");
	CHECK_ERR(flock(-1, LOCK_SH), EBADF, "flock bad fd EBADF");
	close(p);
	close(ro);
	close(wo);
}

static int child_flock_fn(void *p)
{
	int op = *(int *)p;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 100;
	return flock(fd, op | LOCK_NB) == 0 ? 0 : errno;
}

static int child_flock(int op) { return in_child(child_flock_fn, &op); }

static void test_flock(void)
{
	int a = open(path, O_RDONLY), b = open(path, O_RDONLY);
	CHECK(flock(a, LOCK_EX) == 0, "flock LOCK_EX");
	CHECK(flock(a, LOCK_EX) == 0, "relock same type ok");
	CHECK_ERR(flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK, "other description: LOCK_SH|LOCK_NB EWOULDBLOCK");
	CHECK(child_flock(LOCK_SH) == EWOULDBLOCK, "other process EWOULDBLOCK");
	CHECK(setlk(a, F_SETLK, F_RDLCK, 0, 0) == 0, "flock and record locks are independent");
	CHECK(flock(a, LOCK_SH) == 0, "downgrade to shared");
	CHECK(flock(b, LOCK_SH | LOCK_NB) == 0, "two shared locks");
	CHECK(child_flock(LOCK_SH) == 0, "shared in another process");
	CHECK(child_flock(LOCK_EX) == EWOULDBLOCK, "exclusive refused while shared");
	CHECK(flock(b, LOCK_UN) == 0 && flock(a, LOCK_UN) == 0, "unlock both");
	CHECK(child_flock(LOCK_EX) == 0, "free after unlock");

	/* A fork's copy of the description shares the lock. */
	CHECK(flock(a, LOCK_EX) == 0, "lock again");
	pid_t pid = check_fork();
	if (pid == 0)
		_exit(flock(a, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "forked child holds the same flock");
	CHECK(child_flock(LOCK_SH) == EWOULDBLOCK, "child exit (closing its copy) keeps the lock");
	int d = dup(a);
	close(a);
	CHECK(child_flock(LOCK_SH) == EWOULDBLOCK, "dup keeps the lock");
	close(d);
	CHECK(child_flock(LOCK_SH) == 0, "last close releases the flock");
	close(b);
}

static int waitfd[2];

static int child_blocking_fn(void *p)
{
	int fd = open(path, O_RDWR);
	char c = 'x';
	write(waitfd[1], &c, 1);
	if (setlk(fd, F_SETLKW, F_WRLCK, 0, 10) != 0)
		return 10 + errno;
	/* Report the lock is ours, then hold it briefly. */
	return 0;
}

static void test_setlkw(void)
{
	int fd = open(path, O_RDWR);
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 10) == 0, "lock");
	pipe(waitfd);
	pid_t pid = check_fork();
	if (pid == 0)
		_exit(child_blocking_fn(NULL));
	char c;
	read(waitfd[0], &c, 1);
	usleep(100 * 1000);
	int st;
	CHECK(waitpid(pid, &st, WNOHANG) == 0, "F_SETLKW blocks while the lock is held");
	CHECK(setlk(fd, F_SETLK, F_UNLCK, 0, 10) == 0, "unlock");
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "waiter got the lock after unlock");
	close(waitfd[0]);
	close(waitfd[1]);

	/* flock waits too. */
	CHECK(flock(fd, LOCK_EX) == 0, "flock");
	pipe(waitfd);
	pid = check_fork();
	if (pid == 0) {
		close(fd); /* the parent's close must drop the last reference */
		int f = open(path, O_RDONLY);
		write(waitfd[1], "x", 1);
		_exit(flock(f, LOCK_SH) == 0 ? 0 : 1);
	}
	read(waitfd[0], &c, 1);
	usleep(100 * 1000);
	CHECK(waitpid(pid, &st, WNOHANG) == 0, "flock blocks while an exclusive lock is held");
	close(fd); /* last reference: the lock goes */
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "flock waiter woken by close");
	close(waitfd[0]);
	close(waitfd[1]);
}

static void on_alarm(int sig) { (void)sig; }

static void test_eintr(void)
{
	int fd = open(path, O_RDWR);
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 1) == 0, "lock");
	CHECK(flock(fd, LOCK_EX) == 0, "flock");
	pid_t pid = check_fork();
	if (pid == 0) {
		struct sigaction sa = {.sa_handler = on_alarm};
		sigaction(SIGALRM, &sa, NULL);
		int f = open(path, O_RDWR);
		alarm(1);
		int r1 = setlk(f, F_SETLKW, F_WRLCK, 0, 1);
		int e1 = errno;
		alarm(1);
		int r2 = flock(f, LOCK_EX);
		int e2 = errno;
		_exit((r1 == -1 && e1 == EINTR ? 0 : 1) | (r2 == -1 && e2 == EINTR ? 0 : 2));
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st), "child exited");
	CHECK((WEXITSTATUS(st) & 1) == 0, "F_SETLKW interrupted by a signal: EINTR");
	CHECK((WEXITSTATUS(st) & 2) == 0, "flock interrupted by a signal: EINTR");
	close(fd);
}

static void test_deadlock(void)
{
	int fd = open(path, O_RDWR);
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 1) == 0, "parent locks byte 0");
	int sync1[2];
	pipe(sync1);
	pid_t pid = check_fork();
	if (pid == 0) {
		int f = open(path, O_RDWR);
		if (setlk(f, F_SETLK, F_WRLCK, 1, 1) != 0)
			_exit(3);
		write(sync1[1], "x", 1);
		/* Blocks on the parent's byte 0 (or finds the deadlock). */
		int r = setlk(f, F_SETLKW, F_WRLCK, 0, 1);
		_exit(r == 0 ? 0 : errno == EDEADLK ? 1 : 2);
	}
	char c;
	read(sync1[0], &c, 1);
	usleep(200 * 1000);
	int r = setlk(fd, F_SETLKW, F_WRLCK, 1, 1);
	int e = errno;
	int parentDeadlock = r == -1 && e == EDEADLK;
	if (parentDeadlock)
		setlk(fd, F_SETLK, F_UNLCK, 0, 1); /* let the child go */
	int st;
	waitpid(pid, &st, 0);
	int childDeadlock = WIFEXITED(st) && WEXITSTATUS(st) == 1;
	CHECK(parentDeadlock != childDeadlock, "exactly one side of a lock cycle gets EDEADLK");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 2 && WEXITSTATUS(st) != 3, "child saw no other error");
	close(fd);
	close(sync1[0]);
	close(sync1[1]);
}

static void *thread_lock(void *p)
{
	int fd = *(int *)p;
	/* Threads share the process's locks: no conflict with the main thread. */
	return (void *)(long)(setlk(fd, F_SETLK, F_WRLCK, 0, 10) == 0);
}

#include <pthread.h>
static void test_threads(void)
{
	int fd = open(path, O_RDWR);
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 10) == 0, "main thread locks");
	pthread_t th;
	void *ok = 0;
	pthread_create(&th, NULL, thread_lock, &fd);
	pthread_join(th, &ok);
	CHECK(ok != 0, "another thread of the process re-locks the same range");
	close(fd);
}

int main(void)
{
	check_path(path, sizeof path, "locks");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0666);
	if (fd < 0) {
		perror("create");
		return 1;
	}
	close(fd);
	test_posix_basic();
	test_posix_close();
	test_ofd();
	test_badinput();
	test_flock();
	test_setlkw();
	test_eintr();
	test_deadlock();
	test_threads();
	unlink(path);
	return check_summary();
}
