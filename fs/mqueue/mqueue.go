// Package mqueue owns POSIX message queues: the sandbox's one set of
// queues (its IPC namespace; Registry), the mqueue filesystem that shows
// them (mounted where a spec asks, usually /dev/mqueue: a queue is a file
// whose contents are its QSIZE/NOTIFY line, creat makes one with default
// attributes, unlink removes it), and the descriptions mq_open returns,
// which send and receive messages in priority order, block for room or
// for a message, poll readable and writable, and carry an mq_notify
// registration.
//
// Lock order: Registry.mu, then Queue.mu. Signals are sent after Queue.mu
// is released.
package mqueue

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/waiter"
)

// Limits as Linux has them (ipc/mqueue.c, include/linux/ipc_namespace.h).
const (
	DefaultMsgMax     = 10
	DefaultMsgSizeMax = 8192
	DefaultQueuesMax  = 256
	HardMsgMax        = 65536
	HardMsgSizeMax    = 16 << 20
	PrioMax           = 32768 // MQ_PRIO_MAX
	// fileSize is what stat reports as a queue's size (FILENT_SIZE).
	fileSize = 80
	// MQUEUE_MAGIC is statfs's f_type.
	MQUEUE_MAGIC = 0x19800202
)

// Registry is the set of queues of one IPC namespace.
type Registry struct {
	mu     sync.Mutex
	queues map[string]*Queue
	nextNo uint64
	// Limits of /proc/sys/fs/mqueue.
	MsgMax, MsgSizeMax, QueuesMax int64
	// ctime is the mqueue root directory's change time.
	ctime time.Time
}

var registries sync.Map // *kernel.Kernel -> *Registry

// RegistryOf returns k's queues, made on first use.
func RegistryOf(k *kernel.Kernel) *Registry {
	if r, ok := registries.Load(k); ok {
		return r.(*Registry)
	}
	r, _ := registries.LoadOrStore(k, &Registry{
		queues: map[string]*Queue{}, MsgMax: DefaultMsgMax, MsgSizeMax: DefaultMsgSizeMax,
		QueuesMax: DefaultQueuesMax, ctime: time.Now(),
	})
	return r.(*Registry)
}

// Attr is struct mq_attr's content.
type Attr struct {
	Flags, MaxMsg, MsgSize, CurMsgs int64
}

type message struct {
	prio uint32
	data []byte
}

// Queue is one message queue.
type Queue struct {
	r   *Registry
	ino uint64

	mu       sync.Mutex
	name     string
	mode     uint32 // permission bits
	uid      auth.KUID
	gid      auth.KGID
	atime    time.Time
	mtime    time.Time
	ctime    time.Time
	maxMsg   int64
	msgSize  int64
	msgs     []message // highest priority first, FIFO within one
	bytes    int64
	readers  int // tasks blocked receiving
	notifyTG *kernel.ThreadGroup
	notify   Sigevent
	q        waiter.Queue
}

// Sigevent is the part of struct sigevent mq_notify uses.
type Sigevent struct {
	Value  uint64
	Signo  int32
	Notify int32
}

// sigev_notify values.
const (
	SIGEV_SIGNAL = 0
	SIGEV_NONE   = 1
	SIGEV_THREAD = 2
)

// ValidName reports the errno Linux gives for a queue name (without the
// leading slash glibc strips): one path component.
func ValidName(name string) error {
	switch {
	case len(name) > 255:
		return unix.ENAMETOOLONG
	case name == "" || name == "." || name == "..":
		return unix.EACCES
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return unix.EACCES
		}
	}
	return nil
}

// checkAttr validates a new queue's attributes as mq_open does.
func (r *Registry) checkAttr(a *Attr, creds *auth.Credentials) error {
	if a.MaxMsg <= 0 || a.MsgSize <= 0 {
		return unix.EINVAL
	}
	if creds.HasCapability(auth.CAP_SYS_RESOURCE) {
		if a.MaxMsg > HardMsgMax || a.MsgSize > HardMsgSizeMax {
			return unix.EINVAL
		}
	} else if a.MaxMsg > r.MsgMax || a.MsgSize > r.MsgSizeMax {
		return unix.EINVAL
	}
	return nil
}

// create makes the queue name (r.mu held): ENOSPC past queues_max.
func (r *Registry) createLocked(name string, perm uint32, attr *Attr, creds *auth.Credentials) (*Queue, error) {
	a := Attr{MaxMsg: min(DefaultMsgMax, r.MsgMax), MsgSize: min(DefaultMsgSizeMax, r.MsgSizeMax)}
	if attr != nil {
		if err := r.checkAttr(attr, creds); err != nil {
			return nil, err
		}
		a = *attr
	}
	if int64(len(r.queues)) >= r.QueuesMax && !creds.HasCapability(auth.CAP_SYS_RESOURCE) {
		return nil, unix.ENOSPC
	}
	r.nextNo++
	now := time.Now()
	q := &Queue{r: r, ino: r.nextNo + 1, name: name, mode: perm & 07777, uid: creds.EffectiveKUID,
		gid: creds.EffectiveKGID, atime: now, mtime: now, ctime: now, maxMsg: a.MaxMsg, msgSize: a.MsgSize}
	r.queues[name] = q
	r.ctime = now
	return q, nil
}

// Open is mq_open(2) of name with open flags and, for a new queue, perm
// (already masked by the umask) and attr (nil for the defaults).
func (r *Registry) Open(name string, flags uint32, perm uint32, attr *Attr, creds *auth.Credentials) (*Queue, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if flags&unix.O_ACCMODE == unix.O_ACCMODE {
		return nil, unix.EINVAL
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queues[name]
	if q == nil {
		if flags&unix.O_CREAT == 0 {
			return nil, unix.ENOENT
		}
		return r.createLocked(name, perm, attr, creds)
	}
	if flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		return nil, unix.EEXIST
	}
	var want uint32
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		want = 4
	case unix.O_WRONLY:
		want = 2
	case unix.O_RDWR:
		want = 6
	}
	if !q.permits(creds, want) {
		return nil, unix.EACCES
	}
	return q, nil
}

// Unlink is mq_unlink(2): the queue lives on while descriptions of it do.
func (r *Registry) Unlink(name string, creds *auth.Credentials) error {
	if err := ValidName(name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queues[name]
	if q == nil {
		return unix.ENOENT
	}
	// The directory is sticky (01777): only the owner or CAP_FOWNER.
	q.mu.Lock()
	owner := q.uid
	q.mu.Unlock()
	if creds.EffectiveKUID != owner && !creds.HasCapability(auth.CAP_FOWNER) {
		return unix.EPERM
	}
	delete(r.queues, name)
	r.ctime = time.Now()
	return nil
}

// lookup returns the queue name, or nil.
func (r *Registry) lookup(name string) *Queue {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queues[name]
}

// names lists the queues, sorted.
func (r *Registry) names() []*Queue {
	r.mu.Lock()
	defer r.mu.Unlock()
	qs := make([]*Queue, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].name < qs[j].name })
	return qs
}

// permits checks want (r=4, w=2) against the queue's mode.
func (q *Queue) permits(creds *auth.Credentials, want uint32) bool {
	q.mu.Lock()
	mode, uid, gid := q.mode, q.uid, q.gid
	q.mu.Unlock()
	if creds.HasCapability(auth.CAP_DAC_OVERRIDE) {
		return true
	}
	var bits uint32
	switch {
	case creds.EffectiveKUID == uid:
		bits = mode >> 6
	case creds.InGroup(gid):
		bits = mode >> 3
	default:
		bits = mode
	}
	return bits&want == want
}

// Attr returns the queue's attributes (mq_flags is the description's).
func (q *Queue) Attr() Attr {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Attr{MaxMsg: q.maxMsg, MsgSize: q.msgSize, CurMsgs: int64(len(q.msgs))}
}

// status is the line a read of the queue's file gives.
func (q *Queue) status() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	notify, signo, pid := 0, 0, 0
	if q.notifyTG != nil {
		notify = int(q.notify.Notify)
		if q.notify.Notify == SIGEV_SIGNAL {
			signo = int(q.notify.Signo)
		}
		pid = int(q.notifyTG.ID())
	}
	return fmt.Sprintf("QSIZE:%-10d NOTIFY:%-5d SIGNO:%-5d NOTIFY_PID:%-6d\n", q.bytes, notify, signo, pid)
}

// Send queues data with prio. It returns EAGAIN when the queue is full,
// for the caller to wait on the queue's writable event. EMSGSIZE when data
// is longer than the queue's message size.
func (q *Queue) Send(data []byte, prio uint32, sender *kernel.ThreadGroup, uid auth.KUID) error {
	q.mu.Lock()
	if int64(len(data)) > q.msgSize {
		q.mu.Unlock()
		return unix.EMSGSIZE
	}
	if int64(len(q.msgs)) >= q.maxMsg {
		q.mu.Unlock()
		return unix.EAGAIN
	}
	i := sort.Search(len(q.msgs), func(i int) bool { return q.msgs[i].prio < prio })
	q.msgs = append(q.msgs, message{})
	copy(q.msgs[i+1:], q.msgs[i:])
	q.msgs[i] = message{prio: prio, data: append([]byte(nil), data...)}
	q.bytes += int64(len(data))
	now := time.Now()
	q.mtime, q.ctime = now, now
	// A notification goes out when a message reaches an empty queue that
	// no receiver is waiting on; it is then unregistered.
	var tg *kernel.ThreadGroup
	var ev Sigevent
	if len(q.msgs) == 1 && q.readers == 0 && q.notifyTG != nil {
		tg, ev = q.notifyTG, q.notify
		q.notifyTG = nil
	}
	q.mu.Unlock()
	q.q.Notify(waiter.ReadableEvents)
	if tg != nil && ev.Notify == SIGEV_SIGNAL && !tg.Zombie() {
		info := &arch.SignalInfo{Signo: ev.Signo, Code: SI_MESGQ}
		var sender32 int32
		if sender != nil {
			sender32 = int32(sender.ID())
		}
		info.SetPID(sender32)
		info.SetUID(uint32(uid))
		info.SetValue(ev.Value)
		tg.SendSignal(info)
	}
	return nil
}

// SI_MESGQ is si_code of an mq_notify signal.
const SI_MESGQ = -3

// Receive takes the oldest message of the highest priority into a buffer
// of bufLen bytes: EMSGSIZE if bufLen is below the message size, EAGAIN if
// the queue is empty (for the caller to wait).
func (q *Queue) Receive(bufLen int64) ([]byte, uint32, error) {
	q.mu.Lock()
	if bufLen < q.msgSize {
		q.mu.Unlock()
		return nil, 0, unix.EMSGSIZE
	}
	if len(q.msgs) == 0 {
		q.mu.Unlock()
		return nil, 0, unix.EAGAIN
	}
	m := q.msgs[0]
	q.msgs = q.msgs[1:]
	q.bytes -= int64(len(m.data))
	now := time.Now()
	q.atime, q.ctime = now, now
	q.mu.Unlock()
	q.q.Notify(waiter.WritableEvents)
	return m.data, m.prio, nil
}

// Waiting marks a receiver as blocked (+1) or no longer (-1): a waiting
// receiver takes a message in place of a notification.
func (q *Queue) Waiting(d int) {
	q.mu.Lock()
	q.readers += d
	q.mu.Unlock()
}

// Notify is mq_notify(2) for tg: ev nil removes tg's registration;
// otherwise EBUSY if another process is registered.
func (q *Queue) Notify(tg *kernel.ThreadGroup, ev *Sigevent) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.notifyTG != nil && q.notifyTG.Zombie() {
		q.notifyTG = nil
	}
	if ev == nil {
		if q.notifyTG == tg {
			q.notifyTG = nil
		}
		return nil
	}
	if q.notifyTG != nil {
		return unix.EBUSY
	}
	q.notifyTG, q.notify = tg, *ev
	return nil
}

// Readiness is the queue's poll state.
func (q *Queue) Readiness(mask waiter.EventMask) waiter.EventMask {
	q.mu.Lock()
	defer q.mu.Unlock()
	var r waiter.EventMask
	if len(q.msgs) > 0 {
		r |= waiter.ReadableEvents
	}
	if int64(len(q.msgs)) < q.maxMsg {
		r |= waiter.WritableEvents
	}
	return r & mask
}

// EventRegister and EventUnregister reach the queue's waiters.
func (q *Queue) EventRegister(e *waiter.Entry) error { q.q.EventRegister(e); return nil }
func (q *Queue) EventUnregister(e *waiter.Entry)     { q.q.EventUnregister(e) }

// Name is the queue's name, without the slash.
func (q *Queue) Name() string { return q.name }
