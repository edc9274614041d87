package ipc

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memmap"
	"github.com/veil-sandbox/veil/sentry/mm"
)

// Shared memory flags and commands (include/uapi/linux/shm.h).
const (
	SHM_HUGETLB = 0o4000
	SHM_RDONLY  = 0o10000
	SHM_RND     = 0o20000
	SHM_REMAP   = 0o40000
	SHM_EXEC    = 0o100000

	// Mode bits of a segment.
	SHM_DEST   = 0o1000
	SHM_LOCKED = 0o2000

	SHM_LOCK     = 11
	SHM_UNLOCK   = 12
	SHM_STAT     = 13
	SHM_INFO     = 14
	SHM_STAT_ANY = 15
)

// Linux's defaults for shared memory limits.
const (
	shmMin = 1
	shmMax = ^uint64(0) - 1<<24
	shmAll = ^uint64(0) - 1<<24 // pages
	shmMNI = 4096
	shmSeg = shmMNI
)

// capIPCLock is CAP_IPC_LOCK.
const capIPCLock = auth.CAP_IPC_LOCK

type shmTable struct {
	mu sync.Mutex
	t  table[*Shm]
	// totPages is the size of every segment, in pages (shm_tot).
	totPages uint64
}

func (st *shmTable) init() { st.t = newTable[*Shm](shmMNI) }

// Shm is a shared memory segment. It is the memmap.Mappable shmat maps,
// and every vma mapping it is one attachment (shm_nattch). A segment
// removed with IPC_RMID lives on, private and marked SHM_DEST, until its
// last attachment goes.
type Shm struct {
	Perm
	ns  *Namespace
	mem *mm.SharedMemory
	// size is the size asked for; the memory is rounded up to pages.
	size uint64
	// name is the segment's file name in /proc/PID/maps.
	name string

	// The rest is guarded by the namespace's shmTable.mu.
	atime, dtime, ctime int64
	cpid, lpid          int32
	nattch              int64
}

var _ memmap.Mappable = (*Shm)(nil)

func pagesOf(size uint64) uint64 { return (size + hostarch.PageSize - 1) / hostarch.PageSize }

// ShmGet is shmget(2).
func (ns *Namespace) ShmGet(c Caller, key int32, size uint64, flag int32) (int32, error) {
	st := &ns.shm
	st.mu.Lock()
	defer st.mu.Unlock()
	creds := c.Credentials()
	s, create, err := lookup(&st.t, creds, key, flag)
	if err != nil {
		return 0, err
	}
	if !create {
		if s.size < size {
			return 0, unix.EINVAL
		}
		return s.id, nil
	}
	if size < shmMin || size > shmMax {
		return 0, unix.EINVAL
	}
	pages := pagesOf(size)
	if st.totPages+pages < st.totPages || st.totPages+pages > shmAll {
		return 0, unix.ENOSPC
	}
	if flag&SHM_HUGETLB != 0 {
		// No huge pages are reserved in the sandbox, as on a host
		// whose nr_hugepages is 0.
		return 0, unix.ENOMEM
	}
	id, seq, err := st.t.alloc()
	if err != nil {
		return 0, err
	}
	s = &Shm{
		Perm:  newPerm(creds, key, flag, id, seq),
		ns:    ns,
		mem:   mm.NewSharedMemory(ns.mf, pages*hostarch.PageSize),
		size:  size,
		name:  fmt.Sprintf("/SYSV%08x (deleted)", uint32(key)),
		ctime: ns.seconds(),
		cpid:  c.TGID(),
	}
	st.t.add(id, s)
	st.totPages += pages
	return id, nil
}

// ShmAttach is the IPC half of shmat(2): it checks that c may attach
// segment id for the access flag asks (SHM_RDONLY, SHM_EXEC) and holds an
// attachment until done is called, so the segment outlives a concurrent
// IPC_RMID while the caller maps it.
func (ns *Namespace) ShmAttach(c Caller, id int32, flag int32) (s *Shm, done func(), err error) {
	st := &ns.shm
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.t.byID(id)
	if !ok {
		return nil, nil, unix.EINVAL
	}
	want := int32(mayRead)
	if flag&SHM_RDONLY == 0 {
		want |= mayWrite
	}
	if flag&SHM_EXEC != 0 {
		want |= mayExec
	}
	if err := s.check(c.Credentials(), want); err != nil {
		return nil, nil, err
	}
	s.nattch++
	s.lpid = c.TGID()
	return s, s.DecRef, nil
}

// Size is the size the segment was created with.
func (s *Shm) Size() uint64 { return s.size }

// ID is the segment's shmid.
func (s *Shm) ID() int32 { return s.id }

// Name is what /proc/PID/maps shows for the segment: "/SYSV" and the key
// it was created with, deleted.
func (s *Shm) Name() string { return s.name }

// IsShm reports whether a mapped object is one of ns's segments, and its
// size: what shmdt looks for.
func (ns *Namespace) IsShm(m memmap.Mappable) (uint64, bool) {
	s, ok := m.(*Shm)
	if !ok || s.ns != ns {
		return 0, false
	}
	return s.size, true
}

// ShmDetached records that c detached s (shmdt(2)).
func (ns *Namespace) ShmDetached(c Caller, m memmap.Mappable) {
	if s, ok := m.(*Shm); ok {
		ns.shm.mu.Lock()
		s.lpid = c.TGID()
		ns.shm.mu.Unlock()
	}
}

// Translate implements memmap.Mappable.
func (s *Shm) Translate(off, length uint64, at hostarch.AccessType) ([]memmap.Translation, error) {
	return s.mem.Translate(off, length, at)
}

// AddMapping implements memmap.Mappable. Pages never move or go while the
// segment lives, so mappings need no tracking.
func (s *Shm) AddMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {}

// RemoveMapping implements memmap.Mappable.
func (s *Shm) RemoveMapping(memmap.MappingSpace, hostarch.AddrRange, uint64, bool) {}

// IncRef implements memmap.Mappable: a vma now maps the segment (shmat,
// fork, a split).
func (s *Shm) IncRef() {
	st := &s.ns.shm
	st.mu.Lock()
	s.nattch++
	s.atime = s.ns.seconds()
	st.mu.Unlock()
}

// DecRef implements memmap.Mappable: a vma mapping the segment is gone.
// The last one destroys a segment marked SHM_DEST.
func (s *Shm) DecRef() {
	st := &s.ns.shm
	st.mu.Lock()
	s.nattch--
	if s.nattch < 0 {
		st.mu.Unlock()
		panic("ipc: Shm DecRef without an attachment")
	}
	s.dtime = s.ns.seconds()
	dead := s.nattch == 0 && s.Mode&SHM_DEST != 0
	if dead {
		st.destroyLocked(s)
	}
	st.mu.Unlock()
	if dead {
		s.mem.Release()
	}
}

// destroyLocked takes s out of the table; the caller releases its memory
// after dropping the lock.
func (st *shmTable) destroyLocked(s *Shm) {
	st.t.remove(s.id, s)
	st.totPages -= pagesOf(s.size)
}

// ShmidDS is struct shmid64_ds.
type ShmidDS struct {
	Perm                Perm
	SegSz               uint64
	Atime, Dtime, Ctime int64
	Cpid, Lpid          int32
	Nattch              uint64
}

// ShmStat is shmctl's IPC_STAT (id is a shmid), SHM_STAT and SHM_STAT_ANY
// (id is an index; the shmid is returned). SHM_STAT_ANY skips the read
// permission check.
func (ns *Namespace) ShmStat(c Caller, id int32, cmd int32) (ShmidDS, int32, error) {
	st := &ns.shm
	st.mu.Lock()
	defer st.mu.Unlock()
	var s *Shm
	var ok bool
	if cmd == IPC_STAT {
		s, ok = st.t.byID(id)
	} else {
		s, ok = st.t.byIndex(id)
	}
	if !ok {
		return ShmidDS{}, 0, unix.EINVAL
	}
	if cmd != SHM_STAT_ANY {
		if err := s.check(c.Credentials(), mayRead); err != nil {
			return ShmidDS{}, 0, err
		}
	}
	ds := ShmidDS{
		Perm: s.Perm, SegSz: s.size,
		Atime: s.atime, Dtime: s.dtime, Ctime: s.ctime,
		Cpid: s.cpid, Lpid: s.lpid, Nattch: uint64(s.nattch),
	}
	ret := int32(0)
	if cmd != IPC_STAT {
		ret = s.id
	}
	return ds, ret, nil
}

// ShmSet is shmctl's IPC_SET.
func (ns *Namespace) ShmSet(c Caller, id int32, a SetArgs) error {
	st := &ns.shm
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.t.byID(id)
	if !ok {
		return unix.EINVAL
	}
	if !s.owns(c.Credentials()) {
		return unix.EPERM
	}
	s.set(a.UID, a.GID, a.Mode)
	s.ctime = ns.seconds()
	return nil
}

// ShmRemove is shmctl's IPC_RMID: the segment goes now if nothing has it
// attached, else it becomes private and goes with its last attachment.
func (ns *Namespace) ShmRemove(c Caller, id int32) error {
	st := &ns.shm
	st.mu.Lock()
	s, ok := st.t.byID(id)
	if !ok {
		st.mu.Unlock()
		return unix.EINVAL
	}
	if !s.owns(c.Credentials()) {
		st.mu.Unlock()
		return unix.EPERM
	}
	s.Mode |= SHM_DEST
	st.t.forgetKey(s.id, s)
	dead := s.nattch == 0
	if dead {
		st.destroyLocked(s)
	}
	st.mu.Unlock()
	if dead {
		s.mem.Release()
	}
	return nil
}

// ShmLock is SHM_LOCK and SHM_UNLOCK. Segment memory is never swapped
// here, so locking only records SHM_LOCKED; the permission rule is
// Linux's (CAP_IPC_LOCK, or the owner or creator).
func (ns *Namespace) ShmLock(c Caller, id int32, lock bool) error {
	st := &ns.shm
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.t.byID(id)
	if !ok {
		return unix.EINVAL
	}
	creds := c.Credentials()
	if !creds.HasCapability(capIPCLock) && creds.EffectiveKUID != s.UID && creds.EffectiveKUID != s.CUID {
		return unix.EPERM
	}
	if lock {
		s.Mode |= SHM_LOCKED
	} else {
		s.Mode &^= SHM_LOCKED
	}
	return nil
}

// ShmLimits is struct shminfo64 (IPC_INFO).
type ShmLimits struct {
	ShmMax, ShmMin, ShmMNI, ShmSeg, ShmAll uint64
}

// ShmUsage is struct shm_info (SHM_INFO); sizes are in pages.
type ShmUsage struct {
	UsedIDs int32
	ShmTot  uint64
	ShmRSS  uint64
}

// ShmInfo answers IPC_INFO and SHM_INFO; it returns the highest index in
// use as both commands do.
func (ns *Namespace) ShmInfo() (ShmLimits, ShmUsage, int32) {
	st := &ns.shm
	st.mu.Lock()
	defer st.mu.Unlock()
	u := ShmUsage{UsedIDs: int32(len(st.t.objs)), ShmTot: st.totPages}
	for _, s := range st.t.objs {
		u.ShmRSS += s.mem.Resident() / hostarch.PageSize
	}
	return ShmLimits{ShmMax: shmMax, ShmMin: shmMin, ShmMNI: shmMNI, ShmSeg: shmSeg, ShmAll: shmAll}, u, st.t.maxIndex()
}
