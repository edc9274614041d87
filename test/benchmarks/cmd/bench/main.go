// Command bench runs Veil's benchmarks natively and under each platform
// and prints one markdown table of results and ratios to native.
//
// A platform that does not work yet does not stop the run: its cells read
// "n/a (error: ...)".
package main

import (
	"github.com/veil-sandbox/veil/test/testutil"

	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	platformsFlag = flag.String("platforms", "ptrace,systrap", "comma-separated Veil platforms to measure")
	runscFlag     = flag.String("runsc", "", "runsc binary (default: <repo>/bin/runsc)")
	quick         = flag.Bool("quick", false, "fewer iterations, for a smoke run")
	timeout       = flag.Duration("timeout", 120*time.Second, "limit for any one measurement")
	rowsFlag      = flag.String("rows", "", "run only rows whose name matches this regular expression")
)

// result is one cell: a value in unit, or the error that prevented it.
type result struct {
	value float64
	err   error
}

// bench is one row. native measures the host; sandboxed measures under a
// platform, given the runsc invocation prefix for it.
type bench struct {
	name     string
	unit     string
	native   func() result
	sandbox  func(runsc []string) result
	noteOnly bool // row has only a native value (a floor, not a workload)
}

// benchEnv is what a row's measurements need from the driver.
type benchEnv struct {
	scale int                      // divisor of iteration counts (10 with -quick)
	prog  func(name string) string // path of a built test/benchmarks/src program
}

// registered holds the row groups in the order the table prints them; each
// file of this package adds its rows with register, so areas (platform,
// filesystem, lifecycle) keep their rows in files of their own.
var registered []struct {
	order int
	rows  func(e *benchEnv) []bench
}

// register adds a group of rows; lower order prints first.
func register(order int, rows func(e *benchEnv) []bench) {
	registered = append(registered, struct {
		order int
		rows  func(e *benchEnv) []bench
	}{order, rows})
}

func allBenches(e *benchEnv) []bench {
	groups := append(registered[:0:0], registered...)
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].order < groups[j].order })
	var out []bench
	for _, g := range groups {
		out = append(out, g.rows(e)...)
	}
	return out
}

func main() {
	flag.Parse()
	root, err := testutil.RepoRoot()
	if err != nil {
		fatal(err)
	}
	bin := filepath.Join(root, "test", "benchmarks", "bin")
	if err := buildC(filepath.Join(root, "test", "benchmarks", "src"), bin); err != nil {
		fatal(err)
	}
	runsc := *runscFlag
	if runsc == "" {
		runsc = filepath.Join(root, "bin", "runsc")
	}
	scale := 1
	if *quick {
		scale = 10
	}
	prog := func(name string) string { return filepath.Join(bin, name) }

	env := &benchEnv{scale: scale, prog: prog}
	benches := allBenches(env)
	if *rowsFlag != "" {
		re, err := regexp.Compile(*rowsFlag)
		if err != nil {
			fatal(fmt.Errorf("-rows: %v", err))
		}
		benches = slices.DeleteFunc(benches, func(b bench) bool { return !re.MatchString(b.name) })
	}

	plats := strings.Split(*platformsFlag, ",")
	fmt.Printf("Veil benchmarks, %s, %d CPUs, kernel %s. Cells under a platform: value (ratio to native).\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), kernelRelease())
	header := "| benchmark | native |"
	sep := "|---|---|"
	for _, p := range plats {
		header += " " + p + " |"
		sep += "---|"
	}
	fmt.Println(header)
	fmt.Println(sep)
	for _, b := range benches {
		nat := b.native()
		row := fmt.Sprintf("| %s | %s |", b.name, cell(nat, b.unit))
		for _, p := range plats {
			if b.noteOnly || b.sandbox == nil {
				row += " — |"
				continue
			}
			if _, err := os.Stat(runsc); err != nil {
				row += " " + cell(result{err: fmt.Errorf("no runsc: %v", err)}, b.unit) + " |"
				continue
			}
			rs := []string{runsc, "--platform=" + p}
			r := b.sandbox(rs)
			c := cell(r, b.unit)
			if r.err == nil && nat.err == nil && nat.value > 0 {
				c += fmt.Sprintf(" (×%.1f)", r.value/nat.value)
			}
			row += " " + c + " |"
		}
		fmt.Println(row)
	}
}

func cell(r result, unit string) string {
	if r.err != nil {
		msg := strings.Join(strings.Fields(r.err.Error()), " ")
		msg = strings.ReplaceAll(msg, "|", "/")
		if len(msg) > 80 {
			msg = msg[:77] + "..."
		}
		return "n/a (error: " + msg + ")"
	}
	return fmt.Sprintf("%.1f %s", r.value, unit)
}

func scaleBy(r result, f float64) result {
	r.value *= f
	return r
}

// withRoot gives each sandbox its own state directory so runs never meet.
func withRoot(runsc []string) ([]string, func(), error) {
	dir, err := os.MkdirTemp("", "veil-bench-root-")
	if err != nil {
		return nil, nil, err
	}
	args := append([]string{runsc[0], "--root=" + dir}, runsc[1:]...)
	return args, func() { os.RemoveAll(dir) }, nil
}

// command builds argv natively, or as `runsc ... do -- argv` under Veil.
func command(ctx context.Context, runsc []string, argv ...string) (*exec.Cmd, func(), error) {
	cleanup := func() {}
	if runsc != nil {
		rs, c, err := withRoot(runsc)
		if err != nil {
			return nil, nil, err
		}
		cleanup = c
		argv = append(append(rs, "do", "--"), argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd, cleanup, nil
}

// nsPerOp runs a benchmark program and parses its "ns/op N" line.
func nsPerOp(runsc []string, argv ...string) result { return metric(runsc, "ns/op", argv...) }

// metric runs a benchmark program and parses its "<key> N" line.
func metric(runsc []string, key string, argv ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd, cleanup, err := command(ctx, runsc, argv...)
	if err != nil {
		return result{err: err}
	}
	defer cleanup()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return result{err: fmt.Errorf("timed out after %v", *timeout)}
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+" "); ok {
			f, perr := strconv.ParseFloat(v, 64)
			if perr == nil && err == nil {
				return result{value: f}
			}
		}
	}
	if err == nil {
		err = fmt.Errorf("no %q line", key)
	}
	return result{err: fmt.Errorf("%v: %s", err, lastLine(out))}
}

// startToExit is the mean wall time, in ms, from starting /bin/true (or
// `runsc do /bin/true`) to reaping it.
func startToExit(runsc []string, n int) result {
	n = max(n, 1)
	var total time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		cmd, cleanup, err := command(ctx, runsc, "/bin/true")
		if err != nil {
			cancel()
			return result{err: err}
		}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		total += time.Since(start)
		cleanup()
		cancel()
		if err != nil {
			return result{err: fmt.Errorf("%v: %s", err, lastLine(out))}
		}
	}
	return result{value: float64(total.Microseconds()) / 1000 / float64(n)}
}

// idleRSS starts `sleep` (natively or sandboxed), lets it settle and sums
// the resident memory of the process and all its descendants: under Veil
// that is the sentry, the gofer and the stub processes.
func idleRSS(runsc []string) result {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd, cleanup, err := command(ctx, runsc, "/bin/sleep", "60")
	if err != nil {
		return result{err: err}
	}
	defer cleanup()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return result{err: err}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		// The sandbox's processes may have left our process group;
		// kill the tree we found by pid as well.
		for _, p := range descendants(cmd.Process.Pid) {
			syscall.Kill(p, syscall.SIGKILL)
		}
		<-done
	}()
	// Settle: wait until the process tree stops changing.
	var last []int
	stable := 0
	for stable < 5 {
		select {
		case err := <-done:
			done <- err
			return result{err: fmt.Errorf("exited early (%v): %s", err, lastLine(out.Bytes()))}
		case <-time.After(200 * time.Millisecond):
		}
		cur := descendants(cmd.Process.Pid)
		if equalInts(cur, last) {
			stable++
		} else {
			stable = 0
		}
		last = cur
		if ctx.Err() != nil {
			return result{err: errors.New("never settled")}
		}
	}
	pids := last
	if runsc == nil || len(pids) == 0 {
		pids = append(pids, cmd.Process.Pid)
	}
	var kb int64
	for _, p := range pids {
		kb += rssKB(p)
	}
	return result{value: float64(kb) / 1024}
}

// descendants returns every process below pid, found through /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces; fields resume after ')'.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func rssKB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// buildC compiles each src/*.c into bin with gcc -static. The binaries sit
// inside the repository because a sandbox sees the host's / read-only but
// has its own /tmp.
func buildC(src, bin string) error {
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(src, "*.c"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no benchmark sources in %s (%v)", src, err)
	}
	for _, f := range files {
		out := filepath.Join(bin, strings.TrimSuffix(filepath.Base(f), ".c"))
		if msg, err := exec.Command("gcc", "-static", "-O2", "-pthread", "-Wall", "-o", out, f).CombinedOutput(); err != nil {
			return fmt.Errorf("gcc %s: %v\n%s", f, err, msg)
		}
	}
	return nil
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
