package vdso

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// exported are the functions glibc and Go look up, each also exported
// without the __vdso_ prefix as Linux's vDSO does.
var exported = []string{"clock_gettime", "gettimeofday", "time", "getcpu", "clock_getres"}

const versionName = "LINUX_2.6"

// ntGNUBuildID is NT_GNU_BUILD_ID, the type of the GNU build-ID note.
const ntGNUBuildID = 3

func parseImage(t *testing.T) *elf.File {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(Image()))
	if err != nil {
		t.Fatalf("parsing the embedded image: %v", err)
	}
	return f
}

func TestImageHeaders(t *testing.T) {
	f := parseImage(t)
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_DYN {
		t.Fatalf("image is %v %v %v %v, want a 64-bit little-endian x86-64 ET_DYN", f.Class, f.Data, f.Machine, f.Type)
	}
	var load, dyn, note, ehFrame int
	size := uint64(len(Image()))
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			load++
			// From the start of the file (headers included), with no
			// bss: the loader maps the file as is.
			if p.Off != 0 || p.Vaddr != 0 || p.Filesz != p.Memsz || p.Filesz > size {
				t.Errorf("PT_LOAD off %#x vaddr %#x filesz %#x memsz %#x, want the file's first bytes at 0", p.Off, p.Vaddr, p.Filesz, p.Memsz)
			}
			for _, s := range f.Sections {
				if s.Flags&elf.SHF_ALLOC != 0 && (s.Addr != s.Offset || s.Addr+s.Size > p.Filesz) {
					t.Errorf("section %s at %#x+%#x (offset %#x) outside the load segment", s.Name, s.Addr, s.Size, s.Offset)
				}
			}
			if p.Flags != elf.PF_R|elf.PF_X {
				t.Errorf("PT_LOAD flags %v, want R+X (the image is shared and read-only)", p.Flags)
			}
		case elf.PT_DYNAMIC:
			dyn++
		case elf.PT_NOTE:
			note++
		case elf.PT_GNU_EH_FRAME:
			ehFrame++
		default:
			t.Errorf("unexpected program header %v", p.Type)
		}
		if p.Type != elf.PT_LOAD && (p.Off != p.Vaddr || p.Off+p.Filesz > size) {
			t.Errorf("%v at off %#x vaddr %#x size %#x is not inside the load segment", p.Type, p.Off, p.Vaddr, p.Filesz)
		}
	}
	if load != 1 || dyn != 1 || note != 1 || ehFrame != 1 {
		t.Errorf("program headers: %d PT_LOAD, %d PT_DYNAMIC, %d PT_NOTE, %d PT_GNU_EH_FRAME; want one each", load, dyn, note, ehFrame)
	}
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Flags&elf.SHF_WRITE != 0 && s.Name != ".dynamic" && s.Size != 0 {
			t.Errorf("writable section %s (%d bytes) in a shared read-only image", s.Name, s.Size)
		}
		if s.Type == elf.SHT_RELA || s.Type == elf.SHT_REL {
			t.Errorf("relocation section %s: the image is mapped as is and must need none", s.Name)
		}
	}
	if ImageSize()%4096 != 0 || ImageSize() < size || ImageSize()-size >= 4096 {
		t.Errorf("ImageSize %d for a %d-byte image", ImageSize(), size)
	}
}

func TestImageDynamic(t *testing.T) {
	f := parseImage(t)
	tags := dynamicTags(t, f)
	for _, tag := range []elf.DynTag{elf.DT_HASH, elf.DT_GNU_HASH, elf.DT_SYMTAB, elf.DT_STRTAB, elf.DT_STRSZ, elf.DT_SYMENT, elf.DT_VERSYM, elf.DT_VERDEF, elf.DT_SONAME} {
		if _, ok := tags[tag]; !ok {
			t.Errorf("dynamic section lacks %v", tag)
		}
	}
	for _, tag := range []elf.DynTag{elf.DT_NEEDED, elf.DT_REL, elf.DT_RELA, elf.DT_JMPREL, elf.DT_TEXTREL, elf.DT_INIT, elf.DT_FINI, elf.DT_INIT_ARRAY} {
		if _, ok := tags[tag]; ok {
			t.Errorf("dynamic section has %v", tag)
		}
	}
	if sonames, _ := f.DynString(elf.DT_SONAME); len(sonames) != 1 || sonames[0] != "linux-vdso.so.1" {
		t.Errorf("DT_SONAME %q, want linux-vdso.so.1", sonames)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]elf.Symbol{}
	for _, s := range syms {
		found[s.Name] = s
	}
	for _, name := range exported {
		for _, n := range []string{"__vdso_" + name, name} {
			s, ok := found[n]
			if !ok {
				t.Errorf("%s not exported", n)
				continue
			}
			if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || s.Size == 0 || s.Version != versionName {
				t.Errorf("%s: type %v value %#x size %d version %q, want a function of version %s", n, elf.ST_TYPE(s.Info), s.Value, s.Size, s.Version, versionName)
			}
		}
		if found[name].Value != found["__vdso_"+name].Value {
			t.Errorf("%s and __vdso_%s differ", name, name)
		}
	}
}

// TestImageLookup finds each symbol the way a dynamic linker does, through
// DT_HASH and DT_GNU_HASH, and checks its version through DT_VERSYM and
// DT_VERDEF, reading the image as mapped (addresses are offsets: it is
// linked at 0 and loaded as one segment).
func TestImageLookup(t *testing.T) {
	f := parseImage(t)
	tags := dynamicTags(t, f)
	img := Image()
	le := binary.LittleEndian
	u32 := func(off uint64) uint32 { return le.Uint32(img[off:]) }
	u64 := func(off uint64) uint64 { return le.Uint64(img[off:]) }
	strtab, symtab := tags[elf.DT_STRTAB], tags[elf.DT_SYMTAB]
	cstr := func(off uint64) string {
		s := img[strtab+off:]
		return string(s[:bytes.IndexByte(s, 0)])
	}
	symName := func(i uint64) string { return cstr(uint64(u32(symtab + i*24))) }
	symValue := func(i uint64) uint64 { return u64(symtab + i*24 + 8) }

	// The version definition of index 2 must be LINUX_2.6, with the hash
	// glibc compares before the name.
	verIndex := map[uint16]string{}
	for off, n := tags[elf.DT_VERDEF], 0; n < int(tags[elf.DT_VERDEFNUM]); n++ {
		ndx := le.Uint16(img[off+4:])
		hash := u32(off + 8)
		aux := off + uint64(u32(off+12))
		name := cstr(uint64(u32(aux)))
		if hash != sysvHash(name) {
			t.Errorf("verdef %q hash %#x, want %#x", name, hash, sysvHash(name))
		}
		verIndex[ndx] = name
		off += uint64(u32(off + 16))
	}

	sysv := func(name string) (uint64, bool) {
		h := tags[elf.DT_HASH]
		nbucket := uint64(u32(h))
		chain := h + 8 + nbucket*4
		for i := uint64(u32(h + 8 + uint64(sysvHash(name))%nbucket*4)); i != 0; i = uint64(u32(chain + i*4)) {
			if symName(i) == name {
				return i, true
			}
		}
		return 0, false
	}
	gnu := func(name string) (uint64, bool) {
		g := tags[elf.DT_GNU_HASH]
		nbuckets, symoff, bloomSize, bloomShift := uint64(u32(g)), uint64(u32(g+4)), uint64(u32(g+8)), u32(g+12)
		bloom := g + 16
		buckets := bloom + bloomSize*8
		chain := buckets + nbuckets*4
		h := gnuHash(name)
		word := u64(bloom + uint64(h/64)%bloomSize*8)
		mask := uint64(1)<<(h%64) | uint64(1)<<((h>>bloomShift)%64)
		if word&mask != mask {
			return 0, false
		}
		i := uint64(u32(buckets + uint64(h)%nbuckets*4))
		if i < symoff {
			return 0, false
		}
		for ; ; i++ {
			h2 := u32(chain + (i-symoff)*4)
			if h|1 == h2|1 && symName(i) == name {
				return i, true
			}
			if h2&1 != 0 {
				return 0, false
			}
		}
	}
	for _, base := range exported {
		for _, name := range []string{"__vdso_" + base, base} {
			i, ok := sysv(name)
			j, ok2 := gnu(name)
			if !ok || !ok2 || i != j {
				t.Errorf("%s: DT_HASH lookup %d (%v), DT_GNU_HASH lookup %d (%v)", name, i, ok, j, ok2)
				continue
			}
			if v := verIndex[le.Uint16(img[tags[elf.DT_VERSYM]+i*2:])&0x7fff]; v != versionName {
				t.Errorf("%s has version %q", name, v)
			}
			if symValue(i) == 0 || symValue(i) >= uint64(len(img)) {
				t.Errorf("%s at %#x, outside the image", name, symValue(i))
			}
		}
	}
	if _, ok := sysv("__vdso_nonexistent"); ok {
		t.Error("DT_HASH finds a symbol that does not exist")
	}
	if _, ok := gnu("__vdso_nonexistent"); ok {
		t.Error("DT_GNU_HASH finds a symbol that does not exist")
	}
}

func TestImageNotes(t *testing.T) {
	f := parseImage(t)
	var linux, buildID bool
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b := Image()[p.Off : p.Off+p.Filesz]
		le := binary.LittleEndian
		for len(b) >= 12 {
			namesz, descsz, typ := le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:])
			nameEnd := 12 + (namesz+3)&^3
			descEnd := nameEnd + (descsz+3)&^3
			if uint32(len(b)) < descEnd {
				t.Fatalf("truncated note")
			}
			name := string(bytes.TrimRight(b[12:12+namesz], "\x00"))
			desc := b[nameEnd : nameEnd+descsz]
			switch {
			case name == "Linux" && typ == 0:
				linux = true
				if descsz != 4 || le.Uint32(desc) != 6<<16|6<<8 {
					t.Errorf("Linux note %x, want version 6.6.0", desc)
				}
			case name == "GNU" && typ == ntGNUBuildID:
				buildID = len(desc) == 20
			}
			b = b[descEnd:]
		}
	}
	if !linux || !buildID {
		t.Errorf("notes: Linux version %v, GNU build ID %v; want both", linux, buildID)
	}
}

func TestImageHasNoHostPaths(t *testing.T) {
	if i := bytes.Index(Image(), []byte("/work/")); i >= 0 {
		t.Errorf("image names a host path at %#x", i)
	}
}

// TestVVarLayout checks vvarData against the offsets src/vvar.h asserts.
func TestVVarLayout(t *testing.T) {
	hdr, err := os.ReadFile("src/vvar.h")
	if err != nil {
		t.Fatal(err)
	}
	var d vvarData
	goOff := map[string]uintptr{
		"seq": unsafe.Offsetof(d.seq), "mode": unsafe.Offsetof(d.mode),
		"tsc_base": unsafe.Offsetof(d.tscBase), "mono_base": unsafe.Offsetof(d.monoBase),
		"mult": unsafe.Offsetof(d.mult), "shift": unsafe.Offsetof(d.shift),
		"realtime_offset": unsafe.Offsetof(d.realtimeOffset), "boottime_offset": unsafe.Offsetof(d.boottimeOffset),
		"tai_offset": unsafe.Offsetof(d.taiOffset), "cpu": unsafe.Offsetof(d.cpu), "node": unsafe.Offsetof(d.node),
	}
	re := regexp.MustCompile(`^VVAR_ASSERT_OFFSET\((\w+), (\d+)\);$`)
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(hdr))
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		seen++
		want, _ := strconv.Atoi(m[2])
		got, ok := goOff[m[1]]
		if !ok || int(got) != want {
			t.Errorf("field %s: Go offset %d (known %v), header %d", m[1], got, ok, want)
		}
	}
	if seen != len(goOff) {
		t.Errorf("header asserts %d offsets, Go has %d fields", seen, len(goOff))
	}
	if !bytes.Contains(hdr, []byte(fmt.Sprintf("sizeof(struct veil_vvar) == %d", unsafe.Sizeof(d)))) {
		t.Errorf("header does not assert the Go size %d", unsafe.Sizeof(d))
	}
	for _, m := range []struct {
		name string
		val  int
	}{{"VVAR_MODE_SYSCALL", ModeSyscall}, {"VVAR_MODE_TSC", ModeTSC}} {
		if !regexp.MustCompile(`#define ` + m.name + ` ` + strconv.Itoa(m.val) + `\b`).Match(hdr) {
			t.Errorf("header does not define %s as %d", m.name, m.val)
		}
	}
}

// TestRebuild rebuilds the image from src/ and checks that the embedded
// one is what the committed sources give.
func TestRebuild(t *testing.T) {
	for _, tool := range []string{"make", "gcc", "objcopy", "readelf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: cannot rebuild the vDSO image", tool)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "vdso.so")
	cmd := exec.Command("make", "-s", "-B", "-C", "src", "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rebuilding the image: %v\n%s", err, b)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(built, Image()) {
		return
	}
	want, _ := os.ReadFile("vdso.toolchain")
	got, _ := os.ReadFile(filepath.Join(dir, "vdso.toolchain"))
	if !bytes.Equal(want, got) {
		t.Skipf("the image was built with\n%sand this machine has\n%sso the rebuild (which differs) is not comparable", want, got)
	}
	t.Errorf("vdso.so does not match its sources: run `go generate ./sentry/vdso` and commit the result")
}

func TestMonoAt(t *testing.T) {
	for _, p := range []Params{
		{TSCBase: 1000, MonoBase: 5, Mult: 1 << 32, Shift: 32},
		{TSCBase: 0, MonoBase: 1 << 40, Mult: 0x6_6666_6666, Shift: 32},
		{TSCBase: 1 << 60, MonoBase: 0, Mult: ^uint64(0), Shift: 63},
		{TSCBase: 7, MonoBase: 9, Mult: 3, Shift: 0},
	} {
		for _, tsc := range []uint64{0, 1, 999, 1000, 1001, 1 << 33, 1<<60 + 12345, 1 << 62, ^uint64(0)} {
			var delta uint64
			if tsc > p.TSCBase {
				delta = tsc - p.TSCBase
			}
			prod := new(big.Int).Mul(new(big.Int).SetUint64(delta), new(big.Int).SetUint64(p.Mult))
			prod.Rsh(prod, uint(p.Shift))
			prod.And(prod, new(big.Int).SetUint64(^uint64(0)))
			want := p.MonoBase + prod.Uint64()
			if got := p.MonoAt(tsc); got != want {
				t.Errorf("%+v MonoAt(%d) = %d, want %d", p, tsc, got, want)
			}
		}
	}
}

func TestVVarUpdate(t *testing.T) {
	page := make([]byte, VVarSize)
	v := NewVVar(page)
	if p := v.Load(); p.Mode != ModeSyscall {
		t.Errorf("new page mode %d, want ModeSyscall", p.Mode)
	}
	want := Params{Mode: ModeTSC, TSCBase: 1, MonoBase: 2, Mult: 3, Shift: 4, RealtimeOffset: -5, BoottimeOffset: 6, TAIOffset: 7}
	v.BeginUpdate()
	if seq := binary.LittleEndian.Uint32(page); seq&1 == 0 {
		t.Errorf("seq %d during an update, want odd", seq)
	}
	v.Store(want)
	v.EndUpdate()
	if got := v.Load(); got != want {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	if seq := binary.LittleEndian.Uint32(page); seq != 4 {
		t.Errorf("seq %d after two updates, want 4", seq)
	}
	v.SetCPU(3, 1)
	if cpu, node := binary.LittleEndian.Uint32(page[64:]), binary.LittleEndian.Uint32(page[68:]); cpu != 3 || node != 1 {
		t.Errorf("cpu %d node %d, want 3 1", cpu, node)
	}
	if !strings.Contains(string(Image()), "linux-vdso.so.1") {
		t.Error("image lacks its soname string")
	}
}

func dynamicTags(t *testing.T, f *elf.File) map[elf.DynTag]uint64 {
	t.Helper()
	s := f.Section(".dynamic")
	if s == nil {
		t.Fatal("no .dynamic section")
	}
	b, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	tags := map[elf.DynTag]uint64{}
	for ; len(b) >= 16; b = b[16:] {
		tag := elf.DynTag(binary.LittleEndian.Uint64(b))
		if tag == elf.DT_NULL {
			break
		}
		tags[tag] = binary.LittleEndian.Uint64(b[8:])
	}
	return tags
}

// sysvHash is the ELF (DT_HASH) hash function.
func sysvHash(name string) uint32 {
	var h uint32
	for i := 0; i < len(name); i++ {
		h = h<<4 + uint32(name[i])
		if g := h & 0xf0000000; g != 0 {
			h ^= g >> 24
		}
		h &^= 0xf0000000
	}
	return h
}

// gnuHash is the DT_GNU_HASH hash function.
func gnuHash(name string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(name); i++ {
		h = h*33 + uint32(name[i])
	}
	return h
}
