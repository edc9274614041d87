package arch

import "github.com/veil-sandbox/veil/sentry/hostarch"

// SyscallArgument is one raw syscall argument register.
type SyscallArgument struct{ Value uintptr }

// SyscallArguments are the six argument registers of a syscall.
type SyscallArguments [6]SyscallArgument

func (a SyscallArgument) Pointer() hostarch.Addr { return hostarch.Addr(a.Value) }
func (a SyscallArgument) Int() int32             { return int32(a.Value) }
func (a SyscallArgument) Uint() uint32           { return uint32(a.Value) }
func (a SyscallArgument) Int64() int64           { return int64(a.Value) }
func (a SyscallArgument) Uint64() uint64         { return uint64(a.Value) }
func (a SyscallArgument) SizeT() uint            { return uint(a.Value) }
func (a SyscallArgument) ModeT() uint32          { return uint32(uint16(a.Value)) }
