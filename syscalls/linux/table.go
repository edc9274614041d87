// Package linux owns the x86-64 Linux syscall table: for every number its
// name, its handler and how completely Veil supports it. Handlers decode
// arguments, call into the kernel, VFS and socket layers, and return
// (value, errno).
package linux

import (
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/kernel"
)

// Support says how completely a syscall is implemented.
type Support int

const (
	Unimplemented Support = iota
	Partial
	Full
)

func (s Support) String() string {
	switch s {
	case Full:
		return "full"
	case Partial:
		return "partial"
	}
	return "unimplemented"
}

// Handler carries out one syscall for t.
type Handler func(t *kernel.Task, args arch.SyscallArguments) (uintptr, error)

// Syscall is one table entry.
type Syscall struct {
	Name    string
	Support Support
	Note    string
	Fn      Handler
}

// MaxSyscall bounds the table: numbers at or above it are ENOSYS.
const MaxSyscall = 512

var table [MaxSyscall]Syscall

// reg adds a handler; called from init functions of this package.
func reg(nr uintptr, s Support, fn Handler, note ...string) {
	e := &table[nr]
	e.Support = s
	e.Fn = fn
	if len(note) > 0 {
		e.Note = note[0]
	}
}

var loggedMissing sync.Map

// Lookup returns the entry for nr, or nil when nr is out of range.
func Lookup(nr uintptr) *Syscall {
	if nr >= MaxSyscall {
		return nil
	}
	return &table[nr]
}

// Name returns the name of syscall nr ("syscall_N" when unknown).
func Name(nr uintptr) string {
	if nr < MaxSyscall && table[nr].Name != "" {
		return table[nr].Name
	}
	return fmt.Sprintf("syscall_%d", nr)
}

// ReportMissing reports whether nr has not been logged as missing yet, and
// marks it logged: rule 3 of the design, an unimplemented call is logged once.
func ReportMissing(nr uintptr) bool {
	_, loaded := loggedMissing.LoadOrStore(nr, true)
	return !loaded
}

// PrintTable writes the table as `runsc syscalls` shows it.
func PrintTable(w io.Writer, format string) {
	type row struct {
		nr uintptr
		s  *Syscall
	}
	var rows []row
	for nr := range table {
		if table[nr].Name != "" {
			rows = append(rows, row{uintptr(nr), &table[nr]})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].nr < rows[j].nr })
	counts := map[Support]int{}
	for _, r := range rows {
		counts[r.s.Support]++
		switch format {
		case "markdown":
			fmt.Fprintf(w, "| %d | %s | %s | %s |\n", r.nr, r.s.Name, r.s.Support, r.s.Note)
		default:
			fmt.Fprintf(w, "%-4d %-24s %-14s %s\n", r.nr, r.s.Name, r.s.Support, r.s.Note)
		}
	}
	if format != "markdown" {
		fmt.Fprintf(w, "\n%d full, %d partial, %d unimplemented\n", counts[Full], counts[Partial], counts[Unimplemented])
	}
}
