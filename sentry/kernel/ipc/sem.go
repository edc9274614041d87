package ipc

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Semaphore flags and commands (include/uapi/linux/sem.h).
const (
	SEM_UNDO = 0x1000

	GETPID  = 11
	GETVAL  = 12
	GETALL  = 13
	GETNCNT = 14
	GETZCNT = 15
	SETVAL  = 16
	SETALL  = 17

	SEM_STAT     = 18
	SEM_INFO     = 19
	SEM_STAT_ANY = 20
)

// Linux's defaults for semaphore limits.
const (
	semMNI = 32000
	semMSL = 32000
	semMNS = semMNI * semMSL
	semOPM = 500
	SemVMX = 32767 // largest semaphore value
	semAEM = SemVMX
	semUME = semOPM
	semMNU = semMNS
	semMap = semMNS
	semUSZ = 20
)

// SemOPM is the most operations one semop may carry.
const SemOPM = semOPM

type semTable struct {
	mu sync.Mutex
	t  table[*semSet]
	// nsems counts the semaphores of every set (SEM_INFO's semaem).
	nsems int
	// undos are the SEM_UNDO adjustments of each process, by set.
	undos map[any]map[*semSet]*semUndo
}

func (st *semTable) init() {
	st.t = newTable[*semSet](semMNI)
	st.undos = map[any]map[*semSet]*semUndo{}
}

type semaphore struct {
	val int32
	pid int32
}

// semSet is a semaphore set. Fields are guarded by semTable.mu.
type semSet struct {
	Perm
	sems         []semaphore
	otime, ctime int64
	removed      bool
	// queue holds blocked semops in arrival order.
	queue []*semWaiter
	// undos are the processes holding adjustments for this set.
	undos map[any]*semUndo
}

// semUndo is one process's adjustments (semadj) for one set.
type semUndo struct {
	adj []int32
}

// SemBuf is struct sembuf.
type SemBuf struct {
	Num uint16
	Op  int16
	Flg int16
}

type semWaiter struct {
	ops  []SemBuf
	pid  int32
	undo *semUndo
	// blocking is the index of the operation it waits on (GETNCNT,
	// GETZCNT count it).
	blocking int
	done     chan struct{}
	err      error
}

// SemGet is semget(2).
func (ns *Namespace) SemGet(c Caller, key int32, nsems int32, flag int32) (int32, error) {
	if nsems < 0 || nsems > semMSL {
		return 0, unix.EINVAL
	}
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	creds := c.Credentials()
	s, create, err := lookup(&st.t, creds, key, flag)
	if err != nil {
		return 0, err
	}
	if !create {
		if int(nsems) > len(s.sems) {
			return 0, unix.EINVAL
		}
		return s.id, nil
	}
	if nsems == 0 {
		return 0, unix.EINVAL
	}
	if st.nsems+int(nsems) > semMNS {
		return 0, unix.ENOSPC
	}
	id, seq, err := st.t.alloc()
	if err != nil {
		return 0, err
	}
	s = &semSet{
		Perm:  newPerm(creds, key, flag, id, seq),
		sems:  make([]semaphore, nsems),
		ctime: ns.seconds(),
		undos: map[any]*semUndo{},
	}
	st.t.add(id, s)
	st.nsems += int(nsems)
	return id, nil
}

// undoFor returns proc's adjustments for s, made on first use.
func (st *semTable) undoFor(proc any, s *semSet) *semUndo {
	if u, ok := s.undos[proc]; ok {
		return u
	}
	u := &semUndo{adj: make([]int32, len(s.sems))}
	s.undos[proc] = u
	m := st.undos[proc]
	if m == nil {
		m = map[*semSet]*semUndo{}
		st.undos[proc] = m
	}
	m[s] = u
	return u
}

// errWouldBlock is tryOps' "not now".
var errWouldBlock = unix.EWOULDBLOCK

// tryOps applies ops all at once, in order, or not at all. It returns
// errWouldBlock with the index of the operation that cannot proceed, or
// ERANGE when a value or an adjustment would leave its range.
func (s *semSet) tryOps(ops []SemBuf, undo *semUndo, pid int32, now int64) (int, error) {
	type saved struct {
		num     uint16
		val     int32
		adj     int32
		undoing bool
	}
	var log []saved
	rollback := func() {
		for i := len(log) - 1; i >= 0; i-- {
			e := log[i]
			s.sems[e.num].val = e.val
			if e.undoing {
				undo.adj[e.num] = e.adj
			}
		}
	}
	for i, op := range ops {
		sem := &s.sems[op.Num]
		if op.Op == 0 {
			if sem.val != 0 {
				rollback()
				return i, errWouldBlock
			}
			continue
		}
		nv := sem.val + int32(op.Op)
		if nv < 0 {
			rollback()
			return i, errWouldBlock
		}
		if nv > SemVMX {
			rollback()
			return i, unix.ERANGE
		}
		e := saved{num: op.Num, val: sem.val}
		if op.Flg&SEM_UNDO != 0 {
			adj := undo.adj[op.Num] - int32(op.Op)
			if adj < -semAEM-1 || adj > semAEM {
				rollback()
				return i, unix.ERANGE
			}
			e.adj, e.undoing = undo.adj[op.Num], true
			undo.adj[op.Num] = adj
		}
		log = append(log, e)
		sem.val = nv
	}
	for _, op := range ops {
		s.sems[op.Num].pid = pid
	}
	s.otime = now
	return 0, nil
}

func alters(ops []SemBuf) bool {
	for _, op := range ops {
		if op.Op != 0 {
			return true
		}
	}
	return false
}

// wakeLocked completes every queued semop that can now proceed, oldest
// first, looking again from the start after each one that changed values.
func (s *semSet) wakeLocked(now int64) {
	for again := true; again; {
		again = false
		for i := 0; i < len(s.queue); i++ {
			w := s.queue[i]
			blk, err := s.tryOps(w.ops, w.undo, w.pid, now)
			if err == errWouldBlock {
				w.blocking = blk
				continue
			}
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			w.err = err
			close(w.done)
			if err == nil && alters(w.ops) {
				again = true
				break
			}
			i--
		}
	}
}

func (s *semSet) dequeue(w *semWaiter) {
	for i, o := range s.queue {
		if o == w {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			return
		}
	}
}

// SemOp is semop(2) and semtimedop(2) once the operations are read in
// (1 to SemOPM of them). A zero deadline waits for ever; a passed one
// fails at once with EAGAIN if the operations would block.
func (ns *Namespace) SemOp(c Caller, id int32, ops []SemBuf, deadline time.Time) error {
	maxNum, undos, alter := 0, false, false
	for _, op := range ops {
		maxNum = max(maxNum, int(op.Num))
		undos = undos || op.Flg&SEM_UNDO != 0
		alter = alter || op.Op != 0
	}
	st := &ns.sem
	st.mu.Lock()
	s, ok := st.t.byID(id)
	if !ok {
		st.mu.Unlock()
		return unix.EINVAL
	}
	if maxNum >= len(s.sems) {
		st.mu.Unlock()
		return unix.EFBIG
	}
	want := int32(mayRead)
	if alter {
		want = mayWrite
	}
	if err := s.check(c.Credentials(), want); err != nil {
		st.mu.Unlock()
		return err
	}
	var undo *semUndo
	if undos {
		undo = st.undoFor(c.Process(), s)
	}
	now := ns.seconds()
	blk, err := s.tryOps(ops, undo, c.TGID(), now)
	if err != errWouldBlock {
		if err == nil && alter {
			s.wakeLocked(now)
		}
		st.mu.Unlock()
		return err
	}
	if ops[blk].Flg&IPC_NOWAIT != 0 {
		st.mu.Unlock()
		return unix.EAGAIN
	}
	w := &semWaiter{ops: ops, pid: c.TGID(), undo: undo, blocking: blk, done: make(chan struct{})}
	s.queue = append(s.queue, w)
	st.mu.Unlock()

	berr := c.Block(w.done, deadline)
	st.mu.Lock()
	defer st.mu.Unlock()
	select {
	case <-w.done:
		// Completed (or removed) even if the wait also ended otherwise.
		return w.err
	default:
	}
	s.dequeue(w)
	if berr == nil {
		berr = unix.EINTR
	}
	return berr
}

// SemidDS is struct semid64_ds.
type SemidDS struct {
	Perm         Perm
	Otime, Ctime int64
	Nsems        uint64
}

// SemStat is semctl's IPC_STAT (id is a semid), SEM_STAT and SEM_STAT_ANY
// (id is an index; the semid is returned).
func (ns *Namespace) SemStat(c Caller, id int32, cmd int32) (SemidDS, int32, error) {
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	var s *semSet
	var ok bool
	if cmd == IPC_STAT {
		s, ok = st.t.byID(id)
	} else {
		s, ok = st.t.byIndex(id)
	}
	if !ok {
		return SemidDS{}, 0, unix.EINVAL
	}
	if cmd != SEM_STAT_ANY {
		if err := s.check(c.Credentials(), mayRead); err != nil {
			return SemidDS{}, 0, err
		}
	}
	ds := SemidDS{Perm: s.Perm, Otime: s.otime, Ctime: s.ctime, Nsems: uint64(len(s.sems))}
	ret := int32(0)
	if cmd != IPC_STAT {
		ret = s.id
	}
	return ds, ret, nil
}

// SemSet is semctl's IPC_SET.
func (ns *Namespace) SemSet(c Caller, id int32, a SetArgs) error {
	st := &ns.sem
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

// SemRemove is semctl's IPC_RMID: waiters get EIDRM and adjustments for
// the set are forgotten.
func (ns *Namespace) SemRemove(c Caller, id int32) error {
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.t.byID(id)
	if !ok {
		return unix.EINVAL
	}
	if !s.owns(c.Credentials()) {
		return unix.EPERM
	}
	st.t.remove(s.id, s)
	st.nsems -= len(s.sems)
	s.removed = true
	for _, w := range s.queue {
		w.err = unix.EIDRM
		close(w.done)
	}
	s.queue = nil
	for proc := range s.undos {
		delete(st.undos[proc], s)
		if len(st.undos[proc]) == 0 {
			delete(st.undos, proc)
		}
	}
	s.undos = nil
	return nil
}

// semForRead finds set id and checks c may read it.
func (st *semTable) semForRead(c Caller, id int32) (*semSet, error) {
	s, ok := st.t.byID(id)
	if !ok {
		return nil, unix.EINVAL
	}
	if err := s.check(c.Credentials(), mayRead); err != nil {
		return nil, err
	}
	return s, nil
}

// SemGetOne is semctl's GETVAL, GETPID, GETNCNT and GETZCNT.
func (ns *Namespace) SemGetOne(c Caller, id int32, num int32, cmd int32) (int32, error) {
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	s, err := st.semForRead(c, id)
	if err != nil {
		return 0, err
	}
	if num < 0 || int(num) >= len(s.sems) {
		return 0, unix.EINVAL
	}
	switch cmd {
	case GETVAL:
		return s.sems[num].val, nil
	case GETPID:
		return s.sems[num].pid, nil
	}
	// A waiter counts on the semaphore its blocking operation is on:
	// GETZCNT for a wait for zero, GETNCNT for a decrement.
	n := int32(0)
	for _, w := range s.queue {
		op := w.ops[w.blocking]
		if int32(op.Num) != num {
			continue
		}
		if (cmd == GETZCNT && op.Op == 0) || (cmd == GETNCNT && op.Op < 0) {
			n++
		}
	}
	return n, nil
}

// SemGetAll is semctl's GETALL.
func (ns *Namespace) SemGetAll(c Caller, id int32) ([]uint16, error) {
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	s, err := st.semForRead(c, id)
	if err != nil {
		return nil, err
	}
	out := make([]uint16, len(s.sems))
	for i, sem := range s.sems {
		out[i] = uint16(sem.val)
	}
	return out, nil
}

// SemNsems returns how many semaphores set id has, after checking that c
// may write it (SETALL reads that many values from the caller).
func (ns *Namespace) SemNsems(c Caller, id int32) (int, error) {
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.t.byID(id)
	if !ok {
		return 0, unix.EINVAL
	}
	if err := s.check(c.Credentials(), mayWrite); err != nil {
		return 0, err
	}
	return len(s.sems), nil
}

// SemSetVal is semctl's SETVAL: the value is set, every process's
// adjustment for it cleared and waiters looked at again.
func (ns *Namespace) SemSetVal(c Caller, id int32, num int32, val int32) error {
	if val < 0 || val > SemVMX {
		return unix.ERANGE
	}
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.t.byID(id)
	if !ok {
		return unix.EINVAL
	}
	if num < 0 || int(num) >= len(s.sems) {
		return unix.EINVAL
	}
	if err := s.check(c.Credentials(), mayWrite); err != nil {
		return err
	}
	for _, u := range s.undos {
		u.adj[num] = 0
	}
	s.sems[num] = semaphore{val: val, pid: c.TGID()}
	now := ns.seconds()
	s.ctime = now
	s.wakeLocked(now)
	return nil
}

// SemSetAll is semctl's SETALL with the values read from the caller
// (one per semaphore).
func (ns *Namespace) SemSetAll(c Caller, id int32, vals []uint16) error {
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.t.byID(id)
	if !ok {
		// Removed while the values were read.
		return unix.EIDRM
	}
	if err := s.check(c.Credentials(), mayWrite); err != nil {
		return err
	}
	if len(vals) != len(s.sems) {
		return unix.EIDRM
	}
	for _, v := range vals {
		if v > SemVMX {
			return unix.ERANGE
		}
	}
	for _, u := range s.undos {
		clear(u.adj)
	}
	pid := c.TGID()
	for i, v := range vals {
		s.sems[i] = semaphore{val: int32(v), pid: pid}
	}
	now := ns.seconds()
	s.ctime = now
	s.wakeLocked(now)
	return nil
}

// SemInfo is struct seminfo.
type SemInfo struct {
	SemMap, SemMNI, SemMNS, SemMNU, SemMSL, SemOPM, SemUME, SemUSZ, SemVMX, SemAEM int32
}

// SemInfo answers IPC_INFO (limits) and SEM_INFO (limits, with semusz and
// semaem replaced by the sets and semaphores in use); it returns the
// highest index in use.
func (ns *Namespace) SemInfo(cmd int32) (SemInfo, int32) {
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	si := SemInfo{
		SemMap: semMap, SemMNI: semMNI, SemMNS: semMNS, SemMNU: semMNU, SemMSL: semMSL,
		SemOPM: semOPM, SemUME: semUME, SemUSZ: semUSZ, SemVMX: SemVMX, SemAEM: semAEM,
	}
	if cmd == SEM_INFO {
		si.SemUSZ = int32(len(st.t.objs))
		si.SemAEM = int32(st.nsems)
	}
	return si, st.t.maxIndex()
}

// exitProcess applies proc's adjustments as it exits: each value moves by
// its adjustment, clamped to [0, SEMVMX], and waiters are looked at again.
func (st *semTable) exitProcess(ns *Namespace, proc any, pid int32) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sets := st.undos[proc]
	delete(st.undos, proc)
	now := ns.seconds()
	for s, u := range sets {
		delete(s.undos, proc)
		changed := false
		for i, a := range u.adj {
			if a == 0 {
				continue
			}
			v := min(max(s.sems[i].val+a, 0), SemVMX)
			s.sems[i] = semaphore{val: v, pid: pid}
			changed = true
		}
		if changed {
			s.wakeLocked(now)
		}
	}
}
