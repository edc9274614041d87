/*
 * memory: anonymous, private-file and shared mappings, protections and the
 * faults they cause, munmap, brk, mremap, a huge PROT_NONE reservation,
 * MAP_FIXED, madvise(MADV_DONTNEED), copy-on-write across fork and shared
 * anonymous memory between processes.
 */
#include "check.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096UL

static sigjmp_buf jb;
static volatile int fault_sig;
static volatile uintptr_t fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_sig = sig;
	fault_addr = (uintptr_t)si->si_addr;
	siglongjmp(jb, 1);
}

/* probe touches one byte and reports the signal it raised, 0 if none. */
static int probe(volatile char *p, int write)
{
	fault_sig = 0;
	if (sigsetjmp(jb, 1) == 0) {
		if (write)
			*p = 0x5a;
		else
			(void)*p;
		return 0;
	}
	return fault_sig;
}

static int all_bytes(const char *p, size_t n, char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	/* Anonymous private memory starts zeroed and is writable. */
	size_t n = 16 * PG;
	char *a = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(a != MAP_FAILED, "mmap anonymous");
	CHECK(((uintptr_t)a & (PG - 1)) == 0, "mmap result page aligned");
	CHECK(all_bytes(a, n, 0), "anonymous memory zero filled");
	memset(a, 0xab, n);
	CHECK(all_bytes(a, n, (char)0xab), "anonymous memory holds writes");

	/* mprotect: read-only makes a write fault at the exact address; back
	 * to read-write works again. */
	CHECK(mprotect(a + PG, PG, PROT_READ) == 0, "mprotect PROT_READ");
	CHECK(probe(a + PG + 10, 0) == 0, "read of read-only page allowed");
	CHECK(probe(a + PG + 10, 1) == SIGSEGV, "write to read-only page faults");
	CHECK(fault_addr == (uintptr_t)(a + PG + 10), "fault address is the written byte");
	CHECK(probe(a + 2 * PG, 1) == 0, "neighbouring page still writable");
	CHECK(mprotect(a + PG, PG, PROT_NONE) == 0, "mprotect PROT_NONE");
	CHECK(probe(a + PG, 0) == SIGSEGV, "read of PROT_NONE page faults");
	CHECK(mprotect(a + PG, PG, PROT_READ | PROT_WRITE) == 0, "mprotect back to RW");
	CHECK(probe(a + PG, 1) == 0 && a[PG] == 0x5a, "page writable again, contents kept");
	CHECK_ERR(mprotect(a + 1, PG, PROT_READ), EINVAL, "mprotect unaligned EINVAL");

	/* munmap: an unmapped page faults; its neighbours stay. */
	CHECK(munmap(a + 4 * PG, PG) == 0, "munmap one page");
	CHECK(probe(a + 4 * PG, 0) == SIGSEGV, "access to unmapped page faults");
	CHECK(probe(a + 5 * PG, 0) == 0 && a[5 * PG] == (char)0xab, "page after hole intact");
	CHECK(munmap(a + 4 * PG, PG) == 0, "munmap of unmapped range succeeds");
	CHECK_ERR(munmap(a + 1, PG), EINVAL, "munmap unaligned EINVAL");
	CHECK_ERR(munmap(a, 0), EINVAL, "munmap zero length EINVAL");
	CHECK_ERR(mprotect(a + 4 * PG, PG, PROT_READ), ENOMEM, "mprotect unmapped ENOMEM");

	/* MAP_FIXED replaces part of an existing mapping with fresh zeroes. */
	char *f = mmap(a + 8 * PG, 2 * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(f == a + 8 * PG, "MAP_FIXED at requested address");
	CHECK(all_bytes(f, 2 * PG, 0), "MAP_FIXED mapping is fresh");
	CHECK(a[7 * PG] == (char)0xab && a[10 * PG] == (char)0xab, "MAP_FIXED left neighbours");
	CHECK_ERR(mmap(a + 1, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
		  EINVAL, "MAP_FIXED unaligned EINVAL");
	char *nr = mmap(a + 8 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(nr == MAP_FAILED && errno == EEXIST, "MAP_FIXED_NOREPLACE over mapping EEXIST");

	/* madvise(MADV_DONTNEED) zeroes private anonymous pages. */
	memset(a + 11 * PG, 0x11, 2 * PG);
	CHECK(madvise(a + 11 * PG, PG, MADV_DONTNEED) == 0, "madvise DONTNEED");
	CHECK(all_bytes(a + 11 * PG, PG, 0), "DONTNEED page reads zero");
	CHECK(all_bytes(a + 12 * PG, PG, 0x11), "page after DONTNEED range kept");
	CHECK_ERR(madvise(a + 1, PG, MADV_DONTNEED), EINVAL, "madvise unaligned EINVAL");

	/* Bad mmap arguments. */
	CHECK_ERR(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), EINVAL, "mmap zero length EINVAL");
	CHECK_ERR(mmap(NULL, PG, PROT_READ, MAP_ANONYMOUS, -1, 0), EINVAL, "mmap neither shared nor private EINVAL");
	CHECK_ERR(mmap(NULL, PG, PROT_READ, MAP_PRIVATE, 9999, 0), EBADF, "mmap bad fd EBADF");
	CHECK_ERR(mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1), EINVAL, "mmap unaligned offset EINVAL");
	CHECK_ERR(mmap(NULL, (size_t)1 << 62, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), ENOMEM, "mmap 2^62 bytes ENOMEM");

	/* mremap: grow in place or moved, contents kept. */
	char *m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(m, 0x33, 2 * PG);
	/* Block in-place growth so the kernel has to move it. */
	mmap(m + 2 * PG, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK_ERR(mremap(m, 2 * PG, 8 * PG, 0), ENOMEM, "mremap grow without MAYMOVE ENOMEM");
	char *m2 = mremap(m, 2 * PG, 8 * PG, MREMAP_MAYMOVE);
	CHECK(m2 != MAP_FAILED && m2 != m, "mremap MAYMOVE moved the mapping");
	CHECK(all_bytes(m2, 2 * PG, 0x33), "mremap kept contents");
	CHECK(all_bytes(m2 + 2 * PG, 6 * PG, 0), "mremap grown part is zero");
	CHECK(probe(m, 0) == SIGSEGV, "old mremap address unmapped");
	char *m3 = mremap(m2, 8 * PG, 2 * PG, 0);
	CHECK(m3 == m2, "mremap shrink in place");
	CHECK(probe(m2 + 3 * PG, 0) == SIGSEGV, "shrunk tail unmapped");
	char *dst = mmap(NULL, 4 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *m4 = mremap(m2, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst + PG);
	CHECK(m4 == dst + PG && all_bytes(m4, 2 * PG, 0x33), "mremap FIXED move keeps contents");
	CHECK_ERR(mremap(m4, 2 * PG, 4 * PG, MREMAP_FIXED, dst), EINVAL, "mremap FIXED without MAYMOVE EINVAL");
	munmap(dst, 4 * PG);
	munmap(m + 2 * PG, PG);

	/* A 64 GiB PROT_NONE reservation costs nothing until parts are
	 * made accessible. */
	size_t big = (size_t)64 << 30;
	char *r = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(r != MAP_FAILED, "64 GiB PROT_NONE reservation");
	if (r != MAP_FAILED) {
		CHECK(probe(r + big / 2, 0) == SIGSEGV, "reservation faults on access");
		CHECK(mprotect(r + big / 2, PG, PROT_READ | PROT_WRITE) == 0, "mprotect inside reservation");
		CHECK(probe(r + big / 2, 1) == 0 && r[big / 2] == 0x5a, "opened page usable");
		CHECK(probe(r + big - 1, 0) == SIGSEGV, "end of reservation still faults");
		CHECK(munmap(r, big) == 0, "munmap reservation");
	}

	/* brk grows and shrinks the heap. */
	char *b0 = sbrk(0);
	CHECK(b0 != (void *)-1, "sbrk(0)");
	CHECK(brk(b0 + 64 * PG) == 0, "brk grow 256 KiB");
	CHECK(sbrk(0) == b0 + 64 * PG, "program break moved");
	memset(b0, 0x44, 64 * PG);
	CHECK(all_bytes(b0, 64 * PG, 0x44), "new heap memory usable");
	CHECK(brk(b0) == 0 && sbrk(0) == b0, "brk shrink");
	char *high = (char *)(uintptr_t)(((uintptr_t)b0 + 64 * PG + PG - 1) & ~(PG - 1));
	CHECK(probe(high, 0) == SIGSEGV, "shrunk heap unmapped");
	CHECK(brk(b0 + 2 * PG) == 0, "brk regrow");
	/* The first page wholly above the old break was freed by the
	 * shrink, so it comes back zeroed. */
	char *fresh = (char *)(((uintptr_t)b0 + PG - 1) & ~(PG - 1));
	CHECK(all_bytes(fresh, PG, 0), "regrown heap page zeroed");

	/* File mappings. */
	char path[512];
	check_path(path, sizeof(path), "mmapfile");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "create file for mapping");
	char buf[2 * PG];
	memset(buf, 'F', sizeof(buf));
	CHECK(write(fd, buf, PG + 100) == (ssize_t)(PG + 100), "write file");

	char *fp = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(fp != MAP_FAILED, "mmap file MAP_PRIVATE");
	CHECK(all_bytes(fp, PG + 100, 'F'), "private file mapping shows file contents");
	CHECK(all_bytes(fp + PG + 100, PG - 100, 0), "tail of last page reads zero");
	fp[0] = 'P';
	char c0 = 0;
	pread(fd, &c0, 1, 0);
	CHECK(c0 == 'F', "write to private mapping does not reach the file");

	char *sp = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(sp != MAP_FAILED, "mmap file MAP_SHARED");
	sp[1] = 'S';
	CHECK(msync(sp, PG, MS_SYNC) == 0, "msync");
	pread(fd, &c0, 1, 1);
	CHECK(c0 == 'S', "write to shared mapping reaches the file");
	pwrite(fd, "W", 1, 2);
	CHECK(sp[2] == 'W', "file write visible in shared mapping");
	CHECK(probe(fp + 2 * PG - 1, 0) == 0, "last page of file mapping readable");
	char *beyond = mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(probe(beyond + 3 * PG, 0) == SIGBUS, "page wholly past EOF raises SIGBUS");
	munmap(beyond, 4 * PG);
	munmap(sp, PG);
	munmap(fp, 2 * PG);
	close(fd);

	int ro = open(path, O_RDONLY);
	CHECK_ERR(mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), EACCES,
		  "shared writable map of read-only fd EACCES");
	char *rop = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
	CHECK(rop != MAP_FAILED, "private writable map of read-only fd allowed");
	close(ro);
	unlink(path);
	CHECK(rop[0] == 'F', "mapping outlives fd close and unlink");
	munmap(rop, PG);

	/* fork: private memory is copy-on-write, shared anonymous is shared. */
	char *priv = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile int *shm = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(shm != MAP_FAILED, "mmap MAP_SHARED|MAP_ANONYMOUS");
	strcpy(priv, "parent");
	shm[0] = 1;
	pid_t c = check_fork();
	if (c == 0) {
		int ok = strcmp(priv, "parent") == 0 && shm[0] == 1;
		strcpy(priv, "child");
		shm[0] = 2;
		shm[1] = ok;
		/* Wait for the parent's write to shared memory. */
		for (int i = 0; i < 5000 && shm[2] != 7; i++)
			usleep(1000);
		_exit(shm[2] == 7 ? 0 : 1);
	}
	for (int i = 0; i < 5000 && shm[0] != 2; i++)
		usleep(1000);
	CHECK(shm[0] == 2, "child's write to shared anonymous memory seen by parent");
	CHECK(shm[1] == 1, "child saw parent's memory at fork");
	CHECK(strcmp(priv, "parent") == 0, "child's write to private memory not seen (COW)");
	shm[2] = 7;
	int st;
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "parent's write to shared memory seen by child");
	strcpy(priv, "later");
	c = check_fork();
	if (c == 0)
		_exit(strcmp(priv, "later") == 0 ? 0 : 1);
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork snapshots current private contents");

	return check_summary();
}
