package host

import (
	"strconv"

	"github.com/veil-sandbox/veil/sentry/arch"
	"github.com/veil-sandbox/veil/sentry/hostarch"
)

func itoa(n int) string { return strconv.Itoa(n) }

type memIO struct{ b []byte }

func (m *memIO) CopyInBytes(a hostarch.Addr, d []byte) (int, error)  { return copy(d, m.b[a:]), nil }
func (m *memIO) CopyOutBytes(a hostarch.Addr, s []byte) (int, error) { return copy(m.b[a:], s), nil }

func ioctlArgs(req uint32, addr uintptr) arch.SyscallArguments {
	var a arch.SyscallArguments
	a[1].Value = uintptr(req)
	a[2].Value = addr
	return a
}
