package cmd

import (
	"context"
	"flag"
	"os"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/syscalls/linux"
)

// Syscalls implements `runsc syscalls`.
type Syscalls struct {
	format string
}

func (*Syscalls) Name() string { return "syscalls" }
func (*Syscalls) Synopsis() string {
	return "print the syscall table and how completely each call is supported"
}
func (*Syscalls) Usage() string { return "syscalls [--format=text|markdown]\n" }

func (c *Syscalls) SetFlags(f *flag.FlagSet) {
	f.StringVar(&c.format, "format", "text", "output format: text or markdown")
}

func (c *Syscalls) Execute(_ context.Context, f *flag.FlagSet, _ ...any) subcommands.ExitStatus {
	if f.NArg() != 0 {
		return usagef("syscalls takes no arguments")
	}
	switch c.format {
	case "text", "markdown":
	default:
		return usagef("syscalls: --format=%s: must be text or markdown", c.format)
	}
	linux.PrintTable(os.Stdout, c.format)
	return subcommands.ExitSuccess
}
