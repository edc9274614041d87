package main

import "strconv"

// The sentry's core rows (issue 2): syscall round trip, its ptrace floor,
// start-up, fork+exec and idle memory.
func init() {
	register(10, func(e *benchEnv) []bench {
		return []bench{
			{
				name: "getpid round trip", unit: "ns",
				native: func() result { return nsPerOp(nil, e.prog("getpid"), strconv.Itoa(1000000/e.scale)) },
				sandbox: func(rs []string) result {
					return nsPerOp(rs, e.prog("getpid"), strconv.Itoa(20000/e.scale))
				},
			},
			{
				name: "PTRACE_SYSEMU stop+resume (ptrace floor)", unit: "ns", noteOnly: true,
				native: func() result { return nsPerOp(nil, e.prog("sysemu"), strconv.Itoa(100000/e.scale)) },
			},
			{
				name: "start-to-exit of /bin/true", unit: "ms",
				native: func() result { return startToExit(nil, 20/min(e.scale, 4)) },
				sandbox: func(rs []string) result {
					return startToExit(rs, 5/min(e.scale, 5))
				},
			},
			{
				name: "fork+exec+wait of /bin/true", unit: "µs",
				native: func() result {
					return scaleBy(nsPerOp(nil, e.prog("forkexec"), strconv.Itoa(200/e.scale), "/bin/true"), 1e-3)
				},
				sandbox: func(rs []string) result {
					return scaleBy(nsPerOp(rs, e.prog("forkexec"), strconv.Itoa(max(20/e.scale, 2)), "/bin/true"), 1e-3)
				},
			},
			{
				name: "idle resident memory (sleep)", unit: "MiB",
				native:  func() result { return idleRSS(nil) },
				sandbox: func(rs []string) result { return idleRSS(rs) },
			},
		}

	})
}
