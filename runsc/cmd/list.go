package cmd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/google/subcommands"

	"github.com/veil-sandbox/veil/runsc/container"
)

// List implements `runsc list`.
type List struct {
	format string
	quiet  bool
}

func (*List) Name() string     { return "list" }
func (*List) Synopsis() string { return "list the containers under --root" }
func (*List) Usage() string    { return "list [--format table|json] [--quiet]\n" }

func (l *List) SetFlags(f *flag.FlagSet) {
	f.StringVar(&l.format, "format", "table", "output format: table or json")
	f.StringVar(&l.format, "f", "table", "shorthand for --format")
	f.BoolVar(&l.quiet, "quiet", false, "print only the IDs")
	f.BoolVar(&l.quiet, "q", false, "shorthand for --quiet")
}

func (l *List) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if f.NArg() != 0 {
		return usagef("list takes no arguments")
	}
	if l.format != "table" && l.format != "json" {
		return usagef("list: --format=%s: must be table or json", l.format)
	}
	cs, err := container.List(confFrom(args).RootDir)
	if err != nil {
		return failf("list: %v", err)
	}
	if l.quiet {
		for _, c := range cs {
			fmt.Println(c.ID)
		}
		return subcommands.ExitSuccess
	}
	if l.format == "json" {
		states := []container.OCIState{}
		for _, c := range cs {
			states = append(states, c.OCI())
		}
		if err := json.NewEncoder(os.Stdout).Encode(states); err != nil {
			return failf("list: %v", err)
		}
		return subcommands.ExitSuccess
	}
	w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
	fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
	for _, c := range cs {
		s := c.OCI()
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.PID, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
	}
	w.Flush()
	return subcommands.ExitSuccess
}
