// Package ipc owns the sandbox's System V IPC namespace: shared memory
// segments, message queues and semaphore sets, each kind with its own table
// of keys and IDs, permission checks (mode, owner and creator IDs,
// CAP_IPC_OWNER), the limits /proc/sys/kernel reports, and the waits of
// msgsnd, msgrcv and semop. There is one Namespace per sandbox, held by the
// kernel; nothing here knows how syscall arguments are laid out.
//
// IDs are made as Linux makes them: index + sequence*32768, where the index
// is allocated cyclically and the sequence steps each time the index wraps,
// so an ID kept after its object was removed is refused (EINVAL) rather
// than naming a newer object.
//
// Lock order: each kind has one mutex (shmTable.mu, msgTable.mu,
// semTable.mu) guarding its table and every object in it; they are leaves
// except that shmTable.mu is taken under mm.MemoryManager's mapping lock
// (a segment's IncRef/DecRef) and is held while the memory file frees
// pages. A caller never blocks with one of them held. The kernel may call
// ExitProcess with Kernel.mu held.
package ipc

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memory"
)

// Flags and commands shared by the three kinds (include/uapi/linux/ipc.h).
const (
	IPC_PRIVATE = 0

	IPC_CREAT  = 0o1000
	IPC_EXCL   = 0o2000
	IPC_NOWAIT = 0o4000

	IPC_RMID = 0
	IPC_SET  = 1
	IPC_STAT = 2
	IPC_INFO = 3

	// modeMask is the permission part of a mode (S_IRWXUGO).
	modeMask = 0o777

	// ipcMNI is how many objects of one kind a namespace can hold and
	// the factor between sequence and index in an ID.
	ipcMNI = 32768
	// seqMax bounds the sequence so an ID stays a positive int.
	seqMax = (1<<31 - 1) / ipcMNI
)

// Access bits asked of ipc_perm's mode, in the "other" position.
const (
	mayRead  = 4
	mayWrite = 2
	mayExec  = 1
)

// Caller is the task making a call, as IPC needs it.
type Caller interface {
	Credentials() *auth.Credentials
	// TGID is the caller's process ID, recorded as the last to act.
	TGID() int32
	// Process names the caller's SEM_UNDO list: the same value for
	// every thread of one process.
	Process() any
	// Block waits until ch is ready (nil), a signal needs the caller
	// (EINTR) or deadline passes (EAGAIN; a zero deadline never does).
	Block(ch <-chan struct{}, deadline time.Time) error
}

// Perm is an object's struct ipc_perm.
type Perm struct {
	Key  int32
	UID  auth.KUID
	GID  auth.KGID
	CUID auth.KUID
	CGID auth.KGID
	// Mode holds the permission bits and, for segments, SHM_DEST and
	// SHM_LOCKED.
	Mode uint16
	Seq  uint16

	id int32
}

func (p *Perm) ipcPerm() *Perm { return p }

func newPerm(c *auth.Credentials, key, flag, id, seq int32) Perm {
	return Perm{
		id:  id,
		Key: key,
		UID: c.EffectiveKUID, GID: c.EffectiveKGID,
		CUID: c.EffectiveKUID, CGID: c.EffectiveKGID,
		Mode: uint16(flag & modeMask),
		Seq:  uint16(seq),
	}
}

// check is Linux's ipcperms: flag's rwx bits, in any of the three
// positions, must be granted by the owner, group or other part of the
// mode that applies to c, unless c has CAP_IPC_OWNER.
func (p *Perm) check(c *auth.Credentials, flag int32) error {
	want := (flag >> 6) | (flag >> 3) | flag
	granted := int32(p.Mode)
	switch {
	case c.EffectiveKUID == p.UID || c.EffectiveKUID == p.CUID:
		granted >>= 6
	case c.InGroup(p.GID) || c.InGroup(p.CGID):
		granted >>= 3
	}
	if want&^granted&0o7 != 0 && !c.HasCapability(capIPCOwner) {
		return unix.EACCES
	}
	return nil
}

// capIPCOwner is CAP_IPC_OWNER (include/uapi/linux/capability.h).
const capIPCOwner = 15

// owns reports whether c may change or remove the object (IPC_SET,
// IPC_RMID): its owner, its creator, or CAP_SYS_ADMIN.
func (p *Perm) owns(c *auth.Credentials) bool {
	return c.EffectiveKUID == p.CUID || c.EffectiveKUID == p.UID || c.HasCapability(auth.CAP_SYS_ADMIN)
}

// set applies IPC_SET's uid, gid and permission bits.
func (p *Perm) set(uid auth.KUID, gid auth.KGID, mode uint32) {
	p.UID, p.GID = uid, gid
	p.Mode = p.Mode&^modeMask | uint16(mode&modeMask)
}

// SetArgs is what IPC_SET takes from the caller's *id_ds.
type SetArgs struct {
	UID  auth.KUID
	GID  auth.KGID
	Mode uint32
	// QBytes is msqid_ds.msg_qbytes (message queues only).
	QBytes uint64
}

// lookup is the part of shmget, msgget and semget common to the three:
// the object key names, if the call is to use an existing one. create
// says a new object is to be made instead.
func lookup[T object](t *table[T], c *auth.Credentials, key, flag int32) (o T, create bool, err error) {
	if key == IPC_PRIVATE {
		return o, true, nil
	}
	o, ok := t.byKey(key)
	if !ok {
		if flag&IPC_CREAT == 0 {
			return o, false, unix.ENOENT
		}
		return o, true, nil
	}
	if flag&IPC_CREAT != 0 && flag&IPC_EXCL != 0 {
		return o, false, unix.EEXIST
	}
	if err := o.ipcPerm().check(c, flag); err != nil {
		return o, false, err
	}
	return o, false, nil
}

// object is what a table holds: a pointer to a segment, queue or set.
type object interface {
	ipcPerm() *Perm
}

// table maps keys and IDs to the objects of one kind. Callers hold the
// kind's mutex.
type table[T object] struct {
	objs    map[int32]T // by index
	keys    map[int32]int32
	lastIdx int32
	seq     int32
	mni     int32
}

func newTable[T object](mni int32) table[T] {
	return table[T]{objs: map[int32]T{}, keys: map[int32]int32{}, lastIdx: -1, mni: mni}
}

// alloc reserves an index and returns the ID and sequence for it, or
// ENOSPC when the table is full.
func (t *table[T]) alloc() (id, seq int32, err error) {
	if int32(len(t.objs)) >= t.mni {
		return 0, 0, unix.ENOSPC
	}
	// As Linux: indexes cycle through a window half again as large as
	// the number in use (at least 64), so a freed index is not reused at
	// once.
	limit := min(max(int32(len(t.objs))*3/2, 64), ipcMNI)
	idx := int32(-1)
	for i := t.lastIdx + 1; i < limit && idx < 0; i++ {
		if _, used := t.objs[i]; !used {
			idx = i
		}
	}
	for i := int32(0); i < limit && idx < 0; i++ {
		if _, used := t.objs[i]; !used {
			idx = i
		}
	}
	if idx < 0 {
		return 0, 0, unix.ENOSPC
	}
	if idx <= t.lastIdx {
		t.seq++
		if t.seq >= seqMax {
			t.seq = 0
		}
	}
	t.lastIdx = idx
	return t.seq*ipcMNI + idx, t.seq, nil
}

func (t *table[T]) add(id int32, o T) {
	t.objs[id%ipcMNI] = o
	if key := o.ipcPerm().Key; key != IPC_PRIVATE {
		t.keys[key] = id % ipcMNI
	}
}

// byID returns the object an ID names; false for an unused or stale ID.
func (t *table[T]) byID(id int32) (T, bool) {
	if id < 0 {
		var zero T
		return zero, false
	}
	o, ok := t.objs[id%ipcMNI]
	if !ok || int32(o.ipcPerm().Seq) != id/ipcMNI {
		var zero T
		return zero, false
	}
	return o, true
}

// byKey returns the object a key names.
func (t *table[T]) byKey(key int32) (T, bool) {
	if idx, ok := t.keys[key]; ok {
		return t.objs[idx], true
	}
	var zero T
	return zero, false
}

// byIndex returns the object at an index (the *_STAT commands).
func (t *table[T]) byIndex(idx int32) (T, bool) {
	o, ok := t.objs[idx]
	return o, ok && idx >= 0
}

// forgetKey makes an object private: its key no longer finds it.
func (t *table[T]) forgetKey(id int32, o T) {
	p := o.ipcPerm()
	if p.Key != IPC_PRIVATE && t.keys[p.Key] == id%ipcMNI {
		delete(t.keys, p.Key)
	}
	p.Key = IPC_PRIVATE
}

func (t *table[T]) remove(id int32, o T) {
	t.forgetKey(id, o)
	delete(t.objs, id%ipcMNI)
}

// maxIndex is the highest index in use, or 0 with none (what the INFO
// commands return).
func (t *table[T]) maxIndex() int32 {
	m := int32(0)
	for idx := range t.objs {
		m = max(m, idx)
	}
	return m
}

// sorted returns the objects in index order.
func (t *table[T]) sorted() []T {
	out := make([]T, 0, len(t.objs))
	for idx := int32(0); idx < ipcMNI && len(out) < len(t.objs); idx++ {
		if o, ok := t.objs[idx]; ok {
			out = append(out, o)
		}
	}
	return out
}

// Namespace is one IPC namespace: the sandbox's.
type Namespace struct {
	mf  *memory.File
	now func() time.Time

	shm shmTable
	msg msgTable
	sem semTable
}

// NewNamespace returns an empty namespace whose segments live in mf and
// whose timestamps come from now (the sandbox's CLOCK_REALTIME).
func NewNamespace(mf *memory.File, now func() time.Time) *Namespace {
	if now == nil {
		now = time.Now
	}
	ns := &Namespace{mf: mf, now: now}
	ns.shm.init()
	ns.msg.init()
	ns.sem.init()
	return ns
}

func (ns *Namespace) seconds() int64 { return ns.now().Unix() }

// ExitProcess runs when the last thread of a process is gone: its SEM_UNDO
// adjustments are applied.
func (ns *Namespace) ExitProcess(proc any, pid int32) {
	ns.sem.exitProcess(ns, proc, pid)
}

// Limits are the namespace's settings as /proc/sys/kernel shows them.
type Limits struct {
	ShmMax, ShmAll, ShmMNI         uint64
	MsgMax, MsgMNB, MsgMNI         int32
	SemMSL, SemMNS, SemOPM, SemMNI int32
}

// Limits returns the namespace's limits.
func (ns *Namespace) Limits() Limits {
	return Limits{
		ShmMax: shmMax, ShmAll: shmAll, ShmMNI: shmMNI,
		MsgMax: msgMax, MsgMNB: msgMNB, MsgMNI: msgMNI,
		SemMSL: semMSL, SemMNS: semMNS, SemOPM: semOPM, SemMNI: semMNI,
	}
}
