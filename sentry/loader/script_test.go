package loader

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

func TestParseShebang(t *testing.T) {
	long := "/" + strings.Repeat("x", 300)
	cases := []struct {
		line      string
		name, arg string
		isScript  bool
		err       error
	}{
		{"#!/bin/sh\n", "/bin/sh", "", true, nil},
		{"#!/bin/sh", "/bin/sh", "", true, nil},
		{"#! /bin/sh\n", "/bin/sh", "", true, nil},
		{"#!\t/bin/sh  \t\n", "/bin/sh", "", true, nil},
		{"#!/bin/sh -e\n", "/bin/sh", "-e", true, nil},
		{"#!/usr/bin/env  python3 -u  \nprint(1)\n", "/usr/bin/env", "python3 -u", true, nil},
		{"#!/bin/sh\t-x\t\n", "/bin/sh", "-x", true, nil},
		{"#!/bin/sh\x00-x\n", "/bin/sh", "", true, nil},
		{"#!\n", "", "", true, unix.ENOEXEC},
		{"#!   \t \n", "", "", true, unix.ENOEXEC},
		{"#!" + strings.Repeat(" ", 300), "", "", true, unix.ENOEXEC},
		// No newline within 256 bytes and no end of the path in sight:
		// the path would be truncated.
		{"#!" + long, "", "", true, unix.ENOEXEC},
		// No newline, but the path ends: the argument is cut at 255 bytes.
		{"#!/bin/sh " + long, "/bin/sh", long[:binprmBufSize-1-len("#!/bin/sh ")], true, nil},
		{"\x7fELF", "", "", false, nil},
		{"#", "", "", false, nil},
		{"", "", "", false, nil},
	}
	for _, tc := range cases {
		var buf [binprmBufSize]byte
		copy(buf[:], tc.line)
		name, arg, isScript, err := parseShebang(&buf)
		if name != tc.name || arg != tc.arg || isScript != tc.isScript || err != tc.err {
			t.Errorf("parseShebang(%q) = (%q, %q, %v, %v), want (%q, %q, %v, %v)",
				tc.line, name, arg, isScript, err, tc.name, tc.arg, tc.isScript, tc.err)
		}
	}
}

func TestLoadScript(t *testing.T) {
	cases := []struct {
		name     string
		files    map[string]string
		argv     []string
		wantArgv []string
		wantExec string
		err      error
	}{
		{
			name:     "no argument",
			files:    map[string]string{"/s": "#!/bin/sh\necho hi\n"},
			argv:     []string{"s", "a", "b"},
			wantArgv: []string{"/bin/sh", "/s", "a", "b"},
			wantExec: "/bin/sh",
		},
		{
			name:     "with argument",
			files:    map[string]string{"/s": "#! /bin/sh  -e -x \n"},
			argv:     []string{"s", "a"},
			wantArgv: []string{"/bin/sh", "-e -x", "/s", "a"},
			wantExec: "/bin/sh",
		},
		{
			name:     "empty argv",
			files:    map[string]string{"/s": "#!/bin/sh\n"},
			argv:     nil,
			wantArgv: []string{"/bin/sh", "/s"},
			wantExec: "/bin/sh",
		},
		{
			name:     "nested",
			files:    map[string]string{"/s": "#!/t x\n", "/t": "#!/bin/sh -y\n"},
			argv:     []string{"s", "1"},
			wantArgv: []string{"/bin/sh", "-y", "/t", "x", "/s", "1"},
			wantExec: "/bin/sh",
		},
		{
			name:  "interpreter missing",
			files: map[string]string{"/s": "#!/nonexistent\n"},
			argv:  []string{"s"},
			err:   unix.ENOENT,
		},
		{
			name:  "interpreter is a broken script",
			files: map[string]string{"/s": "#!/t\n", "/t": "#!\n"},
			argv:  []string{"s"},
			err:   unix.ENOEXEC,
		},
		{
			name:  "script loop",
			files: map[string]string{"/s": "#!/t\n", "/t": "#!/s\n"},
			argv:  []string{"s"},
			err:   unix.ELOOP,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mm, fs := newFakeMM(), newFakeFS()
			fs.files["/bin/sh"] = staticELF()
			for k, v := range tc.files {
				fs.files[k] = []byte(v)
			}
			args := baseArgs(mm, fs, "/s")
			args.Argv = tc.argv
			res, err := Load(args)
			if err != tc.err {
				t.Fatalf("Load = %v, want %v", err, tc.err)
			}
			if fs.open != 0 {
				t.Errorf("%d files left open", fs.open)
			}
			if err != nil {
				if len(mm.vmas) != 0 {
					t.Errorf("mappings left after failure:\n%v", mm)
				}
				return
			}
			if !reflect.DeepEqual(res.Argv, tc.wantArgv) || res.ExecPath != tc.wantExec {
				t.Errorf("Argv %q ExecPath %q, want %q %q", res.Argv, res.ExecPath, tc.wantArgv, tc.wantExec)
			}
			// AT_EXECFN stays the path given to execve.
			checkStack(t, mm, res, tc.wantArgv, args.Envv, "/s")
		})
	}
}

// Linux follows five `#!` scripts in a row and refuses a sixth with ELOOP.
func TestLoadScriptDepth(t *testing.T) {
	mk := func(n int) *fakeFS {
		fs := newFakeFS()
		fs.files["/bin/prog"] = staticELF()
		prev := "/bin/prog"
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("/s%d", i)
			fs.files[name] = []byte("#!" + prev + "\n")
			prev = name
		}
		return fs
	}
	for n := 1; n <= maxInterpDepth; n++ {
		fs := mk(n)
		path := fmt.Sprintf("/s%d", n-1)
		res, err := Load(baseArgs(newFakeMM(), fs, path))
		if err != nil {
			t.Fatalf("%d nested scripts: %v", n, err)
		}
		if len(res.Argv) != n+3 || res.Argv[0] != "/bin/prog" || res.Argv[n] != path || res.ExecPath != "/bin/prog" {
			t.Errorf("%d nested scripts: argv %q exec %q", n, res.Argv, res.ExecPath)
		}
	}
	fs := mk(maxInterpDepth + 1)
	mm := newFakeMM()
	if _, err := Load(baseArgs(mm, fs, fmt.Sprintf("/s%d", maxInterpDepth))); err != unix.ELOOP {
		t.Errorf("%d nested scripts: %v, want ELOOP", maxInterpDepth+1, err)
	}
	if fs.open != 0 || len(mm.vmas) != 0 {
		t.Errorf("after ELOOP: %d files open, mappings:\n%v", fs.open, mm)
	}
}

func TestLoadE2BIG(t *testing.T) {
	huge := strings.Repeat("a", maxArgStrlen) // plus its NUL: one too many
	fits := strings.Repeat("a", maxArgStrlen-1)
	many := make([]string, 0, 40)
	for i := 0; i < 40; i++ {
		many = append(many, fits[:maxArgStrlen/2])
	}
	cases := []struct {
		name      string
		argv      []string
		envv      []string
		stackSize uint64
		err       error
	}{
		{"longest argument", []string{"p", fits}, nil, 0, nil},
		{"argument too long", []string{"p", huge}, nil, 0, unix.E2BIG},
		{"environment string too long", []string{"p"}, []string{huge}, 0, unix.E2BIG},
		// 40 * 64 KiB = 2.5 MiB > 8 MiB / 4.
		{"total beyond a quarter of the stack", []string{"p"}, many, 0, unix.E2BIG},
		{"total within a quarter of a big stack", []string{"p"}, many, 64 << 20, nil},
		// A tiny stack limit still allows ARG_MAX (128 KiB) of strings.
		{"small stack, within ARG_MAX", []string{"p", fits[:100000]}, nil, 64 << 10, nil},
		{"small stack, beyond ARG_MAX", []string{"p", fits[:100000], fits[:100000]}, nil, 64 << 10, unix.E2BIG},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mm, fs := newFakeMM(), newFakeFS()
			fs.files["/p"] = staticELF()
			args := baseArgs(mm, fs, "/p")
			args.Argv, args.Envv, args.StackSize = tc.argv, tc.envv, tc.stackSize
			res, err := Load(args)
			if err != tc.err {
				t.Fatalf("Load = %v, want %v", err, tc.err)
			}
			if err == nil {
				checkStack(t, mm, res, tc.argv, tc.envv, "/p")
			} else if len(mm.vmas) != 0 || fs.open != 0 {
				t.Errorf("after E2BIG: %d files open, mappings:\n%v", fs.open, mm)
			}
		})
	}
}

// The `#!` rewriting adds strings, and they count against the limits too.
func TestLoadScriptE2BIG(t *testing.T) {
	mm, fs := newFakeMM(), newFakeFS()
	fs.files["/bin/sh"] = staticELF()
	path := "/" + strings.Repeat("d", maxArgStrlen-2) // fits once, for AT_EXECFN
	args := baseArgs(mm, fs, path)
	args.StackSize = 1 << 20 // limit 256 KiB: the path fits once, not twice
	args.Argv = []string{"s"}
	fs.files[path] = staticELF()
	if _, err := Load(args); err != nil {
		t.Fatalf("Load of an ELF at the long path: %v", err)
	}
	fs.files[path] = []byte("#!/bin/sh\n")
	args.MM = newFakeMM()
	if _, err := Load(args); err != unix.E2BIG {
		t.Errorf("Load of a script at the long path = %v, want E2BIG", err)
	}
}

func TestLoadStackSizes(t *testing.T) {
	for _, size := range []uint64{64 << 10, 8 << 20, 1 << 62} {
		mm, fs := newFakeMM(), newFakeFS()
		fs.files["/p"] = staticELF()
		args := baseArgs(mm, fs, "/p")
		args.StackSize = size
		res, err := Load(args)
		if err != nil {
			t.Fatalf("stack size %d: %v", size, err)
		}
		v := mm.find(res.StackPointer)
		got := uint64(v.end - v.start)
		want := min(pageUp(size), maxStackMapping)
		if got != want {
			t.Errorf("stack size %d: mapping of %d bytes, want %d", size, got, want)
		}
	}
}

// The stack is mapped first, so a dynamically placed interpreter cannot
// take the range a large stack limit asks for.
func TestLoadBigStackWithInterpreter(t *testing.T) {
	mm, fs := newFakeMM(), newFakeFS()
	fs.files["/bin/pie"] = dynELF("/lib/ld.so")
	fs.files["/lib/ld.so"] = interpELF()
	args := baseArgs(mm, fs, "/bin/pie")
	args.StackSize = 1 << 30
	res, err := Load(args)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	stack := mm.find(res.StackPointer)
	if base := auxMap(res.Auxv)[AT_BASE]; base >= uint64(stack.start) || stack.end-stack.start != 1<<30 {
		t.Errorf("interpreter at %#x, stack %v-%v", base, stack.start, stack.end)
	}
}

func TestLoadRandomSource(t *testing.T) {
	mm, fs := newFakeMM(), newFakeFS()
	fs.files["/p"] = staticELF()
	args := baseArgs(mm, fs, "/p")
	args.Random = bytes.NewReader([]byte{1, 2, 3}) // short
	if _, err := Load(args); err != unix.EIO {
		t.Errorf("short random source: %v, want EIO", err)
	}
	args.Random = nil // crypto/rand
	mm = newFakeMM()
	args.MM = mm
	res, err := Load(args)
	if err != nil {
		t.Fatal(err)
	}
	r := mm.read(t, hostarch.Addr(auxMap(res.Auxv)[AT_RANDOM]), 16)
	if bytes.Equal(r, make([]byte, 16)) {
		t.Error("AT_RANDOM bytes are all zero")
	}
}
