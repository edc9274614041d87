package cmd

import (
	"context"
	"errors"
	"flag"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/runsc/container"
)

// Delete implements `runsc delete`: remove a stopped (or, with --force,
// any) container and everything its sandbox held.
type Delete struct {
	force bool
}

func (*Delete) Name() string     { return "delete" }
func (*Delete) Synopsis() string { return "delete a container" }
func (*Delete) Usage() string    { return "delete [--force] <container-id>...\n" }

func (d *Delete) SetFlags(f *flag.FlagSet) {
	f.BoolVar(&d.force, "force", false, "kill the container first if it is running")
	f.BoolVar(&d.force, "f", false, "shorthand for --force")
}

func (d *Delete) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if f.NArg() < 1 {
		return usagef("delete: want at least one container ID")
	}
	conf := confFrom(args)
	status := subcommands.ExitSuccess
	for _, id := range f.Args() {
		c, err := loadContainer(conf, id)
		if err != nil {
			// runc: deleting a missing container with --force succeeds.
			if d.force && errors.Is(err, container.ErrNotExist) {
				continue
			}
			status = failf("delete: %v", err)
			continue
		}
		if err := c.Delete(d.force); err != nil {
			status = failf("delete: %v", err)
		}
	}
	return status
}
