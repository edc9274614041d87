package usermem

import (
	"testing"
	"time"

	"github.com/veil-sandbox/veil/sentry/hostarch"
)

// A sequence holding empty ranges (write(fd, buf, 0), an iovec of zero
// length) is walked to its end instead of forever.
func TestWriteToEmptyRanges(t *testing.T) {
	io := &BytesIO{Bytes: []byte("abcdef")}
	for _, rs := range [][]hostarch.AddrRange{
		{{Start: 0, End: 0}},
		{{Start: 2, End: 2}, {Start: 0, End: 3}, {Start: 5, End: 5}, {Start: 3, End: 6}},
	} {
		done := make(chan string, 1)
		go func() {
			var got []byte
			IOSequence{IO: io, Ranges: rs}.WriteTo(func(src [][]byte) (int64, error) {
				n := 0
				for _, b := range src {
					got = append(got, b...)
					n += len(b)
				}
				return int64(n), nil
			})
			done <- string(got)
		}()
		select {
		case got := <-done:
			if want := map[int]string{1: "", 4: "abcdef"}[len(rs)]; got != want {
				t.Errorf("ranges %v gave %q, want %q", rs, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("WriteTo over %v never returned", rs)
		}
	}
}
