/*
 * vdso: the vDSO every process gets at AT_SYSINFO_EHDR. Its ELF (headers,
 * dynamic section, hash tables, versioned symbols), its mappings in
 * /proc/self/maps, and its time calls: clock_gettime through libc and
 * through the vDSO's own entry point agree with the clock_gettime syscall
 * (a vDSO read, then the syscall, then a vDSO read are in order on every
 * clock), CLOCK_MONOTONIC never goes back within or across threads or
 * across fork, gettimeofday and time agree with CLOCK_REALTIME, clock_getres
 * matches the syscall, getcpu reports a CPU that exists, and the clocks the
 * vDSO does not compute (CPU-time, invalid IDs) get the syscall's answers.
 */
#include "check.h"

#include <elf.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*clock_getres_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);
typedef time_t (*time_fn)(time_t *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);

static uintptr_t vdso_base;
static clock_gettime_fn vdso_clock_gettime;
static clock_getres_fn vdso_clock_getres;
static gettimeofday_fn vdso_gettimeofday;
static time_fn vdso_time;
static getcpu_fn vdso_getcpu;

static int64_t ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t sys_clock(clockid_t clk)
{
	struct timespec ts;
	if (syscall(SYS_clock_gettime, clk, &ts) != 0)
		return -1;
	return ns(&ts);
}

static int64_t vdso_clock(clockid_t clk)
{
	struct timespec ts;
	if (vdso_clock_gettime(clk, &ts) != 0)
		return -1;
	return ns(&ts);
}

static uint32_t elf_hash(const char *name)
{
	uint32_t h = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h = (h << 4) + *p;
		uint32_t g = h & 0xf0000000;
		if (g)
			h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

/*
 * find_vdso checks the image's headers and looks up the five functions
 * (version LINUX_2.6) the way a dynamic linker does: through DT_HASH (or,
 * without one, by walking DT_GNU_HASH's chains to count the symbols) and
 * DT_VERSYM/DT_VERDEF.
 */
static void find_vdso(void)
{
	vdso_base = getauxval(AT_SYSINFO_EHDR);
	CHECK(vdso_base != 0, "AT_SYSINFO_EHDR is set");
	if (!vdso_base)
		return;
	CHECK(vdso_base % sysconf(_SC_PAGESIZE) == 0, "vDSO page aligned");
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)vdso_base;
	CHECK(memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0, "vDSO ELF magic");
	CHECK(eh->e_ident[EI_CLASS] == ELFCLASS64 && eh->e_ident[EI_DATA] == ELFDATA2LSB,
	      "vDSO is ELF64 little-endian");
	CHECK(eh->e_type == ET_DYN && eh->e_machine == EM_X86_64, "vDSO is an x86-64 ET_DYN");
	CHECK(eh->e_phentsize == sizeof(Elf64_Phdr), "vDSO phentsize");

	const Elf64_Phdr *ph = (const Elf64_Phdr *)(vdso_base + eh->e_phoff);
	uintptr_t load_bias = 0;
	const Elf64_Dyn *dyn = NULL;
	int loads = 0, notes = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD) {
			if (loads++ == 0)
				load_bias = vdso_base + ph[i].p_offset - ph[i].p_vaddr;
			CHECK(!(ph[i].p_flags & PF_W), "vDSO PT_LOAD not writable");
		}
		if (ph[i].p_type == PT_NOTE)
			notes++;
	}
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_DYNAMIC)
			dyn = (const Elf64_Dyn *)(load_bias + ph[i].p_vaddr);
	CHECK(loads >= 1, "vDSO has a PT_LOAD");
	CHECK(notes >= 1, "vDSO has a PT_NOTE");
	CHECK(dyn != NULL, "vDSO has a PT_DYNAMIC");
	if (!dyn || !loads)
		return;

	const Elf64_Sym *symtab = NULL;
	const char *strtab = NULL;
	const uint32_t *hash = NULL, *gnu_hash = NULL;
	const Elf64_Versym *versym = NULL;
	const Elf64_Verdef *verdef = NULL;
	int has_rel = 0;
	for (const Elf64_Dyn *d = dyn; d->d_tag != DT_NULL; d++) {
		uintptr_t p = load_bias + d->d_un.d_ptr;
		switch (d->d_tag) {
		case DT_SYMTAB: symtab = (const Elf64_Sym *)p; break;
		case DT_STRTAB: strtab = (const char *)p; break;
		case DT_HASH: hash = (const uint32_t *)p; break;
		case DT_GNU_HASH: gnu_hash = (const uint32_t *)p; break;
		case DT_VERSYM: versym = (const Elf64_Versym *)p; break;
		case DT_VERDEF: verdef = (const Elf64_Verdef *)p; break;
		case DT_REL: case DT_RELA: case DT_TEXTREL: case DT_JMPREL: has_rel = 1; break;
		}
	}
	CHECK(symtab && strtab, "vDSO has DT_SYMTAB and DT_STRTAB");
	CHECK(hash || gnu_hash, "vDSO has DT_HASH or DT_GNU_HASH");
	CHECK(versym && verdef, "vDSO has DT_VERSYM and DT_VERDEF");
	CHECK(!has_rel, "vDSO needs no relocations");
	if (!symtab || !strtab || !(hash || gnu_hash) || !versym || !verdef)
		return;

	/* The version index of LINUX_2.6. */
	int linux26 = -1;
	for (const Elf64_Verdef *v = verdef;; v = (const Elf64_Verdef *)((const char *)v + v->vd_next)) {
		const Elf64_Verdaux *aux = (const Elf64_Verdaux *)((const char *)v + v->vd_aux);
		if (!(v->vd_flags & VER_FLG_BASE) && strcmp(strtab + aux->vda_name, "LINUX_2.6") == 0) {
			CHECK(v->vd_hash == elf_hash("LINUX_2.6"), "LINUX_2.6 verdef hash");
			linux26 = v->vd_ndx;
		}
		if (!v->vd_next)
			break;
	}
	CHECK(linux26 > 0, "vDSO defines version LINUX_2.6");

	uint32_t nsyms = 0;
	if (hash) {
		nsyms = hash[1];
	} else {
		uint32_t nbuckets = gnu_hash[0], symoff = gnu_hash[1], bloom = gnu_hash[2];
		const uint32_t *buckets = gnu_hash + 4 + bloom * 2;
		const uint32_t *chain = buckets + nbuckets;
		for (uint32_t b = 0; b < nbuckets; b++)
			if (buckets[b] >= nsyms)
				nsyms = buckets[b];
		if (nsyms >= symoff)
			while (!(chain[nsyms - symoff] & 1))
				nsyms++;
		nsyms++;
	}
	struct {
		const char *name;
		void **fn;
	} want[] = {
		{"__vdso_clock_gettime", (void **)&vdso_clock_gettime},
		{"__vdso_clock_getres", (void **)&vdso_clock_getres},
		{"__vdso_gettimeofday", (void **)&vdso_gettimeofday},
		{"__vdso_time", (void **)&vdso_time},
		{"__vdso_getcpu", (void **)&vdso_getcpu},
	};
	for (uint32_t i = 0; i < nsyms; i++) {
		const Elf64_Sym *s = &symtab[i];
		if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF)
			continue;
		if ((versym[i] & 0x7fff) != linux26)
			continue;
		for (size_t j = 0; j < sizeof(want) / sizeof(want[0]); j++)
			if (strcmp(strtab + s->st_name, want[j].name) == 0)
				*want[j].fn = (void *)(load_bias + s->st_value);
	}
	for (size_t j = 0; j < sizeof(want) / sizeof(want[0]); j++) {
		char msg[96];
		snprintf(msg, sizeof(msg), "vDSO exports %s@LINUX_2.6", want[j].name);
		CHECK(*want[j].fn != NULL, msg);
	}
}

/* The [vdso] mapping is at AT_SYSINFO_EHDR, read and execute; a read-only
 * [vvar] is below it, and cannot be made writable. */
static void check_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL, "open /proc/self/maps");
	if (!f)
		return;
	char line[512];
	int vdso = 0, vvar = 0;
	unsigned long vvar_start = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
			continue;
		if (strstr(line, "[vdso]")) {
			vdso++;
			CHECK(start == vdso_base, "[vdso] starts at AT_SYSINFO_EHDR");
			CHECK(strcmp(perms, "r-xp") == 0, "[vdso] is r-xp");
		} else if (strstr(line, "[vvar]")) {
			vvar++;
			vvar_start = start;
			CHECK(strcmp(perms, "r--p") == 0, "[vvar] is r--p");
			CHECK(end <= vdso_base || vdso_base == 0, "[vvar] is below [vdso]");
		}
	}
	fclose(f);
	CHECK(vdso == 1, "one [vdso] line in /proc/self/maps");
	CHECK(vvar == 1, "one [vvar] line in /proc/self/maps");
	if (vvar_start) {
		CHECK_ERR(mprotect((void *)vvar_start, sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE), EACCES,
			  "mprotect [vvar] writable");
	}
}

/* For every clock the vDSO computes: vDSO, syscall, vDSO, in order. */
static void check_order(void)
{
	static const struct {
		clockid_t clk;
		const char *name;
	} clocks[] = {
		{CLOCK_REALTIME, "REALTIME"},
		{CLOCK_MONOTONIC, "MONOTONIC"},
		{CLOCK_MONOTONIC_RAW, "MONOTONIC_RAW"},
		{CLOCK_REALTIME_COARSE, "REALTIME_COARSE"},
		{CLOCK_MONOTONIC_COARSE, "MONOTONIC_COARSE"},
		{CLOCK_BOOTTIME, "BOOTTIME"},
		{CLOCK_TAI, "TAI"},
	};
	for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		int ok = 1;
		for (int round = 0; round < 200 && ok; round++) {
			int64_t a = vdso_clock(clocks[i].clk);
			int64_t b = sys_clock(clocks[i].clk);
			int64_t c = vdso_clock(clocks[i].clk);
			if (a < 0 || b < 0 || c < 0 || a > b || b > c) {
				printf("%s: vdso %lld, syscall %lld, vdso %lld\n", clocks[i].name,
				       (long long)a, (long long)b, (long long)c);
				ok = 0;
			}
		}
		char msg[96];
		snprintf(msg, sizeof(msg), "CLOCK_%s: vDSO and syscall on one timeline", clocks[i].name);
		CHECK(ok, msg);
	}
}

/* libc's clock_gettime many times: never back, and in order with the
 * syscall read every so often. */
static void check_libc_loop(void)
{
	const int n = 100000;
	struct timespec ts;
	int64_t last = 0, back = 0, misordered = 0;
	int64_t start = sys_clock(CLOCK_MONOTONIC);
	for (int i = 0; i < n; i++) {
		if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
			back++;
			break;
		}
		int64_t now = ns(&ts);
		if (now < last)
			back++;
		last = now;
		if (i % 1000 == 999) {
			int64_t s = sys_clock(CLOCK_MONOTONIC);
			if (s < last)
				misordered++;
			last = s;
		}
	}
	int64_t end = sys_clock(CLOCK_MONOTONIC);
	CHECK(back == 0, "libc CLOCK_MONOTONIC never goes back over 100000 calls");
	CHECK(misordered == 0, "libc CLOCK_MONOTONIC in order with the syscall");
	CHECK(last <= end && start <= end, "the syscall after the loop is last");
	printf("info: %lld ns per libc clock_gettime (with 100 syscalls)\n", (long long)((end - start) / n));
}

static atomic_llong latest;
static atomic_int bad;

static void *mono_thread(void *arg)
{
	(void)arg;
	int64_t last = 0;
	int64_t until = sys_clock(CLOCK_MONOTONIC) + 200000000;
	for (int i = 0;; i++) {
		long long seen = atomic_load(&latest);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t now = ns(&ts);
		if (now < last || now < seen) {
			atomic_fetch_add(&bad, 1);
			printf("thread: MONOTONIC %lld after %lld here, %lld elsewhere\n", (long long)now,
			       (long long)last, seen);
			break;
		}
		last = now;
		long long cur = atomic_load(&latest);
		while (now > cur && !atomic_compare_exchange_weak(&latest, &cur, now))
			;
		if (now > until)
			break;
		if (i % 256 == 0)
			sched_yield();
	}
	return NULL;
}

static void check_threads(void)
{
	pthread_t th[4];
	int started = 0;
	for (int i = 0; i < 4; i++)
		if (pthread_create(&th[i], NULL, mono_thread, NULL) == 0)
			started++;
	CHECK(started == 4, "start 4 threads");
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	CHECK(atomic_load(&bad) == 0, "CLOCK_MONOTONIC never goes back across threads");
}

static void check_forked_child(void)
{
	struct timespec before;
	clock_gettime(CLOCK_MONOTONIC, &before);
	pid_t pid = check_fork();
	if (pid == 0) {
		struct timespec ts;
		int ok = vdso_clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && ns(&ts) >= ns(&before) &&
			 clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && ns(&ts) >= ns(&before);
		_exit(ok ? 0 : 1);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork and wait");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "vDSO works in a forked child, in order with the parent");
}

static void check_realtime_agreement(void)
{
	const int64_t tol = 100000; /* 100 µs */
	int ok_tv = 1, ok_time = 1, ok_vtv = 1;
	for (int i = 0; i < 100; i++) {
		struct timespec a, c;
		struct timeval tv, vtv;
		clock_gettime(CLOCK_REALTIME, &a);
		gettimeofday(&tv, NULL);
		vdso_gettimeofday(&vtv, NULL);
		time_t t = time(NULL);
		time_t vt = vdso_time(NULL);
		clock_gettime(CLOCK_REALTIME, &c);
		int64_t tvns = (int64_t)tv.tv_sec * 1000000000 + tv.tv_usec * 1000;
		int64_t vtvns = (int64_t)vtv.tv_sec * 1000000000 + vtv.tv_usec * 1000;
		if (tvns < ns(&a) - 1000 - tol || tvns > ns(&c) + tol || tv.tv_usec >= 1000000)
			ok_tv = 0;
		if (vtvns < ns(&a) - 1000 - tol || vtvns > ns(&c) + tol)
			ok_vtv = 0;
		/* Linux's time() is the second of the last tick: it may lag. */
		if (t < a.tv_sec - 1 || t > c.tv_sec || vt < a.tv_sec - 1 || vt > c.tv_sec)
			ok_time = 0;
	}
	CHECK(ok_tv, "libc gettimeofday agrees with CLOCK_REALTIME");
	CHECK(ok_vtv, "vDSO gettimeofday agrees with CLOCK_REALTIME");
	CHECK(ok_time, "time() agrees with CLOCK_REALTIME");

	time_t out = 0;
	time_t r = vdso_time(&out);
	CHECK(r == out && r > 1000000000, "vDSO time stores what it returns");
	struct timezone tz = {-1, -1};
	CHECK(vdso_gettimeofday(NULL, &tz) == 0, "vDSO gettimeofday(NULL, tz)");
	struct timezone stz = {-1, -1};
	syscall(SYS_gettimeofday, NULL, &stz);
	CHECK(tz.tz_minuteswest == stz.tz_minuteswest && tz.tz_dsttime == stz.tz_dsttime,
	      "vDSO timezone is the syscall's");
}

static void check_getres(void)
{
	static const clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW,
					   CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME,
					   CLOCK_TAI, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID};
	int ok = 1;
	for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		struct timespec v = {-1, -1}, s = {-2, -2}, l = {-3, -3};
		int rv = vdso_clock_getres(clocks[i], &v);
		int rs = syscall(SYS_clock_getres, clocks[i], &s);
		int rl = clock_getres(clocks[i], &l);
		if (rv != 0 || rs != 0 || rl != 0 || ns(&v) != ns(&s) || ns(&l) != ns(&s)) {
			printf("clock_getres(%d): vdso %d %lld, syscall %d %lld, libc %d %lld\n", (int)clocks[i], rv,
			       (long long)ns(&v), rs, (long long)ns(&s), rl, (long long)ns(&l));
			ok = 0;
		}
	}
	CHECK(ok, "clock_getres: vDSO, syscall and libc agree");
	CHECK(vdso_clock_getres(CLOCK_MONOTONIC, NULL) == 0, "vDSO clock_getres with a NULL result");
	CHECK(vdso_clock_getres(1234, &(struct timespec){0, 0}) == -EINVAL, "vDSO clock_getres(invalid) is -EINVAL");
}

static void check_fallbacks(void)
{
	struct timespec ts;
	CHECK(vdso_clock_gettime(1234, &ts) == -EINVAL, "vDSO clock_gettime(invalid) is -EINVAL");
	CHECK_ERR(clock_gettime(1234, &ts), EINVAL, "libc clock_gettime(invalid)");

	/* CPU time: the vDSO passes it on; it advances with work. */
	int64_t a = vdso_clock(CLOCK_PROCESS_CPUTIME_ID);
	volatile unsigned long x = 0;
	for (unsigned long i = 0; i < 20000000; i++)
		x += i;
	int64_t b = sys_clock(CLOCK_PROCESS_CPUTIME_ID);
	int64_t c = vdso_clock(CLOCK_THREAD_CPUTIME_ID);
	CHECK(a >= 0 && b > a, "vDSO CLOCK_PROCESS_CPUTIME_ID is the process's CPU time");
	CHECK(c > 0, "vDSO CLOCK_THREAD_CPUTIME_ID");
}

static void check_getcpu(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	unsigned cpu = ~0u, node = ~0u, scpu = ~0u, snode = ~0u;
	CHECK(vdso_getcpu(&cpu, &node, NULL) == 0, "vDSO getcpu");
	CHECK(syscall(SYS_getcpu, &scpu, &snode, NULL) == 0, "getcpu syscall");
	CHECK(cpu < (unsigned long)ncpu && scpu < (unsigned long)ncpu, "getcpu reports a configured CPU");
	CHECK(node != ~0u && snode != ~0u, "getcpu reports a node");
	CHECK(vdso_getcpu(NULL, NULL, NULL) == 0, "vDSO getcpu with NULL pointers");
	int libc = sched_getcpu();
	CHECK(libc >= 0 && libc < ncpu, "sched_getcpu");
}

int main(void)
{
	find_vdso();
	if (!vdso_clock_gettime || !vdso_clock_getres || !vdso_gettimeofday || !vdso_time || !vdso_getcpu)
		return check_summary();
	check_maps();
	check_order();
	check_libc_loop();
	check_threads();
	check_forked_child();
	check_realtime_agreement();
	check_getres();
	check_fallbacks();
	check_getcpu();
	return check_summary();
}
