package proc

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/fs/pipe"
	"github.com/veil-sandbox/veil/sentry/kernel"
	"github.com/veil-sandbox/veil/sentry/kernel/auth"
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// sysState is what /proc/sys keeps for a kernel across procfs instances.
type sysState struct {
	bootID string
}

var sysStates sync.Map // *kernel.Kernel → *sysState

func sysStateOf(k *kernel.Kernel) *sysState {
	v, _ := sysStates.LoadOrStore(k, &sysState{bootID: newUUID()})
	return v.(*sysState)
}

// newUUID returns a random (version 4) UUID as text.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Limits the sandbox enforces, as /proc/sys reports them.
const (
	pidMax     = 1 << 22 // kernel.allocTIDLocked's bound
	nrOpen     = 1 << 20 // limits.LimitSet.Set's RLIMIT_NOFILE ceiling
	maxMapCnt  = 65530   // mm's vm.max_map_count
	mmapMinAdr = 0x10000 // mm's vm.mmap_min_addr
	ngroupsMax = 65536
	overflowID = 65534
)

func (fs *Filesystem) sysDir() vfs.Inode {
	ino := uint64(inoSysBase)
	next := func() uint64 { ino++; return ino }
	val := func(s string) func() vfs.Inode { return constFile(next(), s+"\n") }
	random := []entry{
		{"boot_id", val(fs.sys.bootID)},
		{"entropy_avail", val("256")},
		{"poolsize", val("256")},
		{"uuid", textFile(next(), 0444, func(context.Context) (string, error) { return newUUID() + "\n", nil })},
	}
	hostname := next()
	lim := fs.k.IPC().Limits()
	kern := []entry{
		{"cap_last_cap", val(strconv.Itoa(auth.CAP_LAST_CAP))},
		{"domainname", val("(none)")},
		{"hostname", func() vfs.Inode {
			return &fileInode{node: node{ino: hostname, mode: 0644}, read: func(context.Context) ([]byte, error) {
				return []byte(fs.k.Hostname() + "\n"), nil
			}, write: fs.writeHostname}
		}},
		{"msgmax", val(strconv.Itoa(int(lim.MsgMax)))},
		{"msgmnb", val(strconv.Itoa(int(lim.MsgMNB)))},
		{"msgmni", val(strconv.Itoa(int(lim.MsgMNI)))},
		{"ngroups_max", val(strconv.Itoa(ngroupsMax))},
		{"osrelease", val(kernel.Release)},
		{"ostype", val("Linux")},
		{"overflowgid", val(strconv.Itoa(overflowID))},
		{"overflowuid", val(strconv.Itoa(overflowID))},
		{"pid_max", val(strconv.Itoa(pidMax))},
		{"random", dir(next(), fixedEntries(random))},
		{"sem", val(fmt.Sprintf("%d\t%d\t%d\t%d", lim.SemMSL, lim.SemMNS, lim.SemOPM, lim.SemMNI))},
		{"shmall", val(strconv.FormatUint(lim.ShmAll, 10))},
		{"shmmax", val(strconv.FormatUint(lim.ShmMax, 10))},
		{"shmmni", val(strconv.FormatUint(lim.ShmMNI, 10))},
		{"version", val(kernel.Version)},
	}
	vm := []entry{
		{"max_map_count", val(strconv.Itoa(maxMapCnt))},
		{"mmap_min_addr", val(strconv.Itoa(mmapMinAdr))},
		// The sentry never refuses an mmap for want of memory up front:
		// the heuristic mode's answer.
		{"overcommit_memory", val("0")},
		{"overcommit_ratio", val("50")},
	}
	fsys := []entry{
		{"file-max", val("9223372036854775807")},
		{"nr_open", val(strconv.Itoa(nrOpen))},
		{"pipe-max-size", val(strconv.Itoa(pipe.MaxSize))},
	}
	return &dirInode{node: node{ino: inoSys, mode: 0555}, list: fixedEntries([]entry{
		{"fs", dir(next(), fixedEntries(fsys))},
		{"kernel", dir(next(), fixedEntries(kern))},
		{"vm", dir(next(), fixedEntries(vm))},
	})}
}

// writeHostname is sethostname(2) through /proc/sys/kernel/hostname:
// CAP_SYS_ADMIN, at most 64 bytes (longer is cut, as Linux's
// proc_dostring does), a trailing newline dropped.
func (fs *Filesystem) writeHostname(ctx context.Context, data []byte) error {
	if c := auth.CredentialsFromContext(ctx); c != nil && !c.HasCapability(auth.CAP_SYS_ADMIN) {
		return unix.EPERM
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	if len(data) > 64 {
		data = data[:64]
	}
	fs.k.SetHostname(string(data))
	return nil
}
