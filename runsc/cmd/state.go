package cmd

import (
	"context"
	"encoding/json"
	"flag"
	"os"

	"github.com/google/subcommands"
)

// State implements `runsc state`: print the OCI state JSON.
type State struct{}

func (*State) Name() string             { return "state" }
func (*State) Synopsis() string         { return "print a container's OCI state" }
func (*State) Usage() string            { return "state <container-id>\n" }
func (*State) SetFlags(f *flag.FlagSet) {}

func (*State) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	c, err := oneContainer(confFrom(args), f, "state")
	if err != nil {
		return failf("state: %v", err)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c.OCI()); err != nil {
		return failf("state: %v", err)
	}
	return subcommands.ExitSuccess
}
