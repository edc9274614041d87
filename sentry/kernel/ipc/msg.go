package ipc

import (
	"math"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/kernel/auth"
)

// Message queue flags and commands (include/uapi/linux/msg.h).
const (
	MSG_NOERROR = 0o10000
	MSG_EXCEPT  = 0o20000
	MSG_COPY    = 0o40000

	MSG_STAT     = 11
	MSG_INFO     = 12
	MSG_STAT_ANY = 13
)

// Linux's defaults for message queue limits.
const (
	msgMax  = 8192  // largest message
	msgMNB  = 16384 // default and unprivileged maximum msg_qbytes
	msgMNI  = 32000
	msgSSZ  = 16
	msgPool = msgMNI * msgMNB / 1024
	msgTQL  = msgMNB
	msgMap  = msgMNB
	msgSeg  = 0xffff
)

// capSysResource is CAP_SYS_RESOURCE.
const capSysResource = auth.CAP_SYS_RESOURCE

type msgTable struct {
	mu sync.Mutex
	t  table[*msgQueue]
	// nmsgs and nbytes count every queued message (MSG_INFO).
	nmsgs, nbytes uint64
}

func (mt *msgTable) init() { mt.t = newTable[*msgQueue](msgMNI) }

type message struct {
	mtype int64
	text  []byte
}

// msgQueue is a message queue. Fields are guarded by msgTable.mu.
type msgQueue struct {
	Perm
	msgs                []message
	cbytes, qbytes      uint64
	stime, rtime, ctime int64
	lspid, lrpid        int32
	removed             bool
	// changed is closed, and replaced, whenever a message comes or goes,
	// msg_qbytes changes or the queue is removed: every sender and
	// receiver waiting on the queue looks again.
	changed chan struct{}
}

func (q *msgQueue) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// MsgGet is msgget(2).
func (ns *Namespace) MsgGet(c Caller, key int32, flag int32) (int32, error) {
	mt := &ns.msg
	mt.mu.Lock()
	defer mt.mu.Unlock()
	creds := c.Credentials()
	q, create, err := lookup(&mt.t, creds, key, flag)
	if err != nil {
		return 0, err
	}
	if !create {
		return q.id, nil
	}
	id, seq, err := mt.t.alloc()
	if err != nil {
		return 0, err
	}
	q = &msgQueue{
		Perm:    newPerm(creds, key, flag, id, seq),
		qbytes:  msgMNB,
		ctime:   ns.seconds(),
		changed: make(chan struct{}),
	}
	mt.t.add(id, q)
	return id, nil
}

// MsgSnd is msgsnd(2) once the message is read in: mtype and text are
// checked by the caller (mtype > 0, len(text) <= msgmax). It waits while
// the queue is full unless flag has IPC_NOWAIT (EAGAIN).
func (ns *Namespace) MsgSnd(c Caller, id int32, mtype int64, text []byte, flag int32) error {
	mt := &ns.msg
	mt.mu.Lock()
	defer mt.mu.Unlock()
	q, ok := mt.t.byID(id)
	if !ok {
		return unix.EINVAL
	}
	for {
		if err := q.check(c.Credentials(), mayWrite); err != nil {
			return err
		}
		n := uint64(len(text))
		if q.cbytes+n <= q.qbytes && uint64(len(q.msgs))+1 <= q.qbytes {
			q.msgs = append(q.msgs, message{mtype: mtype, text: text})
			q.cbytes += n
			mt.nmsgs++
			mt.nbytes += n
			q.stime = ns.seconds()
			q.lspid = c.TGID()
			q.notifyLocked()
			return nil
		}
		if flag&IPC_NOWAIT != 0 {
			return unix.EAGAIN
		}
		ch := q.changed
		mt.mu.Unlock()
		err := c.Block(ch, time.Time{})
		mt.mu.Lock()
		if q.removed {
			return unix.EIDRM
		}
		if err != nil {
			return err
		}
	}
}

// find returns the index of the message msgrcv's type and flags select, or
// -1.
func (q *msgQueue) find(mtype int64, flag int32) int {
	switch {
	case flag&MSG_COPY != 0:
		// mtype numbers the message (0 is the first).
		if mtype >= 0 && mtype < int64(len(q.msgs)) {
			return int(mtype)
		}
	case mtype == 0:
		if len(q.msgs) > 0 {
			return 0
		}
	case mtype < 0:
		// The first message of the lowest type not above |mtype|.
		limit := int64(math.MaxInt64)
		if mtype != math.MinInt64 {
			limit = -mtype
		}
		best := -1
		for i, m := range q.msgs {
			if m.mtype <= limit && (best < 0 || m.mtype < q.msgs[best].mtype) {
				best = i
			}
		}
		return best
	case flag&MSG_EXCEPT != 0:
		for i, m := range q.msgs {
			if m.mtype != mtype {
				return i
			}
		}
	default:
		for i, m := range q.msgs {
			if m.mtype == mtype {
				return i
			}
		}
	}
	return -1
}

// MsgRcv is msgrcv(2): it takes the message mtype and flag select (see
// msgrcv(2): 0 any, >0 that type or with MSG_EXCEPT any other, <0 the
// lowest type up to -mtype; with MSG_COPY, a copy of message number mtype)
// and returns its type and at most bufsz bytes of its text. A longer
// message is E2BIG unless flag has MSG_NOERROR. With nothing to take it
// waits unless flag has IPC_NOWAIT (ENOMSG).
func (ns *Namespace) MsgRcv(c Caller, id int32, bufsz uint64, mtype int64, flag int32) (int64, []byte, error) {
	mt := &ns.msg
	mt.mu.Lock()
	defer mt.mu.Unlock()
	q, ok := mt.t.byID(id)
	if !ok {
		return 0, nil, unix.EINVAL
	}
	for {
		if err := q.check(c.Credentials(), mayRead); err != nil {
			return 0, nil, err
		}
		if i := q.find(mtype, flag); i >= 0 {
			m := q.msgs[i]
			n := uint64(len(m.text))
			if bufsz < n && flag&MSG_NOERROR == 0 {
				return 0, nil, unix.E2BIG
			}
			if flag&MSG_COPY != 0 {
				// Linux copies into a buffer of bufsz bytes and
				// refuses a message that does not fit it.
				if n > min(bufsz, msgMax) {
					return 0, nil, unix.EINVAL
				}
				return m.mtype, append([]byte(nil), m.text...), nil
			}
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			q.cbytes -= n
			mt.nmsgs--
			mt.nbytes -= n
			q.rtime = ns.seconds()
			q.lrpid = c.TGID()
			q.notifyLocked()
			return m.mtype, m.text[:min(n, bufsz)], nil
		}
		if flag&IPC_NOWAIT != 0 {
			return 0, nil, unix.ENOMSG
		}
		ch := q.changed
		mt.mu.Unlock()
		err := c.Block(ch, time.Time{})
		mt.mu.Lock()
		if q.removed {
			return 0, nil, unix.EIDRM
		}
		if err != nil {
			return 0, nil, err
		}
	}
}

// MsqidDS is struct msqid64_ds.
type MsqidDS struct {
	Perm                Perm
	Stime, Rtime, Ctime int64
	Cbytes, Qnum        uint64
	Qbytes              uint64
	Lspid, Lrpid        int32
}

// MsgStat is msgctl's IPC_STAT (id is a msqid), MSG_STAT and MSG_STAT_ANY
// (id is an index; the msqid is returned).
func (ns *Namespace) MsgStat(c Caller, id int32, cmd int32) (MsqidDS, int32, error) {
	mt := &ns.msg
	mt.mu.Lock()
	defer mt.mu.Unlock()
	var q *msgQueue
	var ok bool
	if cmd == IPC_STAT {
		q, ok = mt.t.byID(id)
	} else {
		q, ok = mt.t.byIndex(id)
	}
	if !ok {
		return MsqidDS{}, 0, unix.EINVAL
	}
	if cmd != MSG_STAT_ANY {
		if err := q.check(c.Credentials(), mayRead); err != nil {
			return MsqidDS{}, 0, err
		}
	}
	ds := MsqidDS{
		Perm:  q.Perm,
		Stime: q.stime, Rtime: q.rtime, Ctime: q.ctime,
		Cbytes: q.cbytes, Qnum: uint64(len(q.msgs)), Qbytes: q.qbytes,
		Lspid: q.lspid, Lrpid: q.lrpid,
	}
	ret := int32(0)
	if cmd != IPC_STAT {
		ret = q.id
	}
	return ds, ret, nil
}

// MsgSet is msgctl's IPC_SET: owner, group, mode and msg_qbytes; raising
// msg_qbytes above msgmnb needs CAP_SYS_RESOURCE.
func (ns *Namespace) MsgSet(c Caller, id int32, a SetArgs) error {
	mt := &ns.msg
	mt.mu.Lock()
	defer mt.mu.Unlock()
	q, ok := mt.t.byID(id)
	if !ok {
		return unix.EINVAL
	}
	creds := c.Credentials()
	if !q.owns(creds) {
		return unix.EPERM
	}
	if a.QBytes > msgMNB && !creds.HasCapability(capSysResource) {
		return unix.EPERM
	}
	q.set(a.UID, a.GID, a.Mode)
	q.qbytes = a.QBytes
	q.ctime = ns.seconds()
	// Senders may fit now; receivers may have lost permission.
	q.notifyLocked()
	return nil
}

// MsgRemove is msgctl's IPC_RMID: queued messages are dropped and every
// waiter gets EIDRM.
func (ns *Namespace) MsgRemove(c Caller, id int32) error {
	mt := &ns.msg
	mt.mu.Lock()
	defer mt.mu.Unlock()
	q, ok := mt.t.byID(id)
	if !ok {
		return unix.EINVAL
	}
	if !q.owns(c.Credentials()) {
		return unix.EPERM
	}
	mt.t.remove(q.id, q)
	mt.nmsgs -= uint64(len(q.msgs))
	mt.nbytes -= q.cbytes
	q.msgs, q.cbytes = nil, 0
	q.removed = true
	q.notifyLocked()
	return nil
}

// MsgInfo is struct msginfo.
type MsgInfo struct {
	MsgPool, MsgMap, MsgMax, MsgMNB, MsgMNI, MsgSSZ, MsgTQL int32
	MsgSeg                                                  uint16
}

// MsgInfo answers IPC_INFO (limits) and MSG_INFO (limits, with pool, map
// and tql replaced by the queues, messages and bytes in use); it returns
// the highest index in use.
func (ns *Namespace) MsgInfo(cmd int32) (MsgInfo, int32) {
	mt := &ns.msg
	mt.mu.Lock()
	defer mt.mu.Unlock()
	mi := MsgInfo{
		MsgPool: msgPool, MsgMap: msgMap, MsgMax: msgMax, MsgMNB: msgMNB,
		MsgMNI: msgMNI, MsgSSZ: msgSSZ, MsgTQL: msgTQL, MsgSeg: msgSeg,
	}
	if cmd == MSG_INFO {
		mi.MsgPool = int32(len(mt.t.objs))
		mi.MsgMap = int32(min(mt.nmsgs, math.MaxInt32))
		mi.MsgTQL = int32(min(mt.nbytes, math.MaxInt32))
	}
	return mi, mt.t.maxIndex()
}
