package cmd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/google/subcommands"
	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/runsc/boot"
)

// Boot implements `runsc boot`, the sentry. It is started only by
// runsc/sandbox, as the init of new mount, PID, IPC, UTS and network
// namespaces, with its boot.Args as JSON on --args-fd (sandbox.BootArgsFD).
type Boot struct {
	argsFD int
}

func (*Boot) Name() string     { return "boot" }
func (*Boot) Synopsis() string { return "(internal) run the sentry; started by runsc itself" }
func (*Boot) Usage() string    { return "boot --args-fd=N\n" }

func (c *Boot) SetFlags(f *flag.FlagSet) {
	f.IntVar(&c.argsFD, "args-fd", -1, "FD carrying the JSON-encoded boot arguments")
}

// readArgs decodes the JSON document on fd and closes fd.
func readArgs(fd int, v any) error {
	if fd < 0 {
		return fmt.Errorf("--args-fd is required (this command is started by runsc itself)")
	}
	f := os.NewFile(uintptr(fd), "args")
	if f == nil {
		return fmt.Errorf("--args-fd=%d: not a valid FD", fd)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("reading arguments from FD %d: %w", fd, err)
	}
	return nil
}

func (c *Boot) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	conf := confFrom(args)
	var bargs boot.Args
	if err := readArgs(c.argsFD, &bargs); err != nil {
		return failf("boot: %v", err)
	}
	if err := prepareSentryMounts(); err != nil {
		return failf("boot: %v", err)
	}
	opts := boot.ConfineOptions{
		NoSeccomp:  conf.DebugNoSeccomp,
		SeccompLog: conf.DebugSeccompLog,
	}
	confine := func() error { return boot.Confine(opts) }
	return subcommands.ExitStatus(boot.Run(&bargs, confine))
}

// prepareSentryMounts gives the sentry a /proc of its own PID namespace:
// the platform reads /proc/<pid> of the stubs it creates, and the host's
// /proc names them by host PIDs. Mounts are made private first so none of
// this reaches the host.
func prepareSentryMounts() error {
	if os.Getpid() != 1 {
		return fmt.Errorf("not the init of a new PID namespace; runsc boot must be started by runsc")
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	return nil
}
