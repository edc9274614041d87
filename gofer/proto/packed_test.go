package proto

import (
	"strings"
	"testing"
)

func sampleStat() Stat {
	return Stat{Mode: 0o100644, UID: 1000, GID: 100, Blksize: 4096, Nlink: 2, Ino: 1 << 40, Dev: 0x803,
		Size: -1, Blocks: 8, Rdev: 7, Atime: StatTime{-5, 999999999}, Mtime: StatTime{1 << 33, 1}, Ctime: StatTime{3, 4}}
}

func TestPackedRoundTrip(t *testing.T) {
	st := sampleStat()
	var b []byte
	b = AppendPacked(b, []byte("a"), 1, 10, 8, &st)
	b = AppendPacked(b, []byte(strings.Repeat("n", 255)), 2, 20, 4, nil)
	if len(b) != PackedSize(1, true)+PackedSize(255, false) {
		t.Fatalf("size %d", len(b))
	}
	ents, err := DecodePacked(string(b), nil)
	if err != nil || len(ents) != 2 {
		t.Fatalf("decode: %v, %d entries", err, len(ents))
	}
	want := []PackedDirent{
		{Name: "a", Ino: 1, Cookie: 10, Type: 8, HasAttr: true, Attr: st},
		{Name: strings.Repeat("n", 255), Ino: 2, Cookie: 20, Type: 4},
	}
	for k := range want {
		if ents[k] != want[k] {
			t.Errorf("entry %d: %+v, want %+v", k, ents[k], want[k])
		}
	}
	if got := StatOf(st.Attr()); got != st {
		t.Errorf("Stat -> Attr -> Stat: %+v, want %+v", got, st)
	}
}

// Every cut of a valid buffer short of an entry's end, and every name
// that is not one component, is refused.
func TestPackedMalformed(t *testing.T) {
	st := sampleStat()
	b := AppendPacked(AppendPacked(nil, []byte("one"), 1, 1, 8, &st), []byte("two"), 2, 2, 8, nil)
	first := PackedSize(3, true)
	for n := 1; n < len(b); n++ {
		_, err := DecodePacked(string(b[:n]), nil)
		if (err == nil) != (n == first) {
			t.Errorf("cut at %d: %v", n, err)
		}
	}
	for _, name := range []string{".", "..", "a/b", "a\x00"} {
		if _, err := DecodePacked(string(AppendPacked(nil, []byte(name), 1, 1, 8, nil)), nil); err != ErrPacked {
			t.Errorf("name %q: %v", name, err)
		}
	}
	bad := AppendPacked(nil, []byte("x"), 1, 1, 8, nil)
	bad[17] = 2 // unknown flag
	if _, err := DecodePacked(string(bad), nil); err != ErrPacked {
		t.Errorf("unknown flag: %v", err)
	}
	bad[17], bad[18], bad[19] = 0, 0, 0 // empty name
	if _, err := DecodePacked(string(bad), nil); err != ErrPacked {
		t.Errorf("empty name: %v", err)
	}
}

// FuzzDecodePacked: whatever a gofer sends, decoding does not panic, and
// what it accepts encodes back to the same bytes.
func FuzzDecodePacked(f *testing.F) {
	st := sampleStat()
	f.Add(AppendPacked(AppendPacked(nil, []byte("file"), 1, 1, 8, &st), []byte("d"), 2, 2, 4, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, err := DecodePacked(string(b), nil)
		if err != nil {
			return
		}
		var again []byte
		for _, e := range ents {
			var sp *Stat
			if e.HasAttr {
				sp = &e.Attr
			}
			again = AppendPacked(again, []byte(e.Name), e.Ino, e.Cookie, e.Type, sp)
		}
		if string(again) != string(b) {
			t.Errorf("re-encoded %x, was %x", again, b)
		}
	})
}
