package mm

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// Fork returns a copy-on-write copy of the address space for a child
// process, with one user and no platform address space yet. Private pages
// are shared by reference count and marked copy-on-write on both sides;
// the parent's writable platform mappings of them are removed so its next
// write faults and copies. Shared mappings stay shared; MADV_DONTFORK vmas
// are not copied and MADV_WIPEONFORK ones come up empty.
func (m *MemoryManager) Fork() (*MemoryManager, error) {
	m.mappingMu.Lock()
	defer m.mappingMu.Unlock()

	c := NewMemoryManager(m.mf, m.maxAddr)
	c.mmapBase, c.stackTop = m.mmapBase, m.stackTop
	c.brkStart, c.brk, c.stackLimit = m.brkStart, m.brk, m.stackLimit
	m.metaMu.Lock()
	c.argv, c.envv, c.executable = m.argv, m.envv, m.executable
	c.auxv = append([]byte(nil), m.auxv...)
	m.metaMu.Unlock()

	// Copy the vmas first: AddMapping may take a Mappable lock that
	// Invalidate holds while waiting for pagesMu, so it must not be called
	// under pagesMu.
	var cow []*vma
	m.vmas.Ascend(func(v *vma) bool {
		if v.dontFork {
			return true
		}
		nv := *v
		nv.locked = false // mlock is not inherited
		if nv.mappable != nil {
			nv.mappable.IncRef()
			nv.mappable.AddMapping(c, nv.ar(), nv.off, nv.writableMapping())
		}
		c.vmas.ReplaceOrInsert(&nv)
		if v.private && !v.wipeOnFork {
			cow = append(cow, v)
		}
		return true
	})

	m.pagesMu.Lock()
	defer m.pagesMu.Unlock()
	for _, v := range cow {
		var shared []pageRun
		for _, r := range m.pages.overlapping(uint64(v.start), uint64(v.end)) {
			shared = append(shared, r.clip(uint64(v.start), uint64(v.end)))
		}
		for _, r := range shared {
			m.mf.IncRef(r.off, r.length())
			r.cow = true
			c.pages.insert(r)
			m.pages.remove(r.start, r.end)
			m.pages.insert(r)
		}
		if len(shared) != 0 && v.perms.Write {
			m.unmapAS(v.start, v.end)
		}
	}
	return c, nil
}

// MapsText returns the address space as /proc/pid/maps shows it.
func (m *MemoryManager) MapsText() string {
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	var b strings.Builder
	m.vmas.Ascend(func(v *vma) bool {
		writeMapsLine(&b, v, m.brkStart, m.brk)
		return true
	})
	return b.String()
}

// mapsNameColumn is where Linux pads a maps line to before the name
// (25 + 6 * sizeof(void *) - 1, then a space).
const mapsNameColumn = 25 + 6*8 - 1

func writeMapsLine(b *strings.Builder, v *vma, brkStart, brk hostarch.Addr) {
	perm := []byte("---p")
	if v.perms.Read {
		perm[0] = 'r'
	}
	if v.perms.Write {
		perm[1] = 'w'
	}
	if v.perms.Execute {
		perm[2] = 'x'
	}
	if !v.private {
		perm[3] = 's'
	}
	var off uint64
	if v.mappable != nil {
		off = v.off
	}
	line := fmt.Sprintf("%08x-%08x %s %08x %02x:%02x %d ",
		uint64(v.start), uint64(v.end), perm, off, unix.Major(v.dev), unix.Minor(v.dev), v.ino)
	name := v.name
	switch {
	case v.hint != "":
		name = v.hint
	case v.mappable == nil && brkStart != 0 && v.start <= brk && v.end >= brkStart:
		name = "[heap]"
	}
	b.WriteString(line)
	if name != "" {
		for i := len(line); i < mapsNameColumn; i++ {
			b.WriteByte(' ')
		}
		b.WriteByte(' ')
		b.WriteString(name)
	}
	b.WriteByte('\n')
}
