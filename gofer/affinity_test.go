package gofer

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// The serving thread moves to the client's CPU only once two requests in
// a row name it, and ignores CPUs it may not use.
func TestCPUFollower(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs to see a move")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &orig)
	var f cpuFollower
	on := func() int {
		var s unix.CPUSet
		unix.SchedGetaffinity(0, &s)
		if s.Count() != 1 {
			return -1
		}
		for c := 0; c < 1024; c++ {
			if s.IsSet(c) {
				return c
			}
		}
		return -1
	}
	f.follow(2) // CPU 1, once
	if on() != -1 {
		t.Fatalf("moved after one hint")
	}
	f.follow(2)
	if on() != 1 {
		t.Fatalf("after two hints for CPU 1 bound to %d", on())
	}
	f.follow(1)
	f.follow(2) // alternating clients: stay
	f.follow(1)
	if on() != 1 {
		t.Fatalf("alternating hints moved the thread to %d", on())
	}
	f.follow(5000) // nonsense: ignored
	f.follow(5000)
	f.follow(0)
	if on() != 1 {
		t.Fatalf("bad hints moved the thread to %d", on())
	}
}
