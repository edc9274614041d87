package loader

import (
	"os"
	"testing"
)

// FuzzLoad loads arbitrary bytes as an executable (with a valid interpreter
// available at /lib/ld.so, and as a `#!` target at /bin/sh) and checks that
// Load never panics, closes every file, leaves nothing mapped when it fails,
// and returns a well-formed image when it succeeds.
func FuzzLoad(f *testing.F) {
	f.Add(staticELF())
	f.Add(dynELF("/lib/ld.so"))
	f.Add(interpELF())
	f.Add([]byte("#!/bin/sh -x\n"))
	f.Add([]byte("#!/x\n"))
	if b, err := os.ReadFile("/bin/true"); err == nil && len(b) < 1<<20 {
		f.Add(b[:min(len(b), 8192)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mm, fs := newFakeMM(), newFakeFS()
		fs.files["/x"] = data
		fs.files["/lib/ld.so"] = interpELF()
		fs.files["/bin/sh"] = staticELF()
		res, err := Load(baseArgs(mm, fs, "/x"))
		if fs.open != 0 {
			t.Fatalf("%d files left open (err %v)", fs.open, err)
		}
		if err != nil {
			if len(mm.vmas) != 0 {
				t.Fatalf("failed with %v but left mappings:\n%v", err, mm)
			}
			return
		}
		if res.StackPointer%16 != 0 || uint64(res.Entry) >= uint64(testMaxAddr) || !res.BrkStart.IsPageAligned() {
			t.Fatalf("bad result %+v", res)
		}
		if mm.word(t, res.StackPointer) != uint64(len(res.Argv)) {
			t.Fatalf("argc on stack differs from Argv %q", res.Argv)
		}
	})
}
