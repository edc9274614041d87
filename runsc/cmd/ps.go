package cmd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/subcommands"
)

// Ps implements `runsc ps`: the container's processes with their sandbox
// PIDs (host PIDs mean nothing for them: they run inside the sentry).
type Ps struct {
	format string
}

func (*Ps) Name() string     { return "ps" }
func (*Ps) Synopsis() string { return "list the processes of a container" }
func (*Ps) Usage() string    { return "ps [--format table|json] <container-id>\n" }

func (p *Ps) SetFlags(f *flag.FlagSet) {
	f.StringVar(&p.format, "format", "table", "output format: table, or json (a list of PIDs, as runc prints)")
	f.StringVar(&p.format, "f", "table", "shorthand for --format")
}

func (p *Ps) Execute(_ context.Context, f *flag.FlagSet, args ...any) subcommands.ExitStatus {
	if p.format != "table" && p.format != "json" {
		return usagef("ps: --format=%s: must be table or json", p.format)
	}
	// runc passes anything after the ID to ps(1); there is no ps(1) to
	// pass it to here.
	if f.NArg() != 1 {
		return usagef("ps: want exactly one container ID, got %d arguments", f.NArg())
	}
	c, err := loadContainer(confFrom(args), f.Arg(0))
	if err != nil {
		return failf("ps: %v", err)
	}
	procs, err := c.Processes()
	if err != nil {
		return failf("ps: %v", err)
	}
	if p.format == "json" {
		pids := []int32{}
		for _, pr := range procs {
			pids = append(pids, pr.Pid)
		}
		if err := json.NewEncoder(os.Stdout).Encode(pids); err != nil {
			return failf("ps: %v", err)
		}
		return subcommands.ExitSuccess
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 1, 2, ' ', 0)
	fmt.Fprint(w, "UID\tPID\tPPID\tSTAT\tSTIME\tTIME\tCMD\n")
	for _, pr := range procs {
		cmd := strings.Join(pr.Cmdline, " ")
		if cmd == "" {
			cmd = "[" + pr.Comm + "]"
		}
		cpu := time.Duration(pr.CpuNanos)
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\t%02d:%02d:%02d\t%s\n", pr.Uid, pr.Pid, pr.Ppid, pr.State,
			time.Unix(0, pr.StartUnixNano).Format("15:04"),
			int(cpu.Hours()), int(cpu.Minutes())%60, int(cpu.Seconds())%60, cmd)
	}
	w.Flush()
	return subcommands.ExitSuccess
}
