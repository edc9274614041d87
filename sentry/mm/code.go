package mm

import (
	"bytes"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/platform"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

var _ platform.CodeMemory = (*MemoryManager)(nil)

// ReadCode implements platform.CodeMemory.
func (m *MemoryManager) ReadCode(addr hostarch.Addr, dst []byte) error {
	n, err := m.CopyIn(addr, dst)
	if err == nil && n < len(dst) {
		err = unix.EFAULT
	}
	return err
}

// PatchCode implements platform.CodeMemory: the platform's syscall-site
// rewriting. The write goes to this address space's own copy of the page,
// as a write through a private mapping would.
func (m *MemoryManager) PatchCode(addr hostarch.Addr, old, new []byte) error {
	if len(old) == 0 || len(old) != len(new) {
		return unix.EINVAL
	}
	end, ok := addr.AddLength(uint64(len(old)))
	page := addr.RoundDown()
	if !ok || end > m.maxAddr || (end-1).RoundDown() != page {
		return unix.EINVAL
	}
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	v := m.findVMALocked(addr)
	if v == nil || !v.private || v.mappable == nil || !v.perms.Execute || v.perms.Write || end > v.end {
		return unix.EPERM
	}
	m.pagesMu.Lock()
	defer m.pagesMu.Unlock()
	// A write access copies a page that is the file's or shared
	// copy-on-write; a page already private is written in place.
	runs, err := m.getPagesLocked(v, page, page+pageSize, hostarch.Write)
	if len(runs) == 0 || runs[0].start > page || runs[0].end < page+pageSize {
		if err == nil {
			err = unix.EFAULT
		}
		return err
	}
	b, err := m.mf.MapInternal(runs[0].off+uint64(page-runs[0].start), pageSize)
	if err != nil {
		return err
	}
	off := int(addr - page)
	if !bytes.Equal(b[off:off+len(old)], old) {
		return unix.EAGAIN
	}
	copy(b[off:], new)
	m.unmapAS(page, page+pageSize)
	return nil
}
