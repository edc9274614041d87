package cmd

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/runsc/boot"
	"github.com/veil-sandbox/veil/runsc/sandbox"
	"github.com/veil-sandbox/veil/runsc/specutils"
)

// Run implements `runsc run`: create and start a container from an OCI
// bundle in the foreground and wait for it. The stateful lifecycle
// (create/start/state/delete) will reuse runArgs and runsc/sandbox.
type Run struct {
	bundle string
}

func (*Run) Name() string     { return "run" }
func (*Run) Synopsis() string { return "run a container from an OCI bundle to completion" }
func (*Run) Usage() string    { return "run [--bundle DIR] <container-id>\n" }

func (c *Run) SetFlags(f *flag.FlagSet) {
	f.StringVar(&c.bundle, "bundle", ".", "path to the OCI bundle directory")
	f.StringVar(&c.bundle, "b", ".", "shorthand for --bundle")
}

// validID is the container ID syntax other runtimes accept.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// ValidateID checks a container ID; it becomes a directory name under
// --root, so it must not be able to name anything else.
func ValidateID(id string) error {
	if len(id) > 1024 || !validID.MatchString(id) {
		return fmt.Errorf("invalid container ID %q (want letters, digits and _.+-, not starting with a symbol)", id)
	}
	return nil
}

// runArgs reads the bundle and builds the sandbox's options.
func (c *Run) runArgs(id string) (*sandbox.Options, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	spec, err := specutils.ReadSpec(c.bundle)
	if err != nil {
		return nil, err
	}
	p := spec.Process
	if p.Terminal {
		logDebug("process.terminal: the container uses runsc's own stdio")
	}
	exe, err := specutils.LookPath(spec.Root.Path, p.Args[0], p.Env, p.Cwd)
	if err != nil {
		return nil, fmt.Errorf("process.args[0]: %w", err)
	}
	var extra []uint32
	for _, g := range p.User.AdditionalGids {
		extra = append(extra, g)
	}
	return &sandbox.Options{
		ID:      id,
		RootDir: spec.Root.Path,
		Stdio:   [3]*os.File{os.Stdin, os.Stdout, os.Stderr},
		Args: boot.Args{
			Argv:          append([]string{exe}, p.Args[1:]...),
			Envv:          p.Env,
			Cwd:           p.Cwd,
			UID:           p.User.UID,
			GID:           p.User.GID,
			ExtraGIDs:     extra,
			Hostname:      spec.Hostname,
			RootReadOnly:  spec.Root.Readonly,
			Mounts:        specutils.Mounts(spec),
			MaskedPaths:   specutils.MaskedPaths(spec),
			ReadonlyPaths: specutils.ReadonlyPaths(spec),
		},
	}, nil
}

func (c *Run) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if f.NArg() != 1 {
		return usagef("run: want exactly one container ID, got %d arguments", f.NArg())
	}
	conf := confFrom(args)
	opts, err := c.runArgs(f.Arg(0))
	if err != nil {
		return failf("%v", err)
	}
	return runSandbox(conf, opts)
}
