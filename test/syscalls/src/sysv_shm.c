/*
 * sysv_shm: System V shared memory. shmget with IPC_PRIVATE and keys,
 * IPC_CREAT/IPC_EXCL, size checks; shmat at a chosen address, with
 * SHM_RND, SHM_REMAP and SHM_RDONLY; shmdt; shm_nattch through attach,
 * detach, fork, exec and exit; IPC_RMID of an attached segment (SHM_DEST,
 * the key forgotten, the memory kept until the last detach); stale IDs;
 * IPC_STAT/IPC_SET/IPC_INFO/SHM_INFO/SHM_STAT; permissions as an
 * unprivileged user; /proc/sysvipc/shm and /proc/self/maps; two processes
 * sharing a segment by key.
 */
#include "check.h"

#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>

#define PAGE 4096
#define UID 1000
#define GID 1000

static key_t key;

static struct shmid_ds stat_of(int id)
{
	struct shmid_ds ds;
	memset(&ds, 0xff, sizeof ds);
	if (shmctl(id, IPC_STAT, &ds) != 0)
		memset(&ds, 0xff, sizeof ds);
	return ds;
}

static long nattch(int id)
{
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) != 0)
		return -1;
	return (long)ds.shm_nattch;
}

/* A free, page-aligned range of n pages. */
static void *free_range(size_t n)
{
	void *p = mmap(NULL, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(p, n * PAGE);
	return p;
}

static sigjmp_buf jb;
static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

/* writes reports whether a one-byte write at p succeeds. */
static int writes(volatile char *p)
{
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, &old);
	int ok = 0;
	if (sigsetjmp(jb, 1) == 0) {
		*p = 1;
		ok = 1;
	}
	sigaction(SIGSEGV, &old, NULL);
	return ok;
}

/* in_child runs fn in a forked child and adds its checks to ours. */
static void in_child(const char *what, int (*setup)(void), void (*fn)(int), int arg)
{
	int p[2];
	pipe(p);
	pid_t pid = check_fork();
	if (pid == 0) {
		close(p[0]);
		check_passed = check_failed = 0;
		if (setup && setup() != 0) {
			printf("FAIL: %s: setup failed (errno=%d)\n", what, errno);
			check_failed++;
		} else {
			fn(arg);
		}
		int res[2] = {check_passed, check_failed};
		fflush(stdout);
		write(p[1], res, sizeof res);
		_exit(0);
	}
	close(p[1]);
	int res[2] = {0, 1};
	if (read(p[0], res, sizeof res) != sizeof res)
		printf("FAIL: %s: child died\n", what);
	close(p[0]);
	waitpid(pid, NULL, 0);
	check_passed += res[0];
	check_failed += res[1];
}

static int become_user(void)
{
	if (setgroups(0, NULL) != 0 || setgid(GID) != 0 || setuid(UID) != 0)
		return -1;
	return 0;
}

static void test_get(void)
{
	CHECK_ERR(shmget(IPC_PRIVATE, 0, 0600), EINVAL, "size 0 is EINVAL");
	CHECK_ERR(shmget(key, PAGE, 0600), ENOENT, "missing key without IPC_CREAT is ENOENT");

	int id = shmget(IPC_PRIVATE, 10000, 0640);
	CHECK(id >= 0, "shmget IPC_PRIVATE");
	struct shmid_ds ds = stat_of(id);
	CHECK(ds.shm_segsz == 10000, "shm_segsz is the size asked for");
	CHECK(ds.shm_perm.__key == IPC_PRIVATE, "key 0");
	CHECK((ds.shm_perm.mode & 0777) == 0640, "mode from shmflg");
	CHECK(ds.shm_perm.uid == geteuid() && ds.shm_perm.cuid == geteuid(), "uid and cuid are the caller's");
	CHECK(ds.shm_perm.gid == getegid() && ds.shm_perm.cgid == getegid(), "gid and cgid are the caller's");
	CHECK(ds.shm_cpid == getpid(), "shm_cpid");
	CHECK(ds.shm_lpid == 0 && ds.shm_nattch == 0, "no attach yet");
	CHECK(ds.shm_atime == 0 && ds.shm_dtime == 0, "atime and dtime zero");
	CHECK(ds.shm_ctime > 0 && labs(ds.shm_ctime - time(NULL)) < 5, "ctime is now");
	int id2 = shmget(IPC_PRIVATE, 10000, 0640);
	CHECK(id2 >= 0 && id2 != id, "IPC_PRIVATE always makes a new segment");
	shmctl(id2, IPC_RMID, NULL);

	int k = shmget(key, 3 * PAGE, IPC_CREAT | IPC_EXCL | 0600);
	CHECK(k >= 0, "shmget key IPC_CREAT|IPC_EXCL");
	CHECK_ERR(shmget(key, PAGE, IPC_CREAT | IPC_EXCL | 0600), EEXIST, "IPC_EXCL on an existing key");
	CHECK(shmget(key, PAGE, IPC_CREAT | 0600) == k, "IPC_CREAT finds the existing segment");
	CHECK(shmget(key, 0, 0) == k, "size 0 finds it");
	CHECK_ERR(shmget(key, 3 * PAGE + 1, 0), EINVAL, "larger than the segment is EINVAL");
	CHECK(stat_of(k).shm_perm.__key == key, "IPC_STAT shows the key");
	shmctl(k, IPC_RMID, NULL);
	CHECK_ERR(shmget(key, 0, 0), ENOENT, "key gone after IPC_RMID");

	/* A removed ID stays invalid. */
	CHECK_ERR(shmctl(k, IPC_STAT, &ds), EINVAL, "IPC_STAT of a removed segment is EINVAL");
	CHECK_ERR(shmat(k, NULL, 0), EINVAL, "shmat of a removed segment is EINVAL");
	CHECK_ERR(shmctl(k, IPC_RMID, NULL), EINVAL, "IPC_RMID twice is EINVAL");
	CHECK_ERR(shmctl(-1, IPC_STAT, &ds), EINVAL, "negative ID is EINVAL");
	CHECK_ERR(shmctl(id, 999, &ds), EINVAL, "unknown command is EINVAL");
	CHECK_ERR(shmctl(id, IPC_STAT, (void *)8), EFAULT, "IPC_STAT to a bad buffer is EFAULT");
	shmctl(id, IPC_RMID, NULL);
}

static void test_attach(void)
{
	int id = shmget(IPC_PRIVATE, 2 * PAGE + 100, 0600);
	char *a = shmat(id, NULL, 0);
	CHECK(a != (void *)-1, "shmat");
	CHECK(((uintptr_t)a & (PAGE - 1)) == 0, "attached page aligned");
	int zero = 1;
	for (int i = 0; i < 3 * PAGE; i++)
		zero &= a[i] == 0;
	CHECK(zero, "new segment reads zero, whole last page");
	char *b = shmat(id, NULL, 0);
	CHECK(b != (void *)-1 && b != a, "second attach elsewhere");
	strcpy(a + PAGE + 5, "shared");
	CHECK(strcmp(b + PAGE + 5, "shared") == 0, "both attachments see one memory");
	struct shmid_ds ds = stat_of(id);
	CHECK(ds.shm_nattch == 2, "nattch 2");
	CHECK(ds.shm_lpid == getpid(), "lpid after attach");
	CHECK(ds.shm_atime > 0, "atime set by attach");
	CHECK(shmdt(b) == 0, "shmdt");
	CHECK(nattch(id) == 1, "nattch 1 after shmdt");
	CHECK(stat_of(id).shm_dtime > 0, "dtime set by detach");
	CHECK_ERR(shmdt(b), EINVAL, "shmdt of a detached address is EINVAL");
	CHECK_ERR(shmdt(a + 1), EINVAL, "shmdt of an unaligned address is EINVAL");
	CHECK_ERR(shmdt(a + PAGE), EINVAL, "shmdt inside an attachment is EINVAL");

	/* /proc/self/maps names the segment by its key, as a deleted file. */
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], want[32];
	int seen = 0;
	snprintf(want, sizeof want, "%lx-", (unsigned long)a);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, want, strlen(want)) == 0)
			seen = strstr(line, "rw-s") && strstr(line, "/SYSV00000000 (deleted)");
	if (f)
		fclose(f);
	CHECK(seen, "/proc/self/maps shows rw-s /SYSV00000000 (deleted)");

	/* Read-only attachments. */
	char *r = shmat(id, NULL, SHM_RDONLY);
	CHECK(r != (void *)-1 && r[PAGE + 5] == 's', "SHM_RDONLY attach reads");
	CHECK(!writes(r), "SHM_RDONLY attach faults on write");
	CHECK_ERR(mprotect(r, PAGE, PROT_READ | PROT_WRITE), EACCES, "SHM_RDONLY attach cannot be made writable");
	CHECK(writes(a), "read-write attach writes");
	shmdt(r);

	/* Chosen addresses. */
	char *at = free_range(4);
	CHECK(shmat(id, at, 0) == at, "shmat at a free aligned address");
	CHECK_ERR(shmat(id, at, 0), EINVAL, "shmat over a mapping without SHM_REMAP");
	CHECK(shmat(id, at, SHM_REMAP) == at, "SHM_REMAP replaces the mapping");
	CHECK(nattch(id) == 2, "the replaced attachment is gone");
	shmdt(at);
	CHECK_ERR(shmat(id, at + 100, 0), EINVAL, "unaligned address without SHM_RND");
	CHECK(shmat(id, at + 100, SHM_RND) == at, "SHM_RND rounds down");
	CHECK(at[PAGE + 5] == 's', "content at the rounded address");
	shmdt(at);
	CHECK_ERR(shmat(id, NULL, SHM_REMAP), EINVAL, "SHM_REMAP without an address");
	CHECK_ERR(shmat(-1, NULL, 0), EINVAL, "shmat of a negative ID");

	/* Pieces left by mprotect are detached together. */
	char *p = shmat(id, NULL, 0);
	CHECK(mprotect(p + PAGE, PAGE, PROT_READ) == 0, "mprotect splits the attachment");
	CHECK(shmdt(p) == 0, "shmdt of a split attachment");
	CHECK(mmap(p, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == p,
	      "every piece is unmapped");
	munmap(p, 3 * PAGE);
	CHECK(nattch(id) == 1, "nattch back to 1");

	/* IPC_RMID while attached. */
	CHECK(shmctl(id, IPC_RMID, NULL) == 0, "IPC_RMID while attached");
	ds = stat_of(id);
	CHECK(ds.shm_nattch == 1 && (ds.shm_perm.mode & SHM_DEST), "SHM_DEST set, still attached");
	CHECK(strcmp(a + PAGE + 5, "shared") == 0, "memory kept while attached");
	b = shmat(id, NULL, 0);
	CHECK(b != (void *)-1 && strcmp(b + PAGE + 5, "shared") == 0, "a destroyed segment can still be attached");
	shmdt(b);
	CHECK(shmdt(a) == 0, "last detach");
	CHECK_ERR(shmctl(id, IPC_STAT, &ds), EINVAL, "segment gone after the last detach");
}

static void test_rmid_key(void)
{
	int id = shmget(key, PAGE, IPC_CREAT | 0600);
	char *a = shmat(id, NULL, 0);
	a[0] = 42;
	shmctl(id, IPC_RMID, NULL);
	struct shmid_ds ds = stat_of(id);
	CHECK(ds.shm_perm.__key == IPC_PRIVATE, "removed segment's key becomes IPC_PRIVATE");
	CHECK_ERR(shmget(key, 0, 0), ENOENT, "removed segment is not found by key");
	int id2 = shmget(key, PAGE, IPC_CREAT | IPC_EXCL | 0600);
	CHECK(id2 >= 0 && id2 != id, "the key makes a new segment");
	char *b = shmat(id2, NULL, 0);
	CHECK(b != (void *)-1 && b[0] == 0 && a[0] == 42, "new segment is separate");
	shmdt(b);
	shmctl(id2, IPC_RMID, NULL);
	shmdt(a);
}

static int gid;
static char *gaddr;

static void child_sees(int v)
{
	CHECK(gaddr[0] == v, "child sees parent's write through the inherited attachment");
	CHECK(nattch(gid) == 2, "fork adds an attachment");
	gaddr[1] = 77;
}

static void test_fork_exec(const char *self)
{
	gid = shmget(IPC_PRIVATE, PAGE, 0600);
	gaddr = shmat(gid, NULL, 0);
	gaddr[0] = 9;
	in_child("fork", NULL, child_sees, 9);
	CHECK(gaddr[1] == 77, "parent sees the child's write");
	CHECK(nattch(gid) == 1, "child's exit detaches");

	/* exec drops the attachment: the new image reports nattch. */
	int p[2];
	pipe(p);
	pid_t pid = check_fork();
	if (pid == 0) {
		char fd[16], id[16];
		snprintf(fd, sizeof fd, "%d", p[1]);
		snprintf(id, sizeof id, "%d", gid);
		execl(self, self, "exec-child", fd, id, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	long n = -2;
	CHECK(read(p[0], &n, sizeof n) == sizeof n && n == 1, "exec detaches: nattch 1 after the child's exec");
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec child exited 0");

	/* SHM_INFO and the STAT commands see it. */
	struct shm_info si;
	int maxidx = shmctl(0, SHM_INFO, (struct shmid_ds *)&si);
	CHECK(maxidx >= 0 && si.used_ids >= 1 && si.shm_tot >= 1, "SHM_INFO");
	int found = 0;
	for (int i = 0; i <= maxidx; i++) {
		struct shmid_ds ds;
		int r = shmctl(i, SHM_STAT, &ds);
		if (r == gid)
			found = ds.shm_segsz == PAGE;
	}
	CHECK(found, "SHM_STAT by index returns the ID");
	struct shmid_ds ds;
	CHECK_ERR(shmctl(maxidx + 1, SHM_STAT, &ds), EINVAL, "SHM_STAT of an unused index");
	struct shminfo lim;
	CHECK(shmctl(0, IPC_INFO, (struct shmid_ds *)&lim) == maxidx, "IPC_INFO returns the highest index");
	FILE *f = fopen("/proc/sys/kernel/shmmni", "r");
	unsigned long mni = 0;
	if (f) {
		fscanf(f, "%lu", &mni);
		fclose(f);
	}
	CHECK(lim.shmmni == mni && lim.shmmin == 1, "IPC_INFO limits match /proc/sys/kernel");

	/* /proc/sysvipc/shm has a line for it. */
	f = fopen("/proc/sysvipc/shm", "r");
	char line[512];
	int seen = 0;
	while (f && fgets(line, sizeof line, f)) {
		int k, i;
		unsigned mode;
		unsigned long size;
		if (sscanf(line, "%d %d %o %lu", &k, &i, &mode, &size) == 4 && i == gid)
			seen = size == PAGE && mode == 0600;
	}
	if (f)
		fclose(f);
	CHECK(seen, "/proc/sysvipc/shm lists the segment");

	/* IPC_SET and SHM_LOCK. */
	ds = stat_of(gid);
	ds.shm_perm.mode = 0644;
	CHECK(shmctl(gid, IPC_SET, &ds) == 0 && (stat_of(gid).shm_perm.mode & 0777) == 0644, "IPC_SET mode");
	CHECK_ERR(shmctl(gid, IPC_SET, (void *)8), EFAULT, "IPC_SET from a bad buffer");
	if (geteuid() == 0) {
		CHECK(shmctl(gid, SHM_LOCK, NULL) == 0 && (stat_of(gid).shm_perm.mode & SHM_LOCKED), "SHM_LOCK");
		CHECK(shmctl(gid, SHM_UNLOCK, NULL) == 0 && !(stat_of(gid).shm_perm.mode & SHM_LOCKED), "SHM_UNLOCK");
	}
	shmdt(gaddr);
	shmctl(gid, IPC_RMID, NULL);
}

/* Two processes: the child finds the segment by key and writes it. */
static void test_two_processes(void)
{
	int id = shmget(key, PAGE, IPC_CREAT | IPC_EXCL | 0600);
	volatile int *shared = shmat(id, NULL, 0);
	int go[2];
	pipe(go);
	pid_t pid = check_fork();
	if (pid == 0) {
		int cid = shmget(key, 0, 0);
		volatile int *mine = shmat(cid, NULL, 0);
		char c;
		read(go[0], &c, 1);
		for (int i = 1; i <= 1000; i++)
			mine[i] = i;
		mine[0] = cid == id ? 1 : 2;
		shmdt((void *)mine);
		_exit(0);
	}
	write(go[1], "x", 1);
	int st;
	waitpid(pid, &st, 0);
	int ok = shared[0] == 1;
	for (int i = 1; i <= 1000; i++)
		ok &= shared[i] == i;
	CHECK(ok, "a second process attached by key writes what the first reads");
	CHECK(nattch(id) == 1, "its exit detached it");
	shmdt((void *)shared);
	shmctl(id, IPC_RMID, NULL);
}

static int uid_seg, open_seg;

static void as_user(int unused)
{
	(void)unused;
	struct shmid_ds ds;
	CHECK_ERR(shmat(uid_seg, NULL, 0), EACCES, "user: attach of a 0600 root segment");
	CHECK_ERR(shmat(uid_seg, NULL, SHM_RDONLY), EACCES, "user: read-only attach of a 0600 root segment");
	CHECK_ERR(shmctl(uid_seg, IPC_STAT, &ds), EACCES, "user: IPC_STAT without read permission");
	CHECK(shmctl(0, SHM_STAT_ANY, &ds) >= 0 || errno == EINVAL, "user: SHM_STAT_ANY skips the check");
	CHECK_ERR(shmctl(uid_seg, IPC_RMID, NULL), EPERM, "user: IPC_RMID of root's segment");
	CHECK_ERR(shmctl(uid_seg, IPC_SET, &ds), EPERM, "user: IPC_SET of root's segment");
	CHECK_ERR(shmget(key, 0, 0600), EACCES, "user: shmget asking for rw of a 0600 segment");
	CHECK(shmget(key, 0, 0) == uid_seg, "user: shmget asking nothing");
	char *r = shmat(open_seg, NULL, SHM_RDONLY);
	CHECK(r != (void *)-1, "user: read-only attach of a 0604 segment");
	CHECK_ERR(shmat(open_seg, NULL, 0), EACCES, "user: read-write attach of a 0604 segment");
	if (r != (void *)-1)
		shmdt(r);
	int mine = shmget(IPC_PRIVATE, PAGE, 0600);
	CHECK(mine >= 0 && stat_of(mine).shm_perm.uid == UID, "user: own segment owned by the user");
	CHECK(shmctl(mine, IPC_RMID, NULL) == 0, "user: removes its own segment");
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "exec-child") == 0) {
		long n = nattch(atoi(argv[3]));
		write(atoi(argv[2]), &n, sizeof n);
		return 0;
	}
	key = 0x5a000000 | (getpid() & 0xffffff);
	test_get();
	test_attach();
	test_rmid_key();
	test_fork_exec(argv[0]);
	test_two_processes();
	if (geteuid() == 0) {
		uid_seg = shmget(key, PAGE, IPC_CREAT | 0600);
		open_seg = shmget(IPC_PRIVATE, PAGE, 0604);
		in_child("unprivileged", become_user, as_user, 0);
		shmctl(uid_seg, IPC_RMID, NULL);
		shmctl(open_seg, IPC_RMID, NULL);
	} else {
		printf("note: not root, unprivileged checks skipped\n");
	}
	return check_summary();
}
