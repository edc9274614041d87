package cmd

import (
	"context"
	"flag"

	"github.com/google/subcommands"
	"golang.org/x/sys/unix"
)

// Kill implements `runsc kill`: signal the container's init, or every
// process with --all.
type Kill struct {
	all bool
	pid int
}

func (*Kill) Name() string     { return "kill" }
func (*Kill) Synopsis() string { return "send a signal to a container" }
func (*Kill) Usage() string    { return "kill [--all] <container-id> [SIGNAL]   (default SIGTERM)\n" }

func (k *Kill) SetFlags(f *flag.FlagSet) {
	f.BoolVar(&k.all, "all", false, "signal every process of the container")
	f.BoolVar(&k.all, "a", false, "shorthand for --all")
	f.IntVar(&k.pid, "pid", 0, "signal this process of the sandbox (its sandbox PID) instead of init")
}

func (k *Kill) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if f.NArg() < 1 || f.NArg() > 2 {
		return usagef("kill: want a container ID and an optional signal, got %d arguments", f.NArg())
	}
	sig := unix.SIGTERM
	if f.NArg() == 2 {
		s, err := ParseSignal(f.Arg(1))
		if err != nil {
			return failf("kill: %v", err)
		}
		sig = s
	}
	c, err := loadContainer(confFrom(args), f.Arg(0))
	if err != nil {
		return failf("kill: %v", err)
	}
	if k.pid != 0 {
		err = c.SignalProcess(int32(k.pid), sig)
	} else {
		err = c.Signal(sig, k.all)
	}
	if err != nil {
		return failf("kill: %v", err)
	}
	return subcommands.ExitSuccess
}
