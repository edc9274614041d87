/*
 * threads: pthread creation and join, mutual exclusion, thread exit,
 * raw futex wait/wake, condition variables and thread-local storage.
 */
#include "check.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

#define NTHREADS 8
#define NINCR 100000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *incr(void *arg)
{
	(void)arg;
	for (int i = 0; i < NINCR; i++) {
		pthread_mutex_lock(&mu);
		counter++;
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

static __thread int tls_value = 7;
static __thread char tls_buf[64];

static void *tls_worker(void *arg)
{
	long id = (long)arg;
	int ok = tls_value == 7; /* every thread starts from the initialiser */
	tls_value = (int)id * 100;
	snprintf(tls_buf, sizeof(tls_buf), "thread-%ld", id);
	for (int i = 0; i < 1000; i++)
		sched_yield();
	char want[64];
	snprintf(want, sizeof(want), "thread-%ld", id);
	ok = ok && tls_value == (int)id * 100 && strcmp(tls_buf, want) == 0;
	return (void *)(intptr_t)ok;
}

static void *exiter(void *arg)
{
	(void)arg;
	pthread_exit((void *)(intptr_t)1234);
	return NULL;
}

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static uint32_t fword;

static void *futex_waker(void *arg)
{
	(void)arg;
	usleep(50000);
	__atomic_store_n(&fword, 1, __ATOMIC_SEQ_CST);
	long woke = futex(&fword, FUTEX_WAKE_PRIVATE, 1, NULL);
	return (void *)woke;
}

static pthread_mutex_t cmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready, consumed;

static void *cond_consumer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cmu);
	while (!ready)
		pthread_cond_wait(&cv, &cmu);
	consumed++;
	pthread_mutex_unlock(&cmu);
	return NULL;
}

static void *tid_worker(void *arg)
{
	pid_t *out = arg;
	out[0] = getpid();
	out[1] = (pid_t)syscall(SYS_gettid);
	return NULL;
}

int main(void)
{
	pthread_t th[NTHREADS];

	/* Mutex-protected counter: any lost update means broken exclusion
	 * or broken futex wake-ups. */
	int created = 0;
	for (int i = 0; i < NTHREADS; i++)
		created += pthread_create(&th[i], NULL, incr, NULL) == 0;
	CHECK(created == NTHREADS, "pthread_create x8");
	int joined = 0;
	for (int i = 0; i < NTHREADS; i++)
		joined += pthread_join(th[i], NULL) == 0;
	CHECK(joined == NTHREADS, "pthread_join x8");
	CHECK(counter == (long)NTHREADS * NINCR, "8x100000 mutex increments all counted");

	/* Threads share the PID, have distinct TIDs. */
	pid_t ids[2];
	pthread_t t;
	CHECK(pthread_create(&t, NULL, tid_worker, ids) == 0, "create tid worker");
	pthread_join(t, NULL);
	CHECK(ids[0] == getpid(), "thread getpid equals process pid");
	CHECK(ids[1] != getpid() && ids[1] > 0, "thread gettid differs from pid");
	CHECK(syscall(SYS_gettid) == getpid(), "main thread tid equals pid");

	/* pthread_exit's value is what join sees. */
	void *ret = NULL;
	CHECK(pthread_create(&t, NULL, exiter, NULL) == 0, "create exiter");
	CHECK(pthread_join(t, &ret) == 0 && (intptr_t)ret == 1234, "pthread_exit value joined");

	/* Thread-local storage. */
	tls_value = 99;
	int tls_ok = 1;
	for (long i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, tls_worker, (void *)(i + 1));
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], &ret);
		tls_ok = tls_ok && (intptr_t)ret == 1;
	}
	CHECK(tls_ok, "__thread variables are per thread");
	CHECK(tls_value == 99, "main thread TLS untouched by others");

	/* futex: a mismatched value returns EAGAIN at once; a timeout expires
	 * with ETIMEDOUT; a wake releases a waiter. */
	fword = 0;
	CHECK_ERR(futex(&fword, FUTEX_WAIT_PRIVATE, 1, NULL), EAGAIN, "FUTEX_WAIT value mismatch EAGAIN");
	struct timespec ts = {0, 20 * 1000 * 1000}, t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_ERR(futex(&fword, FUTEX_WAIT_PRIVATE, 0, &ts), ETIMEDOUT, "FUTEX_WAIT timeout ETIMEDOUT");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
	CHECK(ns >= 20 * 1000 * 1000, "FUTEX_WAIT timeout waited at least 20ms");
	CHECK(futex(&fword, FUTEX_WAKE_PRIVATE, 1, NULL) == 0, "FUTEX_WAKE with no waiters wakes 0");

	fword = 0;
	CHECK(pthread_create(&t, NULL, futex_waker, NULL) == 0, "create futex waker");
	int woke_ok = 0;
	for (int tries = 0; tries < 1000; tries++) {
		long r = futex(&fword, FUTEX_WAIT_PRIVATE, 0, NULL);
		if (__atomic_load_n(&fword, __ATOMIC_SEQ_CST) == 1) {
			woke_ok = r == 0 || errno == EAGAIN || errno == EINTR;
			break;
		}
	}
	pthread_join(t, &ret);
	CHECK(woke_ok, "FUTEX_WAIT released by FUTEX_WAKE");
	CHECK((long)ret <= 1, "FUTEX_WAKE woke at most one");

	/* Bad futex arguments. */
	CHECK_ERR(futex(&fword, 0x7f, 0, NULL), ENOSYS, "futex unknown op ENOSYS");
	CHECK_ERR(futex((uint32_t *)1, FUTEX_WAIT_PRIVATE, 0, NULL), EINVAL, "futex unaligned EINVAL");
	CHECK_ERR(futex((uint32_t *)4096, FUTEX_WAIT_PRIVATE, 0, NULL), EFAULT, "futex unmapped EFAULT");

	/* Condition variable with a broadcast. */
	ready = 0;
	consumed = 0;
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, cond_consumer, NULL);
	usleep(20000);
	pthread_mutex_lock(&cmu);
	ready = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&cmu);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(consumed == 4, "pthread_cond_broadcast wakes all waiters");

	/* pthread_cond_timedwait times out. */
	pthread_mutex_lock(&cmu);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_nsec += 10 * 1000 * 1000;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	CHECK(pthread_cond_timedwait(&cv, &cmu, &dl) == ETIMEDOUT, "pthread_cond_timedwait ETIMEDOUT");
	pthread_mutex_unlock(&cmu);

	/* A detached thread runs without a join; exit of main waits for none. */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	CHECK(pthread_create(&t, &attr, exiter, NULL) == 0, "create detached thread");
	pthread_attr_destroy(&attr);
	usleep(10000);

	return check_summary();
}
