package ipc

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/memory"
)

// caller is a task for tests: interrupt makes a wait return EINTR.
type caller struct {
	creds     *auth.Credentials
	pid       int32
	interrupt chan struct{}
}

func newCaller(pid int32, creds *auth.Credentials) *caller {
	return &caller{creds: creds, pid: pid, interrupt: make(chan struct{})}
}

func (c *caller) Credentials() *auth.Credentials { return c.creds }
func (c *caller) TGID() int32                    { return c.pid }
func (c *caller) Process() any                   { return c }

func (c *caller) Block(ch <-chan struct{}, deadline time.Time) error {
	var timer <-chan time.Time
	if !deadline.IsZero() {
		timer = time.After(time.Until(deadline))
	}
	select {
	case <-ch:
		return nil
	case <-c.interrupt:
		return unix.EINTR
	case <-timer:
		return unix.EAGAIN
	}
}

func newNS(t *testing.T) *Namespace {
	t.Helper()
	mf, err := memory.NewSized(64 << 20)
	if err != nil {
		t.Skipf("memory file: %v", err)
	}
	t.Cleanup(func() { mf.Close() })
	return NewNamespace(mf, nil)
}

// await runs fn in a goroutine and returns a channel with its result.
func await(fn func() error) chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

func wantPending(t *testing.T, ch chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: returned %v, want still waiting", what, err)
	case <-time.After(30 * time.Millisecond):
	}
}

func wantResult(t *testing.T, ch chan error, want error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if err != want {
			t.Fatalf("%s: got %v, want %v", what, err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still waiting", what)
	}
}

func TestIDsAndKeys(t *testing.T) {
	ns := newNS(t)
	root := newCaller(1, auth.NewRoot())
	seen := map[int32]bool{}
	var last int32
	// Enough churn to wrap the index window: every ID is new.
	for i := 0; i < 200; i++ {
		id, err := ns.MsgGet(root, IPC_PRIVATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("ID %d given out twice", id)
		}
		seen[id] = true
		if err := ns.MsgRemove(root, id); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ns.MsgStat(root, id, IPC_STAT); err != unix.EINVAL {
			t.Fatalf("stale ID %d: %v, want EINVAL", id, err)
		}
		last = id
	}
	if last < ipcMNI {
		t.Errorf("sequence never stepped: last ID %d", last)
	}

	id, err := ns.SemGet(root, 42, 2, IPC_CREAT|IPC_EXCL|0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.SemGet(root, 42, 2, IPC_CREAT|IPC_EXCL|0o600); err != unix.EEXIST {
		t.Errorf("IPC_EXCL: %v", err)
	}
	if got, err := ns.SemGet(root, 42, 0, 0); got != id || err != nil {
		t.Errorf("by key: %d, %v", got, err)
	}
	if _, err := ns.SemGet(root, 43, 1, 0); err != unix.ENOENT {
		t.Errorf("missing key: %v", err)
	}
	if _, err := ns.SemGet(root, 42, 3, 0); err != unix.EINVAL {
		t.Errorf("more semaphores than the set: %v", err)
	}
}

func TestPermCheck(t *testing.T) {
	owner := auth.NewUser(1000, 1000, nil)
	group := auth.NewUser(2000, 3000, []auth.KGID{1000})
	other := auth.NewUser(3000, 3000, nil)
	ipcOwner := auth.NewUser(3000, 3000, nil)
	ipcOwner.EffectiveCaps = 1 << capIPCOwner
	p := newPerm(owner, 0, 0o640, 0, 0)
	for _, tc := range []struct {
		c    *auth.Credentials
		flag int32
		want error
	}{
		{owner, mayRead | mayWrite, nil},
		{owner, 0o600, nil},
		{group, mayRead, nil},
		{group, mayWrite, unix.EACCES},
		{other, mayRead, unix.EACCES},
		{other, 0, nil},
		{ipcOwner, mayRead | mayWrite, nil},
	} {
		if err := p.check(tc.c, tc.flag); err != tc.want {
			t.Errorf("uid %d flag %o: %v, want %v", tc.c.EffectiveKUID, tc.flag, err, tc.want)
		}
	}
	if p.owns(other) || !p.owns(owner) {
		t.Error("owns")
	}
}

func TestMsgTypes(t *testing.T) {
	ns := newNS(t)
	c := newCaller(1, auth.NewRoot())
	id, _ := ns.MsgGet(c, IPC_PRIVATE, 0o600)
	for _, m := range []int64{3, 1, 2, 1} {
		if err := ns.MsgSnd(c, id, m, []byte{byte(m)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		typ  int64
		flag int32
		want int64
	}{
		{-2, 0, 1},
		{3, MSG_EXCEPT, 2},
		{0, 0, 3},
		{1, 0, 1},
	} {
		got, _, err := ns.MsgRcv(c, id, 10, tc.typ, tc.flag|IPC_NOWAIT)
		if err != nil || got != tc.want {
			t.Errorf("type %d flag %o: got %d, %v; want %d", tc.typ, tc.flag, got, err, tc.want)
		}
	}
	if _, _, err := ns.MsgRcv(c, id, 10, 0, IPC_NOWAIT); err != unix.ENOMSG {
		t.Errorf("empty: %v", err)
	}
	ns.MsgSnd(c, id, 5, []byte("hello"), 0)
	if _, _, err := ns.MsgRcv(c, id, 2, 0, IPC_NOWAIT); err != unix.E2BIG {
		t.Errorf("short buffer: %v", err)
	}
	if _, text, err := ns.MsgRcv(c, id, 2, 0, IPC_NOWAIT|MSG_NOERROR); err != nil || string(text) != "he" {
		t.Errorf("MSG_NOERROR: %q, %v", text, err)
	}
}

func TestMsgWaits(t *testing.T) {
	ns := newNS(t)
	c := newCaller(1, auth.NewRoot())
	id, _ := ns.MsgGet(c, IPC_PRIVATE, 0o600)

	r := await(func() error { _, _, err := ns.MsgRcv(c, id, 10, 7, 0); return err })
	wantPending(t, r, "receive of an absent type")
	ns.MsgSnd(c, id, 6, []byte("x"), 0)
	wantPending(t, r, "receive after another type arrived")
	ns.MsgSnd(c, id, 7, []byte("y"), 0)
	wantResult(t, r, nil, "receive")

	ns.MsgSet(c, id, SetArgs{Mode: 0o600, QBytes: 2})
	ns.MsgSnd(c, id, 1, []byte("z"), 0)
	if err := ns.MsgSnd(c, id, 1, []byte("zz"), IPC_NOWAIT); err != unix.EAGAIN {
		t.Errorf("full queue: %v", err)
	}
	s := await(func() error { return ns.MsgSnd(c, id, 1, []byte("w"), 0) })
	wantPending(t, s, "send to a full queue")
	ns.MsgRcv(c, id, 10, 0, 0)
	wantResult(t, s, nil, "send after room was made")

	ns.MsgRcv(c, id, 10, 0, 0) // empty the queue
	ns.MsgRcv(c, id, 10, 0, 0)
	intr := newCaller(2, auth.NewRoot())
	r = await(func() error { _, _, err := ns.MsgRcv(intr, id, 10, 0, 0); return err })
	wantPending(t, r, "receive on an empty queue")
	close(intr.interrupt)
	wantResult(t, r, unix.EINTR, "interrupted receive")

	r = await(func() error { _, _, err := ns.MsgRcv(c, id, 10, 0, 0); return err })
	wantPending(t, r, "receive before removal")
	ns.MsgRemove(c, id)
	wantResult(t, r, unix.EIDRM, "receive on a removed queue")
}

func TestSemOps(t *testing.T) {
	ns := newNS(t)
	c := newCaller(1, auth.NewRoot())
	id, _ := ns.SemGet(c, IPC_PRIVATE, 2, 0o600)
	ns.SemSetVal(c, id, 0, 1)

	// All or nothing.
	err := ns.SemOp(c, id, []SemBuf{{Num: 0, Op: -1}, {Num: 1, Op: -1, Flg: IPC_NOWAIT}}, time.Time{})
	if err != unix.EAGAIN {
		t.Fatalf("blocked second op: %v", err)
	}
	if v, _ := ns.SemGetOne(c, id, 0, GETVAL); v != 1 {
		t.Fatalf("first op applied: %d", v)
	}
	if err := ns.SemOp(c, id, []SemBuf{{Num: 1, Op: 1}, {Num: 0, Op: SemVMX}}, time.Time{}); err != unix.ERANGE {
		t.Fatalf("ERANGE: %v", err)
	}
	if v, _ := ns.SemGetOne(c, id, 1, GETVAL); v != 0 {
		t.Fatalf("op before ERANGE applied: %d", v)
	}
	if err := ns.SemOp(c, id, []SemBuf{{Num: 2, Op: 1}}, time.Time{}); err != unix.EFBIG {
		t.Fatalf("EFBIG: %v", err)
	}
	if err := ns.SemOp(c, id, []SemBuf{{Num: 1, Op: -1}}, time.Now().Add(20*time.Millisecond)); err != unix.EAGAIN {
		t.Fatalf("timeout: %v", err)
	}

	// A chain: w1 takes 0 and releases 1, which w2 waits for.
	w1 := await(func() error {
		return ns.SemOp(c, id, []SemBuf{{Num: 0, Op: -2}, {Num: 1, Op: 1}}, time.Time{})
	})
	w2 := await(func() error { return ns.SemOp(c, id, []SemBuf{{Num: 1, Op: -1}}, time.Time{}) })
	wantPending(t, w1, "w1")
	wantPending(t, w2, "w2")
	if n, _ := ns.SemGetOne(c, id, 0, GETNCNT); n != 1 {
		t.Errorf("GETNCNT on 0: %d", n)
	}
	if n, _ := ns.SemGetOne(c, id, 1, GETNCNT); n != 1 {
		t.Errorf("GETNCNT on 1: %d", n)
	}
	ns.SemOp(c, id, []SemBuf{{Num: 0, Op: 1}}, time.Time{})
	wantResult(t, w1, nil, "w1")
	wantResult(t, w2, nil, "w2")

	z := await(func() error {
		return ns.SemOp(c, id, []SemBuf{{Num: 0, Op: 1}, {Num: 0, Op: -1}, {Num: 1, Op: -1}}, time.Time{})
	})
	wantPending(t, z, "waiter before removal")
	ns.SemRemove(c, id)
	wantResult(t, z, unix.EIDRM, "waiter on a removed set")
}

func TestSemUndo(t *testing.T) {
	ns := newNS(t)
	c := newCaller(1, auth.NewRoot())
	id, _ := ns.SemGet(c, IPC_PRIVATE, 2, 0o600)
	p := newCaller(7, auth.NewRoot())
	ns.SemOp(p, id, []SemBuf{{Num: 0, Op: 3, Flg: SEM_UNDO}, {Num: 1, Op: 2, Flg: SEM_UNDO}}, time.Time{})
	ns.SemOp(c, id, []SemBuf{{Num: 0, Op: -2}}, time.Time{})
	w := await(func() error { return ns.SemOp(c, id, []SemBuf{{Num: 1, Op: 0}}, time.Time{}) })
	wantPending(t, w, "wait for zero")
	ns.ExitProcess(p, 7)
	wantResult(t, w, nil, "wait for zero after the undo")
	vals, _ := ns.SemGetAll(c, id)
	if vals[0] != 0 || vals[1] != 0 {
		t.Errorf("after undo: %v, want [0 0] (0 clamped)", vals)
	}
	if pid, _ := ns.SemGetOne(c, id, 0, GETPID); pid != 7 {
		t.Errorf("GETPID after undo: %d", pid)
	}
	// SETVAL clears adjustments.
	ns.SemOp(p, id, []SemBuf{{Num: 0, Op: 1, Flg: SEM_UNDO}}, time.Time{})
	ns.SemSetVal(c, id, 0, 5)
	ns.ExitProcess(p, 7)
	if v, _ := ns.SemGetOne(c, id, 0, GETVAL); v != 5 {
		t.Errorf("SETVAL kept an adjustment: %d", v)
	}
}

func TestShmLifetime(t *testing.T) {
	ns := newNS(t)
	c := newCaller(1, auth.NewRoot())
	id, err := ns.ShmGet(c, 99, 5000, IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	s, done, err := ns.ShmAttach(c, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.IncRef() // what mapping it does
	done()
	ts, err := s.Translate(0, 2*hostarch.PageSize, hostarch.ReadWrite)
	if err != nil || len(ts) == 0 {
		t.Fatalf("Translate: %v, %v", ts, err)
	}
	if _, err := s.Translate(2*hostarch.PageSize, hostarch.PageSize, hostarch.ReadWrite); err == nil {
		t.Error("Translate past the segment succeeded")
	}
	if ds, _, _ := ns.ShmStat(c, id, IPC_STAT); ds.Nattch != 1 || ds.SegSz != 5000 || ds.Lpid != 1 {
		t.Errorf("stat: %+v", ds)
	}
	if size, ok := ns.IsShm(s); !ok || size != 5000 {
		t.Errorf("IsShm: %d %v", size, ok)
	}
	if err := ns.ShmRemove(c, id); err != nil {
		t.Fatal(err)
	}
	ds, _, err := ns.ShmStat(c, id, IPC_STAT)
	if err != nil || ds.Perm.Mode&SHM_DEST == 0 || ds.Perm.Key != IPC_PRIVATE {
		t.Errorf("after IPC_RMID while attached: %+v, %v", ds, err)
	}
	if _, err := ns.ShmGet(c, 99, 0, 0); err != unix.ENOENT {
		t.Errorf("key of a destroyed segment: %v", err)
	}
	used := ns.mf.TotalUsage()
	s.DecRef()
	if _, _, err := ns.ShmStat(c, id, IPC_STAT); err != unix.EINVAL {
		t.Errorf("after the last detach: %v", err)
	}
	if ns.mf.TotalUsage() >= used {
		t.Errorf("pages not freed: %d -> %d", used, ns.mf.TotalUsage())
	}
	if _, err := ns.ShmGet(c, IPC_PRIVATE, 0, 0); err != unix.EINVAL {
		t.Errorf("size 0: %v", err)
	}
}
