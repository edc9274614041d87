/*
 * sysv_sem: System V semaphores. semget with IPC_PRIVATE and keys and its
 * nsems checks; semctl GETVAL/SETVAL/GETALL/SETALL/GETPID/GETNCNT/GETZCNT,
 * ERANGE above SEMVMX, IPC_STAT/IPC_SET/IPC_INFO/SEM_INFO/SEM_STAT;
 * semop with several operations applied atomically, IPC_NOWAIT (EAGAIN),
 * EFBIG/E2BIG/EINVAL, waits for increase and for zero woken by another
 * process; semtimedop's timeout (EAGAIN); SEM_UNDO undone at exit and
 * cleared by SETVAL; EIDRM to waiters on removal; EINTR on a signal even
 * with SA_RESTART; stale IDs; permissions as an unprivileged user;
 * /proc/sysvipc/sem; two processes using a keyed set as a mutex.
 */
#include "check.h"

#include <grp.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <time.h>

#define UID 1000
#define GID 1000
#define SEMVMX 32767

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
	struct seminfo *__buf;
};

static key_t key;

static int op1(int id, unsigned short num, short op, short flg)
{
	struct sembuf b = {num, op, flg};
	return semop(id, &b, 1);
}

static int val(int id, int num) { return semctl(id, num, GETVAL); }

static int setval(int id, int num, int v)
{
	union semun u = {.val = v};
	return semctl(id, num, SETVAL, u);
}

static struct semid_ds stat_of(int id)
{
	struct semid_ds ds;
	memset(&ds, 0xff, sizeof ds);
	union semun u = {.buf = &ds};
	if (semctl(id, 0, IPC_STAT, u) != 0)
		memset(&ds, 0xff, sizeof ds);
	return ds;
}

static int child_status(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* wait_count waits until semctl(cmd) on num reaches want. */
static int wait_count(int id, int num, int cmd, int want)
{
	for (int i = 0; i < 500; i++) {
		if (semctl(id, num, cmd) == want)
			return 1;
		usleep(10000);
	}
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_get_ctl(void)
{
	CHECK_ERR(semget(IPC_PRIVATE, 0, 0600), EINVAL, "nsems 0 for a new set is EINVAL");
	CHECK_ERR(semget(IPC_PRIVATE, -1, 0600), EINVAL, "negative nsems is EINVAL");
	CHECK_ERR(semget(key, 1, 0600), ENOENT, "missing key without IPC_CREAT");
	int id = semget(IPC_PRIVATE, 3, 0640);
	CHECK(id >= 0, "semget IPC_PRIVATE");
	struct semid_ds ds = stat_of(id);
	CHECK(ds.sem_nsems == 3 && (ds.sem_perm.mode & 0777) == 0640, "IPC_STAT nsems and mode");
	CHECK(ds.sem_perm.uid == geteuid() && ds.sem_perm.cgid == getegid(), "IPC_STAT owner");
	CHECK(ds.sem_otime == 0 && ds.sem_ctime > 0, "otime 0, ctime set");
	CHECK(val(id, 0) == 0 && val(id, 2) == 0, "new semaphores are 0");

	CHECK(setval(id, 1, 5) == 0 && val(id, 1) == 5, "SETVAL/GETVAL");
	CHECK(semctl(id, 1, GETPID) == getpid(), "GETPID after SETVAL");
	CHECK(setval(id, 1, SEMVMX) == 0, "SETVAL SEMVMX");
	CHECK_ERR(setval(id, 1, SEMVMX + 1), ERANGE, "SETVAL above SEMVMX is ERANGE");
	CHECK_ERR(setval(id, 1, -1), ERANGE, "negative SETVAL is ERANGE");
	CHECK_ERR(setval(id, 3, 1), EINVAL, "SETVAL past the set is EINVAL");
	CHECK_ERR(semctl(id, 3, GETVAL), EINVAL, "GETVAL past the set is EINVAL");
	CHECK_ERR(semctl(id, -1, GETVAL), EINVAL, "GETVAL of a negative index is EINVAL");

	unsigned short in[3] = {1, 2, 3}, out[3] = {0};
	union semun u = {.array = in};
	CHECK(semctl(id, 0, SETALL, u) == 0, "SETALL");
	u.array = out;
	CHECK(semctl(id, 0, GETALL, u) == 0 && out[0] == 1 && out[1] == 2 && out[2] == 3, "GETALL");
	in[1] = SEMVMX + 1;
	u.array = in;
	CHECK_ERR(semctl(id, 0, SETALL, u), ERANGE, "SETALL above SEMVMX is ERANGE");
	CHECK(val(id, 1) == 2, "a failed SETALL changes nothing");
	u.array = (unsigned short *)8;
	CHECK_ERR(semctl(id, 0, GETALL, u), EFAULT, "GETALL to a bad pointer");
	CHECK_ERR(semctl(id, 0, 999), EINVAL, "unknown command");

	ds = stat_of(id);
	ds.sem_perm.mode = 0600;
	u.buf = &ds;
	CHECK(semctl(id, 0, IPC_SET, u) == 0 && (stat_of(id).sem_perm.mode & 0777) == 0600, "IPC_SET mode");

	int k = semget(key, 2, IPC_CREAT | IPC_EXCL | 0600);
	CHECK(k >= 0, "semget key IPC_CREAT|IPC_EXCL");
	CHECK_ERR(semget(key, 2, IPC_CREAT | IPC_EXCL | 0600), EEXIST, "IPC_EXCL on an existing key");
	CHECK(semget(key, 0, 0) == k && semget(key, 2, 0) == k, "key finds the set");
	CHECK_ERR(semget(key, 3, 0), EINVAL, "more semaphores than the set has is EINVAL");

	/* IPC_INFO, SEM_INFO, SEM_STAT, /proc. */
	struct seminfo si;
	u.__buf = &si;
	int maxidx = semctl(0, 0, IPC_INFO, u);
	int msl = -1, mns = -1, opm = -1, mni = -1;
	FILE *f = fopen("/proc/sys/kernel/sem", "r");
	if (f) {
		fscanf(f, "%d %d %d %d", &msl, &mns, &opm, &mni);
		fclose(f);
	}
	CHECK(maxidx >= 0 && si.semmsl == msl && si.semmns == mns && si.semopm == opm && si.semmni == mni &&
	          si.semvmx == SEMVMX,
	      "IPC_INFO matches /proc/sys/kernel/sem");
	CHECK(semctl(0, 0, SEM_INFO, u) == maxidx && si.semusz >= 2 && si.semaem >= 5, "SEM_INFO counts sets and semaphores");
	int found = 0;
	for (int i = 0; i <= maxidx; i++) {
		struct semid_ds d;
		union semun su = {.buf = &d};
		if (semctl(i, 0, SEM_STAT, su) == k)
			found = d.sem_nsems == 2;
	}
	CHECK(found, "SEM_STAT by index returns the ID");
	f = fopen("/proc/sysvipc/sem", "r");
	char line[512];
	int seen = 0;
	while (f && fgets(line, sizeof line, f)) {
		int kk, i, n;
		unsigned mode;
		if (sscanf(line, "%d %d %o %d", &kk, &i, &mode, &n) == 4 && i == k)
			seen = kk == key && mode == 0600 && n == 2;
	}
	if (f)
		fclose(f);
	CHECK(seen, "/proc/sysvipc/sem lists the set");

	CHECK(semctl(k, 0, IPC_RMID) == 0, "IPC_RMID");
	CHECK_ERR(semctl(k, 0, GETVAL), EINVAL, "GETVAL of a stale ID");
	CHECK_ERR(op1(k, 0, 1, 0), EINVAL, "semop on a stale ID");
	CHECK_ERR(semctl(k, 0, IPC_RMID), EINVAL, "IPC_RMID twice");
	semctl(id, 0, IPC_RMID);
}

static void test_semop(void)
{
	int id = semget(IPC_PRIVATE, 3, 0600);
	CHECK(op1(id, 0, 2, 0) == 0 && val(id, 0) == 2, "semop +2");
	struct semid_ds ds = stat_of(id);
	CHECK(ds.sem_otime > 0, "otime set by semop");
	CHECK(semctl(id, 0, GETPID) == getpid(), "GETPID after semop");
	CHECK(op1(id, 0, -1, 0) == 0 && val(id, 0) == 1, "semop -1");
	CHECK_ERR(op1(id, 1, -1, IPC_NOWAIT), EAGAIN, "decrement below 0 with IPC_NOWAIT");
	CHECK_ERR(op1(id, 0, 0, IPC_NOWAIT), EAGAIN, "wait for zero on 1 with IPC_NOWAIT");
	CHECK(op1(id, 1, 0, 0) == 0, "wait for zero on 0 returns at once");

	/* All or nothing. */
	struct sembuf two[] = {{0, -1, 0}, {1, -1, IPC_NOWAIT}};
	CHECK_ERR(semop(id, two, 2), EAGAIN, "second op blocks: EAGAIN");
	CHECK(val(id, 0) == 1, "and the first op is not applied");
	struct sembuf seq[] = {{2, 5, 0}, {2, -3, 0}, {0, -1, 0}, {0, 0, 0}};
	CHECK(semop(id, seq, 4) == 0, "ops on one semaphore apply in order");
	CHECK(val(id, 2) == 2 && val(id, 0) == 0, "cumulative result");
	setval(id, 0, SEMVMX);
	CHECK_ERR(op1(id, 0, 1, 0), ERANGE, "above SEMVMX is ERANGE");
	struct sembuf rng[] = {{1, 1, 0}, {0, 1, 0}};
	CHECK_ERR(semop(id, rng, 2), ERANGE, "ERANGE in a later op");
	CHECK(val(id, 1) == 0, "undoes the earlier op");

	CHECK_ERR(op1(id, 3, 1, 0), EFBIG, "sem_num past the set is EFBIG");
	CHECK_ERR(semop(id, two, 0), EINVAL, "nsops 0 is EINVAL");
	static struct sembuf many[501];
	CHECK_ERR(semop(id, many, 501), E2BIG, "more than SEMOPM ops is E2BIG");
	CHECK_ERR(semop(id, (void *)8, 1), EFAULT, "ops from a bad pointer");
	CHECK_ERR(op1(-1, 0, 1, 0), EINVAL, "negative ID");

	/* semtimedop. */
	struct timespec ts = {0, 50 * 1000 * 1000};
	struct sembuf dec = {1, -1, 0};
	double t0 = now();
	CHECK_ERR(semtimedop(id, &dec, 1, &ts), EAGAIN, "semtimedop times out with EAGAIN");
	CHECK(now() - t0 >= 0.045, "after the timeout");
	ts.tv_nsec = 1000000000;
	CHECK_ERR(semtimedop(id, &dec, 1, &ts), EINVAL, "tv_nsec out of range is EINVAL");
	ts.tv_nsec = 0;
	setval(id, 1, 1);
	CHECK(semtimedop(id, &dec, 1, &ts) == 0, "semtimedop that need not wait");
	semctl(id, 0, IPC_RMID);
}

static void test_waits(void)
{
	int id = semget(IPC_PRIVATE, 2, 0600);

	/* A decrement waits for another process's increment. */
	pid_t c = check_fork();
	if (c == 0)
		_exit(op1(id, 0, -2, 0) == 0 ? 0 : 1);
	CHECK(wait_count(id, 0, GETNCNT, 1), "GETNCNT counts the waiter");
	CHECK(semctl(id, 0, GETZCNT) == 0 && semctl(id, 1, GETNCNT) == 0, "only on its semaphore");
	op1(id, 0, 1, 0);
	usleep(20000);
	CHECK(semctl(id, 0, GETNCNT) == 1 && val(id, 0) == 1, "still waits at 1");
	op1(id, 0, 1, 0);
	CHECK(child_status(c) == 0, "woken when it can proceed");
	CHECK(val(id, 0) == 0 && semctl(id, 0, GETNCNT) == 0, "and took 2");
	CHECK(semctl(id, 0, GETPID) == c, "GETPID is the waiter's");

	/* A wait for zero. */
	setval(id, 1, 1);
	c = check_fork();
	if (c == 0)
		_exit(op1(id, 1, 0, 0) == 0 ? 0 : 1);
	CHECK(wait_count(id, 1, GETZCNT, 1), "GETZCNT counts the waiter");
	op1(id, 1, -1, 0);
	CHECK(child_status(c) == 0, "wait for zero woken");

	/* One wake-up can complete a chain of waiters. */
	pid_t a = check_fork();
	if (a == 0)
		_exit(op1(id, 0, -1, 0) == 0 && op1(id, 1, 1, 0) == 0 ? 0 : 1);
	pid_t b = check_fork();
	if (b == 0)
		_exit(op1(id, 1, -1, 0) == 0 ? 0 : 1);
	CHECK(wait_count(id, 0, GETNCNT, 1) && wait_count(id, 1, GETNCNT, 1), "two waiters");
	op1(id, 0, 1, 0);
	CHECK(child_status(a) == 0 && child_status(b) == 0, "both complete");

	/* Removal wakes waiters with EIDRM. */
	c = check_fork();
	if (c == 0)
		_exit(op1(id, 0, -1, 0) == -1 && errno == EIDRM ? 0 : 1);
	CHECK(wait_count(id, 0, GETNCNT, 1), "waiter before removal");
	semctl(id, 0, IPC_RMID);
	CHECK(child_status(c) == 0, "waiter gets EIDRM");
}

static void on_usr1(int sig) { (void)sig; }

static void test_eintr(void)
{
	int id = semget(IPC_PRIVATE, 1, 0600);
	for (int restart = 0; restart < 2; restart++) {
		pid_t c = check_fork();
		if (c == 0) {
			struct sigaction sa = {0};
			sa.sa_handler = on_usr1;
			sa.sa_flags = restart ? SA_RESTART : 0;
			sigaction(SIGUSR1, &sa, NULL);
			alarm(10);
			_exit(op1(id, 0, -1, 0) == -1 && errno == EINTR ? 0 : 1);
		}
		CHECK(wait_count(id, 0, GETNCNT, 1), "waiter before the signal");
		kill(c, SIGUSR1);
		CHECK(child_status(c) == 0, restart ? "semop EINTR with SA_RESTART" : "semop EINTR");
		CHECK(semctl(id, 0, GETNCNT) == 0, "the interrupted waiter is gone");
	}
	semctl(id, 0, IPC_RMID);
}

static void test_undo(void)
{
	int id = semget(IPC_PRIVATE, 2, 0600);
	setval(id, 1, 5);
	pid_t c = check_fork();
	if (c == 0) {
		if (op1(id, 0, 3, SEM_UNDO) != 0 || op1(id, 1, -2, SEM_UNDO) != 0 || op1(id, 0, -1, SEM_UNDO) != 0)
			_exit(1);
		_exit(val(id, 0) == 2 && val(id, 1) == 3 ? 0 : 2);
	}
	CHECK(child_status(c) == 0, "child changes values with SEM_UNDO");
	CHECK(val(id, 0) == 0 && val(id, 1) == 5, "its exit undoes them");
	CHECK(semctl(id, 0, GETPID) == c, "GETPID is the exited process's");

	/* SETVAL clears the adjustment of the semaphore it sets. */
	c = check_fork();
	if (c == 0) {
		op1(id, 0, 2, SEM_UNDO);
		op1(id, 1, 1, SEM_UNDO);
		setval(id, 1, 9);
		_exit(0);
	}
	CHECK(child_status(c) == 0, "second child");
	CHECK(val(id, 1) == 9, "SETVAL clears the adjustment");
	CHECK(val(id, 0) == 0, "the other adjustment is still undone");

	/* Undo clamps at 0: the child's +4 is mostly taken before it exits. */
	int go[2];
	pipe(go);
	c = check_fork();
	if (c == 0) {
		close(go[1]);
		op1(id, 0, 4, SEM_UNDO);
		char x;
		read(go[0], &x, 1);
		_exit(0);
	}
	close(go[0]);
	CHECK(wait_count(id, 0, GETVAL, 4), "child added 4");
	CHECK(op1(id, 0, -3, 0) == 0, "we take 3");
	close(go[1]);
	CHECK(child_status(c) == 0 && val(id, 0) == 0, "undo of +4 from 1 clamps at 0");

	/* The undo at exit wakes waiters. */
	int p[2];
	pipe(p);
	c = check_fork();
	if (c == 0) {
		close(p[1]);
		op1(id, 0, 1, SEM_UNDO);
		char x;
		read(p[0], &x, 1);
		_exit(0);
	}
	close(p[0]);
	CHECK(wait_count(id, 0, GETVAL, 1), "holder took the semaphore");
	pid_t w = check_fork();
	if (w == 0) {
		close(p[1]);
		_exit(op1(id, 0, 0, 0) == 0 ? 0 : 1);
	}
	CHECK(wait_count(id, 0, GETZCNT, 1), "a waiter for zero");
	close(p[1]);
	CHECK(child_status(c) == 0 && child_status(w) == 0, "the holder's exit releases the waiter");
	semctl(id, 0, IPC_RMID);

	/* An adjustment that would leave its range is ERANGE. */
	id = semget(IPC_PRIVATE, 1, 0600);
	setval(id, 0, SEMVMX);
	c = check_fork();
	if (c == 0) {
		if (op1(id, 0, -SEMVMX, SEM_UNDO) != 0 || op1(id, 0, SEMVMX, 0) != 0)
			_exit(1);
		_exit(op1(id, 0, -SEMVMX, SEM_UNDO) == -1 && errno == ERANGE && val(id, 0) == SEMVMX ? 0 : 2);
	}
	CHECK(child_status(c) == 0, "an adjustment past SEMAEM is ERANGE");
	CHECK(val(id, 0) == SEMVMX, "clamped to SEMVMX at exit");
	semctl(id, 0, IPC_RMID);
}

/* Two processes use a keyed set as a mutex around a shared counter in a
 * pipe-free way: each adds under the lock to a value kept in semaphore 1. */
static void test_mutex(void)
{
	int id = semget(key, 2, IPC_CREAT | IPC_EXCL | 0600);
	setval(id, 0, 1);
	pid_t c = check_fork();
	if (c == 0) {
		int cid = semget(key, 0, 0);
		for (int i = 0; i < 200; i++) {
			if (op1(cid, 0, -1, SEM_UNDO) != 0)
				_exit(1);
			int v = val(cid, 1);
			setval(cid, 1, v + 1);
			op1(cid, 0, 1, SEM_UNDO);
		}
		_exit(0);
	}
	for (int i = 0; i < 200; i++) {
		op1(id, 0, -1, SEM_UNDO);
		int v = val(id, 1);
		setval(id, 1, v + 1);
		op1(id, 0, 1, SEM_UNDO);
	}
	CHECK(child_status(c) == 0, "the other process ran");
	CHECK(val(id, 1) == 400, "no update lost under the semaphore");
	CHECK(val(id, 0) == 1, "the lock is free");
	semctl(id, 0, IPC_RMID);
}

static int root_set, open_set;

static void as_user(void)
{
	struct semid_ds ds;
	union semun u = {.buf = &ds};
	CHECK_ERR(op1(root_set, 0, 1, IPC_NOWAIT), EACCES, "user: semop on a 0600 root set");
	CHECK_ERR(semctl(root_set, 0, GETVAL), EACCES, "user: GETVAL without read permission");
	CHECK_ERR(semctl(root_set, 0, IPC_STAT, u), EACCES, "user: IPC_STAT without read permission");
	CHECK_ERR(setval(root_set, 0, 1), EACCES, "user: SETVAL without write permission");
	CHECK_ERR(semctl(root_set, 0, IPC_RMID), EPERM, "user: IPC_RMID of root's set");
	CHECK_ERR(semget(key, 0, 0600), EACCES, "user: semget asking rw of a 0600 set");
	CHECK(semget(key, 0, 0) == root_set, "user: semget asking nothing");
	CHECK(semctl(open_set, 0, GETVAL) == 7, "user: GETVAL on a 0604 set");
	CHECK(op1(open_set, 0, 0, IPC_NOWAIT) == -1 && errno == EAGAIN, "user: wait-for-zero needs only read");
	CHECK_ERR(op1(open_set, 0, -1, IPC_NOWAIT), EACCES, "user: decrement needs write");
	CHECK(semctl(0, 0, SEM_STAT_ANY, u) >= 0 || errno == EINVAL, "user: SEM_STAT_ANY skips the check");
}

static void unprivileged(void)
{
	root_set = semget(key, 1, IPC_CREAT | 0600);
	open_set = semget(IPC_PRIVATE, 1, 0604);
	setval(open_set, 0, 7);
	int p[2];
	pipe(p);
	pid_t pid = check_fork();
	if (pid == 0) {
		check_passed = check_failed = 0;
		if (setgroups(0, NULL) != 0 || setgid(GID) != 0 || setuid(UID) != 0) {
			printf("FAIL: unprivileged: setuid (errno=%d)\n", errno);
			check_failed++;
		} else {
			as_user();
		}
		int res[2] = {check_passed, check_failed};
		fflush(stdout);
		write(p[1], res, sizeof res);
		_exit(0);
	}
	close(p[1]);
	int res[2] = {0, 1};
	if (read(p[0], res, sizeof res) != sizeof res)
		printf("FAIL: unprivileged child died\n");
	close(p[0]);
	waitpid(pid, NULL, 0);
	check_passed += res[0];
	check_failed += res[1];
	semctl(root_set, 0, IPC_RMID);
	semctl(open_set, 0, IPC_RMID);
}

int main(void)
{
	key = 0x5c000000 | (getpid() & 0xffffff);
	test_get_ctl();
	test_semop();
	test_waits();
	test_eintr();
	test_undo();
	test_mutex();
	if (geteuid() == 0)
		unprivileged();
	else
		printf("note: not root, unprivileged checks skipped\n");
	return check_summary();
}
