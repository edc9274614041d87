package ipc

import (
	"fmt"
	"strings"
)

// ShmText is /proc/sysvipc/shm: one line per segment, in Linux's columns.
func (ns *Namespace) ShmText() string {
	st := &ns.shm
	st.mu.Lock()
	defer st.mu.Unlock()
	var b strings.Builder
	b.WriteString("       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n")
	for _, s := range st.t.sorted() {
		fmt.Fprintf(&b, "%10d %10d  %4o %21d %5d %5d  %5d %5d %5d %5d %5d %10d %10d %10d %21d %21d\n",
			s.Key, s.id, s.Mode, s.size, s.cpid, s.lpid, s.nattch,
			s.UID, s.GID, s.CUID, s.CGID, s.atime, s.dtime, s.ctime, s.mem.Resident(), 0)
	}
	return b.String()
}

// MsgText is /proc/sysvipc/msg.
func (ns *Namespace) MsgText() string {
	mt := &ns.msg
	mt.mu.Lock()
	defer mt.mu.Unlock()
	var b strings.Builder
	b.WriteString("       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n")
	for _, q := range mt.t.sorted() {
		fmt.Fprintf(&b, "%10d %10d  %4o  %10d %10d %5d %5d %5d %5d %5d %5d %10d %10d %10d\n",
			q.Key, q.id, q.Mode, q.cbytes, len(q.msgs), q.lspid, q.lrpid,
			q.UID, q.GID, q.CUID, q.CGID, q.stime, q.rtime, q.ctime)
	}
	return b.String()
}

// SemText is /proc/sysvipc/sem.
func (ns *Namespace) SemText() string {
	st := &ns.sem
	st.mu.Lock()
	defer st.mu.Unlock()
	var b strings.Builder
	b.WriteString("       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n")
	for _, s := range st.t.sorted() {
		fmt.Fprintf(&b, "%10d %10d  %4o %10d %5d %5d %5d %5d %10d %10d\n",
			s.Key, s.id, s.Mode, len(s.sems), s.UID, s.GID, s.CUID, s.CGID, s.otime, s.ctime)
	}
	return b.String()
}
