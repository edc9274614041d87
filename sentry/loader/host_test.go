package loader

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// Tests that load real binaries of the host, checked against the standard
// library's ELF parser rather than the package's own.

// hostELF reads path with debug/elf; it skips the test if path is absent.
func hostELF(t *testing.T, path string) (*elf.File, []byte, []elfPhdr) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("%s not readable on this host: %v", path, err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("debug/elf cannot read %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	var phdrs []elfPhdr
	for _, p := range f.Progs {
		phdrs = append(phdrs, elfPhdr{
			typ: uint32(p.Type), flags: uint32(p.Flags), off: p.Off, vaddr: p.Vaddr,
			filesz: p.Filesz, memsz: p.Memsz, al: p.Align,
		})
	}
	return f, data, phdrs
}

func progVaddr(f *elf.File, typ elf.ProgType) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == typ {
			return p.Vaddr, true
		}
	}
	return 0, false
}

func TestLoadHostTrue(t *testing.T) {
	ef, data, phdrs := hostELF(t, "/bin/true")
	if ef.Type != elf.ET_DYN {
		t.Skipf("/bin/true is %v, not a PIE", ef.Type)
	}
	var wantInterp string
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			wantInterp = strings.TrimRight(string(b), "\x00")
		}
	}
	if wantInterp == "" {
		t.Skip("/bin/true is statically linked on this host")
	}
	ief, idata, iphdrs := hostELF(t, wantInterp)

	mm, fs := newFakeMM(), newFakeFS()
	fs.host = true
	args := baseArgs(mm, fs, "/bin/true")
	res, err := Load(args)
	if err != nil {
		t.Fatalf("Load(/bin/true): %v", err)
	}
	if res.Interpreter != wantInterp {
		t.Errorf("Interpreter = %q, want %q", res.Interpreter, wantInterp)
	}
	base := uint64(etDynBase(testMaxAddr))
	aux := auxMap(res.Auxv)
	ibase := aux[AT_BASE]
	if aux[AT_ENTRY] != base+ef.Entry {
		t.Errorf("AT_ENTRY = %#x, want %#x", aux[AT_ENTRY], base+ef.Entry)
	}
	if uint64(res.Entry) != ibase+ief.Entry {
		t.Errorf("Entry = %v, want AT_BASE %#x + interpreter entry %#x", res.Entry, ibase, ief.Entry)
	}
	if v, ok := progVaddr(ef, elf.PT_PHDR); ok && aux[AT_PHDR] != base+v {
		t.Errorf("AT_PHDR = %#x, want %#x", aux[AT_PHDR], base+v)
	}
	if aux[AT_PHNUM] != uint64(len(ef.Progs)) || aux[AT_PHENT] != 56 {
		t.Errorf("AT_PHNUM %d AT_PHENT %d", aux[AT_PHNUM], aux[AT_PHENT])
	}
	// ld.so finds its own headers through AT_BASE: they must be mapped.
	if got := mm.read(t, hostarch.Addr(ibase), 4); string(got) != "\x7fELF" {
		t.Errorf("interpreter's ELF header not at AT_BASE")
	}
	checkSegments(t, mm, data, phdrs, base)
	checkSegments(t, mm, idata, iphdrs, ibase)
	checkStack(t, mm, res, args.Argv, args.Envv, "/bin/true")
	if fs.open != 0 {
		t.Errorf("%d files left open", fs.open)
	}
}

func TestLoadHostStaticBusybox(t *testing.T) {
	ef, data, phdrs := hostELF(t, "/bin/busybox")
	if _, dyn := progVaddr(ef, elf.PT_INTERP); dyn || ef.Type != elf.ET_EXEC {
		t.Skip("/bin/busybox is not a static ET_EXEC binary (install Debian's busybox-static)")
	}
	mm, fs := newFakeMM(), newFakeFS()
	fs.host = true
	args := baseArgs(mm, fs, "/bin/busybox")
	args.Argv = []string{"sh", "-c", "echo hi"}
	res, err := Load(args)
	if err != nil {
		t.Fatalf("Load(/bin/busybox): %v", err)
	}
	aux := auxMap(res.Auxv)
	if uint64(res.Entry) != ef.Entry || aux[AT_ENTRY] != ef.Entry || aux[AT_BASE] != 0 || res.Interpreter != "" {
		t.Errorf("Entry %v AT_ENTRY %#x AT_BASE %#x Interpreter %q; e_entry %#x",
			res.Entry, aux[AT_ENTRY], aux[AT_BASE], res.Interpreter, ef.Entry)
	}
	var end uint64
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			end = max(end, p.Vaddr+p.Memsz)
		}
	}
	if uint64(res.BrkStart) != pageUp(end) {
		t.Errorf("BrkStart = %v, want %#x", res.BrkStart, pageUp(end))
	}
	checkSegments(t, mm, data, phdrs, 0)
	checkStack(t, mm, res, args.Argv, args.Envv, "/bin/busybox")
}

func TestLoadStaticPIE(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed; cannot build a static-PIE binary")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	bin := filepath.Join(dir, "p")
	if err := os.WriteFile(src, []byte("int x[4096]; int main(void) { return x[1]; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-static-pie", "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("gcc -static-pie failed (static glibc missing?): %v\n%s", err, out)
	}
	ef, data, phdrs := hostELF(t, bin)
	if _, dyn := progVaddr(ef, elf.PT_INTERP); dyn || ef.Type != elf.ET_DYN {
		t.Fatalf("gcc -static-pie gave type %v with PT_INTERP %v", ef.Type, dyn)
	}
	mm, fs := newFakeMM(), newFakeFS()
	fs.host = true
	args := baseArgs(mm, fs, bin)
	res, err := Load(args)
	if err != nil {
		t.Fatalf("Load(static-pie): %v", err)
	}
	base := uint64(etDynBase(testMaxAddr))
	aux := auxMap(res.Auxv)
	if uint64(res.Entry) != base+ef.Entry || aux[AT_ENTRY] != base+ef.Entry || aux[AT_BASE] != 0 {
		t.Errorf("Entry %v AT_ENTRY %#x AT_BASE %#x; base %#x e_entry %#x",
			res.Entry, aux[AT_ENTRY], aux[AT_BASE], base, ef.Entry)
	}
	checkSegments(t, mm, data, phdrs, base)
	checkStack(t, mm, res, args.Argv, args.Envv, bin)
}
