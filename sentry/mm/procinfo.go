package mm

import (
	"fmt"
	"strings"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// What /proc/PID/smaps, statm and status read of an address space.
//
// Resident memory here is what the address space's own page table holds:
// private pages (anonymous memory, and copies of file pages it wrote).
// Pages of shared and file mappings belong to their Mappable and are not
// counted, so Rss is a lower bound, as it is for a task whose file pages
// Linux has not yet faulted in.

// MemStats are the sizes, in bytes, that status and statm show.
type MemStats struct {
	// Size is every VMA's length (VmSize); Locked that of mlocked ones.
	Size, Locked uint64
	// Resident is the private pages present (VmRSS, RssAnon).
	Resident uint64
	// Data is private writable memory other than the stack (VmData),
	// Stack the growsdown areas (VmStk), Text the executable file mappings
	// of the program itself and Lib those of other files (VmExe, VmLib).
	Data, Stack, Text, Lib uint64
}

// MemStats returns the address space's sizes.
func (m *MemoryManager) MemStats() MemStats {
	exe := m.Executable()
	var s MemStats
	m.mappingMu.RLock()
	m.vmas.Ascend(func(v *vma) bool {
		n := v.length()
		s.Size += n
		if v.locked {
			s.Locked += n
		}
		switch {
		case v.growsDown || v.hint == "[stack]":
			s.Stack += n
		case v.perms.Execute && v.mappable != nil && v.name != "":
			if v.name == exe {
				s.Text += n
			} else {
				s.Lib += n
			}
		case v.private && v.perms.Write:
			s.Data += n
		}
		return true
	})
	m.mappingMu.RUnlock()
	s.Resident = m.ResidentSize()
	return s
}

// vmaResidency is what the page table holds of one VMA.
type vmaResidency struct {
	rss, pss, shared, private uint64
}

// residencyLocked measures [start, end). A run's reference count is read
// at its first page: the pages of one run were faulted or forked together
// and share it but for later partial copies. pagesMu is held.
func (m *MemoryManager) residencyLocked(start, end hostarch.Addr) vmaResidency {
	var r vmaResidency
	for _, run := range m.pages.overlapping(uint64(start), uint64(end)) {
		run = run.clip(uint64(start), uint64(end))
		n := run.length()
		r.rss += n
		refs := m.mf.RefCount(run.off)
		if refs <= 1 {
			r.private += n
			r.pss += n
		} else {
			r.shared += n
			r.pss += n / refs
		}
	}
	return r
}

// SmapsText returns the address space as /proc/PID/smaps shows it: each
// maps line followed by its sizes in kB.
func (m *MemoryManager) SmapsText() string {
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	var b strings.Builder
	m.vmas.Ascend(func(v *vma) bool {
		writeMapsLine(&b, v, m.brkStart, m.brk)
		var r vmaResidency
		if v.private {
			m.pagesMu.Lock()
			r = m.residencyLocked(v.start, v.end)
			m.pagesMu.Unlock()
		}
		kb := func(n uint64) uint64 { return n / 1024 }
		locked := uint64(0)
		if v.locked {
			locked = r.pss
		}
		fmt.Fprintf(&b, "Size:           %8d kB\n", kb(v.length()))
		fmt.Fprintf(&b, "KernelPageSize: %8d kB\nMMUPageSize:    %8d kB\n", pageSize/1024, pageSize/1024)
		fmt.Fprintf(&b, "Rss:            %8d kB\nPss:            %8d kB\n", kb(r.rss), kb(r.pss))
		fmt.Fprintf(&b, "Pss_Dirty:      %8d kB\n", kb(r.pss))
		fmt.Fprintf(&b, "Shared_Clean:   %8d kB\nShared_Dirty:   %8d kB\n", 0, kb(r.shared))
		fmt.Fprintf(&b, "Private_Clean:  %8d kB\nPrivate_Dirty:  %8d kB\n", 0, kb(r.private))
		fmt.Fprintf(&b, "Referenced:     %8d kB\nAnonymous:      %8d kB\n", kb(r.rss), kb(r.rss))
		fmt.Fprintf(&b, "KSM:            %8d kB\nLazyFree:       %8d kB\n", 0, 0)
		fmt.Fprintf(&b, "AnonHugePages:  %8d kB\nShmemPmdMapped: %8d kB\nFilePmdMapped:  %8d kB\n", 0, 0, 0)
		fmt.Fprintf(&b, "Shared_Hugetlb: %8d kB\nPrivate_Hugetlb:%8d kB\n", 0, 0)
		fmt.Fprintf(&b, "Swap:           %8d kB\nSwapPss:        %8d kB\n", 0, 0)
		fmt.Fprintf(&b, "Locked:         %8d kB\n", kb(locked))
		fmt.Fprintf(&b, "THPeligible:    0\n")
		b.WriteString("VmFlags:")
		for _, f := range vmFlags(v) {
			b.WriteByte(' ')
			b.WriteString(f)
		}
		b.WriteByte('\n')
		return true
	})
	return b.String()
}

// vmFlags are smaps' two-letter VMA flags.
func vmFlags(v *vma) []string {
	var fs []string
	add := func(ok bool, f string) {
		if ok {
			fs = append(fs, f)
		}
	}
	add(v.perms.Read, "rd")
	add(v.perms.Write, "wr")
	add(v.perms.Execute, "ex")
	add(!v.private, "sh")
	add(v.maxPerms.Read, "mr")
	add(v.maxPerms.Write, "mw")
	add(v.maxPerms.Execute, "me")
	add(!v.private && v.maxPerms.Write, "ms")
	add(v.growsDown, "gd")
	add(v.locked, "lo")
	add(v.dontFork, "dc")
	add(v.wipeOnFork, "wf")
	if v.mappable == nil || !v.private {
		fs = append(fs, "ac")
	}
	return fs
}

// Layout is where /proc/PID/stat says the program's parts are.
type Layout struct {
	StartCode, EndCode, StartBrk, StartStack hostarch.Addr
}

// Layout returns the bounds of the executable's code (its executable
// mappings), the start of the program break and the top of the initial
// stack.
func (m *MemoryManager) Layout() Layout {
	exe := m.Executable()
	m.mappingMu.RLock()
	defer m.mappingMu.RUnlock()
	l := Layout{StartBrk: m.brkStart, StartStack: m.stackTop}
	m.vmas.Ascend(func(v *vma) bool {
		if v.perms.Execute && v.mappable != nil && v.name == exe {
			if l.StartCode == 0 {
				l.StartCode = v.start
			}
			l.EndCode = v.end
		}
		return true
	})
	return l
}
