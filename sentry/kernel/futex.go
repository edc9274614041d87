package kernel

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/mm"
)

// futexKey names a futex word. Private futexes are keyed by address space
// and address. Shared (non-private) ones are keyed the same way for now:
// waiters in other processes sharing the memory are not matched yet.
type futexKey struct {
	mm   *mm.MemoryManager
	addr hostarch.Addr
}

type futexWaiter struct {
	key    futexKey
	bitset uint32
	ch     chan struct{}
	woken  bool
}

// futexManager holds every waiter; one mutex is enough at this scale.
type futexManager struct {
	mu      sync.Mutex
	waiters map[futexKey][]*futexWaiter
}

func (t *Task) futexKey(addr hostarch.Addr) futexKey {
	return futexKey{mm: t.mm, addr: addr}
}

// futexWord returns a pointer to the aligned word at addr in the sentry's
// mapping of application memory, valid until release is called.
func (t *Task) futexWord(addr hostarch.Addr, write bool) (*uint32, func(), error) {
	if addr%4 != 0 {
		return nil, nil, unix.EINVAL
	}
	blocks, release, err := t.mm.Blocks(hostarch.AddrRange{Start: addr, End: addr + 4}, write)
	if err != nil || len(blocks) != 1 || len(blocks[0]) != 4 {
		if release != nil {
			release()
		}
		return nil, nil, unix.EFAULT
	}
	return (*uint32)(unsafe.Pointer(&blocks[0][0])), release, nil
}

func (m *futexManager) enqueueLocked(w *futexWaiter) {
	if m.waiters == nil {
		m.waiters = make(map[futexKey][]*futexWaiter)
	}
	m.waiters[w.key] = append(m.waiters[w.key], w)
}

func (m *futexManager) removeLocked(w *futexWaiter) {
	ws := m.waiters[w.key]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(m.waiters, w.key)
	} else {
		m.waiters[w.key] = ws
	}
}

// FutexWait is FUTEX_WAIT(_BITSET).
func (t *Task) FutexWait(addr hostarch.Addr, val, bitset uint32, deadline time.Time) error {
	if bitset == 0 {
		return unix.EINVAL
	}
	m := &t.k.futexes
	w := &futexWaiter{key: t.futexKey(addr), bitset: bitset, ch: make(chan struct{}, 1)}
	m.mu.Lock()
	p, release, err := t.futexWord(addr, false)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	cur := atomic.LoadUint32(p)
	release()
	if cur != val {
		m.mu.Unlock()
		return unix.EAGAIN
	}
	m.enqueueLocked(w)
	m.mu.Unlock()
	err = t.Block(w.ch, deadline)
	m.mu.Lock()
	woken := w.woken
	if !woken {
		m.removeLocked(w)
	}
	m.mu.Unlock()
	if woken {
		return nil
	}
	if err == ErrTimedOut {
		return unix.ETIMEDOUT
	}
	return errRestartSys
}

// wake wakes up to n waiters on addr whose bitset intersects bitset.
func (m *futexManager) wake(t *Task, addr hostarch.Addr, private bool, n int, bitset uint32) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wakeLocked(t.futexKey(addr), n, bitset)
}

func (m *futexManager) wakeLocked(key futexKey, n int, bitset uint32) int {
	woken := 0
	ws := m.waiters[key]
	var keep []*futexWaiter
	for _, w := range ws {
		if woken < n && w.bitset&bitset != 0 {
			w.woken = true
			w.ch <- struct{}{}
			woken++
			continue
		}
		keep = append(keep, w)
	}
	if len(keep) == 0 {
		delete(m.waiters, key)
	} else {
		m.waiters[key] = keep
	}
	return woken
}

// FutexWake is FUTEX_WAKE(_BITSET).
func (t *Task) FutexWake(addr hostarch.Addr, n int, bitset uint32) (int, error) {
	if bitset == 0 {
		return 0, unix.EINVAL
	}
	if addr%4 != 0 {
		return 0, unix.EINVAL
	}
	return t.k.futexes.wake(t, addr, true, n, bitset), nil
}

// FutexRequeue is FUTEX_REQUEUE / FUTEX_CMP_REQUEUE (cmp non-nil).
func (t *Task) FutexRequeue(addr, addr2 hostarch.Addr, nwake, nrequeue int, cmp *uint32) (int, error) {
	if addr%4 != 0 || addr2%4 != 0 {
		return 0, unix.EINVAL
	}
	m := &t.k.futexes
	m.mu.Lock()
	defer m.mu.Unlock()
	if cmp != nil {
		p, release, err := t.futexWord(addr, false)
		if err != nil {
			return 0, err
		}
		cur := atomic.LoadUint32(p)
		release()
		if cur != *cmp {
			return 0, unix.EAGAIN
		}
	}
	key, key2 := t.futexKey(addr), t.futexKey(addr2)
	n := m.wakeLocked(key, nwake, ^uint32(0))
	moved := 0
	for _, w := range append([]*futexWaiter(nil), m.waiters[key]...) {
		if moved >= nrequeue {
			break
		}
		m.removeLocked(w)
		w.key = key2
		m.enqueueLocked(w)
		moved++
	}
	return n + moved, nil
}

// FutexWakeOp is FUTEX_WAKE_OP: atomically apply an operation to *addr2,
// wake n on addr, and n2 on addr2 if the old value of *addr2 passes the
// comparison (futex(2)).
func (t *Task) FutexWakeOp(addr, addr2 hostarch.Addr, n, n2 int, op uint32) (int, error) {
	if addr%4 != 0 {
		return 0, unix.EINVAL
	}
	m := &t.k.futexes
	m.mu.Lock()
	defer m.mu.Unlock()
	p, release, err := t.futexWord(addr2, true)
	if err != nil {
		return 0, err
	}
	opType := (op >> 28) & 7
	cmpType := (op >> 24) & 15
	oparg := (op >> 12) & 0xfff
	cmparg := op & 0xfff
	if op>>31 != 0 { // FUTEX_OP_OPARG_SHIFT
		if oparg > 31 {
			release()
			return 0, unix.EINVAL
		}
		oparg = 1 << oparg
	}
	var old uint32
	for {
		old = atomic.LoadUint32(p)
		var nv uint32
		switch opType {
		case 0:
			nv = oparg
		case 1:
			nv = old + oparg
		case 2:
			nv = old | oparg
		case 3:
			nv = old &^ oparg
		case 4:
			nv = old ^ oparg
		default:
			release()
			return 0, unix.ENOSYS
		}
		if atomic.CompareAndSwapUint32(p, old, nv) {
			break
		}
	}
	release()
	var ok bool
	switch cmpType {
	case 0:
		ok = old == cmparg
	case 1:
		ok = old != cmparg
	case 2:
		ok = old < cmparg
	case 3:
		ok = old <= cmparg
	case 4:
		ok = old > cmparg
	case 5:
		ok = old >= cmparg
	default:
		return 0, unix.ENOSYS
	}
	woken := m.wakeLocked(t.futexKey(addr), n, ^uint32(0))
	if ok {
		woken += m.wakeLocked(t.futexKey(addr2), n2, ^uint32(0))
	}
	return woken, nil
}

// ownerDied marks a robust futex held by the exiting task.
func (m *futexManager) ownerDied(t *Task, addr hostarch.Addr) {
	const tidMask = 0x3fffffff
	const ownerDied = 0x40000000
	const waiters = 0x80000000
	m.mu.Lock()
	defer m.mu.Unlock()
	p, release, err := t.futexWord(addr, true)
	if err != nil {
		return
	}
	defer release()
	for {
		old := atomic.LoadUint32(p)
		if old&tidMask != uint32(t.tid) {
			return
		}
		if atomic.CompareAndSwapUint32(p, old, (old&waiters)|ownerDied) {
			if old&waiters != 0 {
				m.wakeLocked(t.futexKey(addr), 1, ^uint32(0))
			}
			return
		}
	}
}
