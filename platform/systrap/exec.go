package systrap

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
)

// The executor. A stub's leader runs application code never: it loops in
// the stub's code (execStart) carrying out the requests the sentry writes
// into the stub's request page: mmap, munmap and mprotect of its address
// space, and clone for a new application thread. The page is mapped
// read-only in the stub and written by the sentry through its own mapping
// of the context memfd, so the application, which shares the address
// space, can read requests but not make or change one. The leader reports
// a request done by pwrite(2)-ing its sequence number into that same page
// through the context memfd, which only the leader holds: the application
// cannot forge a completion, and so cannot make the sentry believe memory
// is unmapped (and reuse it) while the stub still maps it. Results (errno
// or a new thread's ID) come back through the leader's own page, which the
// application can write; it can only lie to itself with them.
//
// Requests from concurrent callers are combined: while one batch is with
// the leader, later callers queue, and the next batch carries all of them.

// The request page (written by the sentry).
const (
	reqSeq            = 0x00 // uint32: the request's sequence number; the leader waits on it
	reqSentrySleeping = 0x04 // uint32: the sentry is (about to be) in FUTEX_WAIT on reqDone
	reqDone           = 0x08 // uint32: the last request done, written only by the leader's pwrite
	reqNOps           = 0x0c // uint32
	reqSpin           = 0x10 // uint32: PAUSEs the leader spins before sleeping (0: it follows its callers instead)
	reqDoneOff        = 0x18 // uint64: reqDone's offset in the context memfd
	reqOps            = 0x40 // the operations: number, six arguments, r12
	opSize            = 0x40
	maxOps            = 63
)

// The leader's page (written by the leader, and the application).
const (
	ldrSleeping = 0x00 // uint32: the leader is (about to be) in FUTEX_WAIT
	ldrResults  = 0x40 // uint64 per operation
)

// execOp is one operation; res is its raw result (rax).
type execOp struct {
	nr   uintptr
	args [6]uintptr
	r12  uint64
	res  uint64
}

type execReq struct {
	ops  []execOp
	done bool
	err  error
}

// executor is the sentry's side of one leader.
type executor struct {
	p        *Platform
	req, ldr []byte // the sentry's views of the two pages
	tgid     int32

	closed atomic.Bool

	mu    sync.Mutex
	cond  sync.Cond
	queue []*execReq
	busy  bool
	dead  bool
	seq   uint32
	// cpu is where the leader was last moved to (follow), or -1.
	cpu int
}

// initPair makes the executor pages of pair read as a fresh executor's,
// before the leader starts on them.
func (p *Platform) initPair(pair int) {
	off := pairOff(pair)
	clear(p.ctxMem[off : off+0x2000])
	binary.LittleEndian.PutUint64(p.ctxMem[off+reqDoneOff:], uint64(off+reqDone))
}

func newExecutor(p *Platform, pair int, tgid int32) *executor {
	off := pairOff(pair)
	e := &executor{p: p, req: p.ctxMem[off : off+0x1000 : off+0x1000], ldr: p.ctxMem[off+0x1000 : off+0x2000 : off+0x2000], tgid: tgid, cpu: -1}
	e.cond.L = &e.mu
	return e
}

func (e *executor) word(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// run has the leader carry out ops, in order, and fills in their results.
func (e *executor) run(ops []execOp) error {
	r := &execReq{ops: ops}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queue = append(e.queue, r)
	for !r.done {
		if e.busy {
			e.cond.Wait()
			continue
		}
		if e.dead {
			for _, q := range e.queue {
				q.done, q.err = true, platform.ErrContextDead
			}
			e.queue = nil
			break
		}
		e.busy = true
		var batch []*execReq
		n := 0
		for len(e.queue) > 0 && (n == 0 || n+len(e.queue[0].ops) <= maxOps) {
			n += len(e.queue[0].ops)
			batch = append(batch, e.queue[0])
			e.queue = e.queue[1:]
		}
		e.mu.Unlock()
		err := e.submit(batch)
		e.mu.Lock()
		if err != nil {
			e.dead = true
		}
		for _, b := range batch {
			b.done, b.err = true, err
		}
		e.busy = false
		e.cond.Broadcast()
	}
	return r.err
}

// submit hands one batch to the leader and waits until it is done.
func (e *executor) submit(batch []*execReq) error {
	le := binary.LittleEndian
	n := 0
	for _, r := range batch {
		for i := range r.ops {
			op := &r.ops[i]
			o := e.req[reqOps+n*opSize:]
			le.PutUint64(o, uint64(op.nr))
			for j, a := range op.args {
				le.PutUint64(o[8+8*j:], uint64(a))
			}
			le.PutUint64(o[56:], op.r12)
			n++
		}
	}
	atomic.StoreUint32(e.word(e.req, reqNOps), uint32(n))
	e.seq++
	seq := e.seq
	// The store is a full barrier (XCHG): either the leader sees the new
	// number before it sleeps or we see its sleeping flag.
	atomic.StoreUint32(e.word(e.req, reqSeq), seq)
	woke := false
	if atomic.LoadUint32(e.word(e.ldr, ldrSleeping)) != 0 {
		e.follow()
		futex(e.word(e.req, reqSeq), futexWake, 1, nil)
		woke = true
	}
	if err := e.wait(seq, woke); err != nil {
		return err
	}
	n = 0
	for _, r := range batch {
		for i := range r.ops {
			r.ops[i].res = le.Uint64(e.ldr[ldrResults+8*n:])
			n++
		}
	}
	return nil
}

// follow moves a sleeping leader to the caller's CPU before waking it: the
// caller then sleeps until the request is done, and on one CPU that is a
// direct switch to the leader and back, where a wake-up across CPUs costs
// an IPI and, on a busy host, waits for the other CPU. (The leader never
// spins: sharing a CPU with its caller, it would only delay it.)
func (e *executor) follow() {
	var cpu uint32
	if _, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); errno != 0 || int(cpu) == e.cpu || e.p.ncpu < 2 {
		return
	}
	var set unix.CPUSet
	set.Set(int(cpu))
	if unix.SchedSetaffinity(int(e.tgid), &set) == nil {
		e.cpu = int(cpu)
	}
}

// wait waits until the leader has done request seq. A leader that was
// asleep runs on this CPU, so the sentry does not spin for it then.
func (e *executor) wait(seq uint32, woke bool) error {
	done := e.word(e.req, reqDone)
	spin := e.p.execSpin
	if woke {
		spin = 0
	}
	if spin > 0 {
		deadline := time.Now().Add(spin)
		for i := 1; ; i++ {
			if atomic.LoadUint32(done) == seq {
				return nil
			}
			if i%64 == 0 && time.Now().After(deadline) {
				break
			}
		}
	}
	ts := unix.NsecToTimespec(int64(deadCheckInterval))
	for {
		if e.closed.Load() {
			return platform.ErrContextDead
		}
		atomic.StoreUint32(e.word(e.req, reqSentrySleeping), 1)
		cur := atomic.LoadUint32(done)
		if cur == seq {
			atomic.StoreUint32(e.word(e.req, reqSentrySleeping), 0)
			return nil
		}
		err := futex(done, futexWait, cur, &ts)
		atomic.StoreUint32(e.word(e.req, reqSentrySleeping), 0)
		if atomic.LoadUint32(done) == seq {
			return nil
		}
		if e.closed.Load() || err == unix.ETIMEDOUT && exited(e.tgid) {
			return platform.ErrContextDead
		}
		if err == unix.ETIMEDOUT {
			// A leader whose sleeping flag the application cleared
			// is woken anyway.
			futex(e.word(e.req, reqSeq), futexWake, 1, nil)
		}
	}
}

// close marks the executor's stub killed and wakes a sentry waiting for it.
func (e *executor) close() {
	e.closed.Store(true)
	futex(e.word(e.req, reqDone), futexWake, 1<<30, nil)
}

// exited reports whether the stub process tgid (a child of the sentry) has
// died, without reaping it.
func exited(tgid int32) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, int(tgid), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
	if err == unix.ECHILD {
		return true
	}
	// si_pid (after signo, errno, code and padding) is set only when the
	// process has exited.
	return err == nil && *(*int32)(unsafe.Pointer(uintptr(unsafe.Pointer(&info)) + 16)) != 0
}
