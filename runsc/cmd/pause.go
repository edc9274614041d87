package cmd

import (
	"context"
	"flag"

	"github.com/google/subcommands"
)

// Pause implements `runsc pause`: freeze every task of the container.
type Pause struct{}

func (*Pause) Name() string             { return "pause" }
func (*Pause) Synopsis() string         { return "freeze every process of a container" }
func (*Pause) Usage() string            { return "pause <container-id>\n" }
func (*Pause) SetFlags(f *flag.FlagSet) {}

func (*Pause) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	c, err := oneContainer(confFrom(args), f, "pause")
	if err != nil {
		return failf("pause: %v", err)
	}
	if err := c.Pause(); err != nil {
		return failf("pause: %v", err)
	}
	return subcommands.ExitSuccess
}
