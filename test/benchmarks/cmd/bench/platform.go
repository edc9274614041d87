package main

import (
	"os/exec"
	"strconv"
)

// The platform rows (issue 5): what the syscall path costs a program that
// moves data, and what a real interpreter's start-up (mappings, faults,
// file opens, a fork and exec) costs. getpid, fork+exec and start-to-exit
// are the core rows, clock_gettime the vDSO's.
func init() {
	register(11, func(e *benchEnv) []bench {
		python, _ := exec.LookPath("python3")
		rows := []bench{
			{
				name: "read(2) of 1 byte from /dev/zero", unit: "ns",
				native: func() result { return nsPerOp(nil, e.prog("readzero"), strconv.Itoa(1000000/e.scale)) },
				sandbox: func(rs []string) result {
					return nsPerOp(rs, e.prog("readzero"), strconv.Itoa(20000/e.scale))
				},
			},
		}
		py := bench{name: "python3 -c pass (fork+exec+wait)", unit: "ms"}
		if python == "" {
			noPython := func() result { return result{err: errNoPython} }
			py.native = noPython
			py.sandbox = func([]string) result { return noPython() }
		} else {
			py.native = func() result {
				return scaleBy(nsPerOp(nil, e.prog("spawn"), strconv.Itoa(max(20/e.scale, 2)), python, "-c", "pass"), 1e-6)
			}
			py.sandbox = func(rs []string) result {
				return scaleBy(nsPerOp(rs, e.prog("spawn"), strconv.Itoa(max(10/e.scale, 2)), python, "-c", "pass"), 1e-6)
			}
		}
		return append(rows, py)
	})
}

type benchError string

func (e benchError) Error() string { return string(e) }

const errNoPython = benchError("no python3 on this host")
