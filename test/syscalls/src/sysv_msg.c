/*
 * sysv_msg: System V message queues. msgget with IPC_PRIVATE and keys;
 * msgsnd/msgrcv with type selection (0, >0, <0, MSG_EXCEPT), MSG_NOERROR
 * and E2BIG, IPC_NOWAIT (ENOMSG, EAGAIN), MSG_COPY; a sender blocked on a
 * full queue (msg_qbytes) and a receiver blocked on an empty one, each
 * woken by another process; EIDRM to waiters when the queue is removed;
 * EINTR on a signal even with SA_RESTART; stale IDs; IPC_STAT/IPC_SET
 * (msg_qbytes above msgmnb needs CAP_SYS_RESOURCE)/IPC_INFO/MSG_INFO/
 * MSG_STAT; permissions as an unprivileged user; /proc/sysvipc/msg.
 */
#include "check.h"

#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <time.h>

#define UID 1000
#define GID 1000

struct msg {
	long mtype;
	char mtext[256];
};

static key_t key;

static int snd(int id, long type, const char *text, int flags)
{
	struct msg m = {.mtype = type};
	size_t n = strlen(text);
	memcpy(m.mtext, text, n);
	return msgsnd(id, &m, n, flags);
}

/* rcv receives into a buffer of size bytes and returns the text. */
static const char *rcv(int id, size_t size, long type, int flags, long *got)
{
	static struct msg m;
	memset(&m, 0, sizeof m);
	ssize_t n = msgrcv(id, &m, size, type, flags);
	if (n < 0)
		return NULL;
	m.mtext[n] = 0;
	if (got)
		*got = m.mtype;
	return m.mtext;
}

static struct msqid_ds stat_of(int id)
{
	struct msqid_ds ds;
	memset(&ds, 0xff, sizeof ds);
	if (msgctl(id, IPC_STAT, &ds) != 0)
		memset(&ds, 0xff, sizeof ds);
	return ds;
}

static long proc_value(const char *path)
{
	long v = -1;
	FILE *f = fopen(path, "r");
	if (f) {
		fscanf(f, "%ld", &v);
		fclose(f);
	}
	return v;
}

/* has_cap reports whether cap is in our effective set. */
static int has_cap(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof line, f))
		sscanf(line, "CapEff: %llx", &eff);
	if (f)
		fclose(f);
	return (eff >> cap) & 1;
}

/* wait_sleeping waits until pid is blocked in the kernel (state S). */
static void wait_sleeping(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(path, "r");
		if (f) {
			size_t n = fread(buf, 1, sizeof buf - 1, f);
			fclose(f);
			buf[n] = 0;
			char *p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] == 'S')
				break;
		}
		usleep(10000);
	}
	usleep(50000);
}

static int child_status(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void test_basic(void)
{
	CHECK_ERR(msgget(key, 0600), ENOENT, "missing key without IPC_CREAT");
	int id = msgget(IPC_PRIVATE, 0640);
	CHECK(id >= 0, "msgget IPC_PRIVATE");
	struct msqid_ds ds = stat_of(id);
	CHECK((ds.msg_perm.mode & 0777) == 0640 && ds.msg_perm.uid == geteuid() && ds.msg_perm.cuid == geteuid(),
	      "IPC_STAT perm");
	CHECK(ds.msg_qnum == 0 && ds.__msg_cbytes == 0, "empty queue");
	CHECK(ds.msg_qbytes == (msglen_t)proc_value("/proc/sys/kernel/msgmnb"), "msg_qbytes defaults to msgmnb");
	CHECK(ds.msg_stime == 0 && ds.msg_rtime == 0 && ds.msg_ctime > 0, "times");

	CHECK(snd(id, 1, "one", 0) == 0, "msgsnd type 1");
	CHECK(snd(id, 3, "three", 0) == 0, "msgsnd type 3");
	CHECK(snd(id, 2, "two", 0) == 0, "msgsnd type 2");
	CHECK(snd(id, 3, "three-b", 0) == 0, "msgsnd type 3 again");
	CHECK(snd(id, 1, "one-b", 0) == 0, "msgsnd type 1 again");
	ds = stat_of(id);
	CHECK(ds.msg_qnum == 5 && ds.__msg_cbytes == 3 + 5 + 3 + 7 + 5, "qnum and cbytes");
	CHECK(ds.msg_lspid == getpid() && ds.msg_stime > 0, "lspid and stime");

	long t = 0;
	const char *s = rcv(id, 256, 3, 0, &t);
	CHECK(s && t == 3 && strcmp(s, "three") == 0, "type 3 takes the first of that type");
	s = rcv(id, 256, -2, 0, &t);
	CHECK(s && t == 1 && strcmp(s, "one") == 0, "type -2 takes the lowest type first");
	s = rcv(id, 256, 1, MSG_EXCEPT, &t);
	CHECK(s && t == 2 && strcmp(s, "two") == 0, "MSG_EXCEPT takes the first of another type");
	s = rcv(id, 256, 0, 0, &t);
	CHECK(s && t == 3 && strcmp(s, "three-b") == 0, "type 0 takes the first message");
	CHECK(rcv(id, 256, 7, IPC_NOWAIT, NULL) == NULL && errno == ENOMSG, "no such type with IPC_NOWAIT is ENOMSG");
	ds = stat_of(id);
	CHECK(ds.msg_lrpid == getpid() && ds.msg_rtime > 0 && ds.msg_qnum == 1, "lrpid and rtime");

	/* Too long for the buffer. */
	CHECK(rcv(id, 2, 0, 0, NULL) == NULL && errno == E2BIG, "short buffer is E2BIG");
	CHECK(stat_of(id).msg_qnum == 1, "the message stays after E2BIG");
	s = rcv(id, 2, 0, MSG_NOERROR, &t);
	CHECK(s && strcmp(s, "on") == 0, "MSG_NOERROR truncates");
	CHECK(stat_of(id).msg_qnum == 0, "a truncated message is taken");
	CHECK(rcv(id, 256, 0, IPC_NOWAIT, NULL) == NULL && errno == ENOMSG, "empty queue with IPC_NOWAIT is ENOMSG");

	/* A message of zero bytes and one of msgmax bytes. */
	CHECK(snd(id, 5, "", 0) == 0, "empty message");
	ssize_t n = msgrcv(id, &(struct msg){0}, 256, 5, IPC_NOWAIT);
	CHECK(n == 0, "empty message received");
	long msgmax = proc_value("/proc/sys/kernel/msgmax");
	struct {
		long mtype;
		char text[65536];
	} *big = calloc(1, sizeof *big);
	big->mtype = 9;
	memset(big->text, 'x', msgmax);
	CHECK(msgsnd(id, big, msgmax, 0) == 0, "msgmax bytes");
	CHECK_ERR(msgsnd(id, big, msgmax + 1, 0), EINVAL, "more than msgmax is EINVAL");
	CHECK(msgrcv(id, big, msgmax, 0, 0) == msgmax && big->text[msgmax - 1] == 'x', "msgmax bytes received");
	free(big);

	/* Bad arguments. */
	CHECK_ERR(snd(id, 0, "x", 0), EINVAL, "mtype 0 is EINVAL");
	CHECK_ERR(snd(id, -5, "x", 0), EINVAL, "negative mtype is EINVAL");
	CHECK_ERR(msgsnd(id, (void *)8, 1, 0), EFAULT, "msgsnd from a bad pointer");
	CHECK_ERR(msgrcv(id, &(struct msg){0}, -1, 0, IPC_NOWAIT), EINVAL, "negative msgsz is EINVAL");
	CHECK_ERR(msgsnd(-1, &(struct msg){.mtype = 1}, 1, 0), EINVAL, "negative ID");
	CHECK_ERR(msgctl(id, 999, &ds), EINVAL, "unknown command");
	CHECK_ERR(msgctl(id, IPC_STAT, (void *)8), EFAULT, "IPC_STAT to a bad buffer");

	/* MSG_COPY reads by position and leaves the queue alone. */
	snd(id, 4, "first", 0);
	snd(id, 6, "second", 0);
	CHECK(rcv(id, 256, 1, MSG_COPY, NULL) == NULL && errno == EINVAL, "MSG_COPY needs IPC_NOWAIT");
	errno = 0;
	s = rcv(id, 256, 1, MSG_COPY | IPC_NOWAIT, &t);
	if (s == NULL && errno == ENOSYS) {
		printf("note: MSG_COPY not in this kernel\n");
	} else {
		CHECK(s && t == 6 && strcmp(s, "second") == 0, "MSG_COPY of message 1");
		CHECK(stat_of(id).msg_qnum == 2, "MSG_COPY leaves the queue");
		CHECK(rcv(id, 256, 2, MSG_COPY | IPC_NOWAIT, NULL) == NULL && errno == ENOMSG, "MSG_COPY past the end");
	}
	CHECK(msgctl(id, IPC_RMID, NULL) == 0, "IPC_RMID");
	CHECK_ERR(msgctl(id, IPC_STAT, &ds), EINVAL, "stale ID after IPC_RMID");
	CHECK_ERR(snd(id, 1, "x", 0), EINVAL, "msgsnd to a stale ID");
	CHECK_ERR(msgctl(id, IPC_RMID, NULL), EINVAL, "IPC_RMID twice");
}

static void test_keys_and_ctl(void)
{
	int id = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
	CHECK(id >= 0, "msgget key IPC_CREAT|IPC_EXCL");
	CHECK_ERR(msgget(key, IPC_CREAT | IPC_EXCL | 0600), EEXIST, "IPC_EXCL on an existing key");
	CHECK(msgget(key, 0) == id, "key finds the queue");

	struct msqid_ds ds = stat_of(id);
	ds.msg_perm.mode = 0644;
	ds.msg_qbytes = 100;
	CHECK(msgctl(id, IPC_SET, &ds) == 0, "IPC_SET");
	ds = stat_of(id);
	CHECK((ds.msg_perm.mode & 0777) == 0644 && ds.msg_qbytes == 100, "IPC_SET mode and msg_qbytes");

	/* A full queue: EAGAIN, then a blocked sender woken by a receiver. */
	char fill[61];
	memset(fill, 'f', 60);
	fill[60] = 0;
	CHECK(snd(id, 1, fill, 0) == 0, "60 bytes fit in 100");
	CHECK_ERR(snd(id, 1, fill, IPC_NOWAIT), EAGAIN, "full queue with IPC_NOWAIT is EAGAIN");
	pid_t pid = check_fork();
	if (pid == 0)
		_exit(snd(id, 2, fill, 0) == 0 ? 0 : 1);
	wait_sleeping(pid);
	CHECK(stat_of(id).msg_qnum == 1, "the sender waits");
	CHECK(rcv(id, 256, 1, 0, NULL) != NULL, "receive makes room");
	CHECK(child_status(pid) == 0, "the blocked sender completes");
	CHECK(rcv(id, 256, 2, IPC_NOWAIT, NULL) != NULL, "its message arrived");

	ds = stat_of(id);
	ds.msg_qbytes = proc_value("/proc/sys/kernel/msgmnb") * 2;
	if (has_cap(CAP_SYS_RESOURCE))
		CHECK(msgctl(id, IPC_SET, &ds) == 0, "CAP_SYS_RESOURCE raises msg_qbytes above msgmnb");
	else
		CHECK_ERR(msgctl(id, IPC_SET, &ds), EPERM, "msg_qbytes above msgmnb needs CAP_SYS_RESOURCE");

	/* IPC_INFO, MSG_INFO, MSG_STAT. */
	struct msginfo mi;
	int maxidx = msgctl(0, IPC_INFO, (struct msqid_ds *)&mi);
	CHECK(maxidx >= 0 && mi.msgmax == proc_value("/proc/sys/kernel/msgmax") &&
	          mi.msgmnb == proc_value("/proc/sys/kernel/msgmnb") &&
	          mi.msgmni == proc_value("/proc/sys/kernel/msgmni"),
	      "IPC_INFO limits match /proc/sys/kernel");
	snd(id, 1, "abc", 0);
	CHECK(msgctl(0, MSG_INFO, (struct msqid_ds *)&mi) == maxidx && mi.msgpool >= 1 && mi.msgmap >= 1 && mi.msgtql >= 3,
	      "MSG_INFO counts queues, messages and bytes");
	int found = 0;
	for (int i = 0; i <= maxidx; i++) {
		struct msqid_ds d;
		if (msgctl(i, MSG_STAT, &d) == id)
			found = d.msg_qnum == 1;
	}
	CHECK(found, "MSG_STAT by index returns the ID");

	FILE *f = fopen("/proc/sysvipc/msg", "r");
	char line[512];
	int seen = 0;
	while (f && fgets(line, sizeof line, f)) {
		int k, i;
		unsigned mode;
		unsigned long cbytes, qnum;
		if (sscanf(line, "%d %d %o %lu %lu", &k, &i, &mode, &cbytes, &qnum) == 5 && i == id)
			seen = k == key && mode == 0644 && cbytes == 3 && qnum == 1;
	}
	if (f)
		fclose(f);
	CHECK(seen, "/proc/sysvipc/msg lists the queue");
	msgctl(id, IPC_RMID, NULL);
}

/* Two processes: the child finds the queue by key, waits for a type and
 * answers with another. */
static void test_two_processes(void)
{
	int id = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
	pid_t pid = check_fork();
	if (pid == 0) {
		int cid = msgget(key, 0);
		struct msg m;
		ssize_t n = msgrcv(cid, &m, sizeof m.mtext, 7, 0);
		if (n != 4 || memcmp(m.mtext, "ping", 4) != 0)
			_exit(1);
		_exit(snd(cid, 8, "pong", 0) == 0 ? 0 : 2);
	}
	wait_sleeping(pid);
	CHECK(snd(id, 7, "ping", 0) == 0, "send to the waiting child");
	long t;
	const char *s = rcv(id, 256, 8, 0, &t);
	CHECK(s && strcmp(s, "pong") == 0, "the child answers");
	CHECK(child_status(pid) == 0, "the child got the right message");
	struct msqid_ds ds = stat_of(id);
	CHECK(ds.msg_lspid == pid && ds.msg_lrpid == getpid(), "lspid is the child's, lrpid ours");
	msgctl(id, IPC_RMID, NULL);
}

static void on_usr1(int sig) { (void)sig; }

static void test_wakeups(void)
{
	/* A receiver waiting for any type takes the next message. */
	int id = msgget(IPC_PRIVATE, 0600);
	pid_t r = check_fork();
	if (r == 0) {
		struct msg m;
		ssize_t n = msgrcv(id, &m, sizeof m.mtext, 0, 0);
		_exit(n == 10 && m.mtype == 3 && memcmp(m.mtext, "0123456789", 10) == 0 ? 0 : 1);
	}
	struct msqid_ds ds = stat_of(id);
	ds.msg_qbytes = 10;
	msgctl(id, IPC_SET, &ds);
	wait_sleeping(r);
	snd(id, 3, "0123456789", 0);
	CHECK(child_status(r) == 0, "a waiting receiver takes the message sent");

	/* Removal wakes a receiver and a sender with EIDRM. */
	r = check_fork();
	if (r == 0) {
		struct msg m;
		_exit(msgrcv(id, &m, sizeof m.mtext, 99, 0) == -1 && errno == EIDRM ? 0 : 1);
	}
	snd(id, 1, "0123456789", 0);
	pid_t s = check_fork();
	if (s == 0)
		_exit(snd(id, 2, "x", 0) == -1 && errno == EIDRM ? 0 : 1);
	wait_sleeping(r);
	wait_sleeping(s);
	CHECK(msgctl(id, IPC_RMID, NULL) == 0, "remove with waiters");
	CHECK(child_status(r) == 0, "waiting receiver gets EIDRM");
	CHECK(child_status(s) == 0, "waiting sender gets EIDRM");

	/* A signal interrupts msgrcv with EINTR, even with SA_RESTART. */
	id = msgget(IPC_PRIVATE, 0600);
	for (int restart = 0; restart < 2; restart++) {
		pid_t c = check_fork();
		if (c == 0) {
			struct sigaction sa = {0};
			sa.sa_handler = on_usr1;
			sa.sa_flags = restart ? SA_RESTART : 0;
			sigaction(SIGUSR1, &sa, NULL);
			alarm(10);
			struct msg m;
			_exit(msgrcv(id, &m, sizeof m.mtext, 0, 0) == -1 && errno == EINTR ? 0 : 1);
		}
		wait_sleeping(c);
		kill(c, SIGUSR1);
		CHECK(child_status(c) == 0, restart ? "msgrcv EINTR with SA_RESTART" : "msgrcv EINTR");
	}
	msgctl(id, IPC_RMID, NULL);
}

static int root_q, open_q;

static void as_user(void)
{
	struct msqid_ds ds;
	CHECK_ERR(snd(root_q, 1, "x", IPC_NOWAIT), EACCES, "user: msgsnd to a 0600 root queue");
	CHECK(rcv(root_q, 16, 0, IPC_NOWAIT, NULL) == NULL && errno == EACCES, "user: msgrcv from a 0600 root queue");
	CHECK_ERR(msgctl(root_q, IPC_STAT, &ds), EACCES, "user: IPC_STAT without read permission");
	CHECK_ERR(msgctl(root_q, IPC_RMID, NULL), EPERM, "user: IPC_RMID of root's queue");
	CHECK_ERR(msgget(key, 0600), EACCES, "user: msgget asking rw of a 0600 queue");
	CHECK(msgget(key, 0) == root_q, "user: msgget asking nothing");
	CHECK(rcv(open_q, 16, 0, IPC_NOWAIT, NULL) != NULL, "user: msgrcv from a 0604 queue");
	CHECK_ERR(snd(open_q, 1, "x", IPC_NOWAIT), EACCES, "user: msgsnd to a 0604 queue");
	int mine = msgget(IPC_PRIVATE, 0600);
	ds = stat_of(mine);
	ds.msg_qbytes = proc_value("/proc/sys/kernel/msgmnb") + 1;
	CHECK_ERR(msgctl(mine, IPC_SET, &ds), EPERM, "user: msg_qbytes above msgmnb needs CAP_SYS_RESOURCE");
	ds.msg_qbytes = 50;
	CHECK(msgctl(mine, IPC_SET, &ds) == 0, "user: lowers msg_qbytes on its own queue");
	CHECK(msgctl(mine, IPC_RMID, NULL) == 0, "user: removes its own queue");
}

static void unprivileged(void)
{
	root_q = msgget(key, IPC_CREAT | 0600);
	open_q = msgget(IPC_PRIVATE, 0604);
	snd(open_q, 1, "hello", 0);
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
	msgctl(root_q, IPC_RMID, NULL);
	msgctl(open_q, IPC_RMID, NULL);
}

int main(void)
{
	key = 0x5b000000 | (getpid() & 0xffffff);
	test_basic();
	test_keys_and_ctl();
	test_two_processes();
	test_wakeups();
	if (geteuid() == 0)
		unprivileged();
	else
		printf("note: not root, unprivileged checks skipped\n");
	return check_summary();
}
