package proto

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	gproto "google.golang.org/protobuf/proto"

	"golang.org/x/sys/unix"
)

func pair(t *testing.T) (*Conn, *Conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := NewConn(fds[0]), NewConn(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestRoundTripWithFD(t *testing.T) {
	a, b := pair(t)
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, []byte("payload"), 0o644)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := &Response{Id: 9, NumFds: 1, Result: &Response_Open{Open: &OpenResp{Attr: &Attr{Size: 7, Mode: unix.S_IFREG | 0o644}}}}
	if err := a.Send(in, []int{int(f.Fd())}); err != nil {
		t.Fatal(err)
	}
	raw, fds, err := b.RecvRaw()
	if err != nil || len(fds) != 1 {
		t.Fatalf("recv: %v, %d fds", err, len(fds))
	}
	defer CloseFDs(fds)
	out, err := DecodeResponse(raw)
	if err != nil || !gproto.Equal(in, out) {
		t.Fatalf("decoded %v, %v", out, err)
	}
	buf := make([]byte, 7)
	if n, _ := unix.Pread(fds[0], buf, 0); string(buf[:n]) != "payload" {
		t.Errorf("passed FD reads %q", buf[:n])
	}
}

func TestRequestRoundTripKeepsBytes(t *testing.T) {
	a, b := pair(t)
	name := []byte{0xff, 0xfe, 'x'} // not UTF-8: must survive
	if err := a.Send(&Request{Id: 3, Op: &Request_Walk{Walk: &WalkReq{Dir: 1, Name: name}}}, nil); err != nil {
		t.Fatal(err)
	}
	raw, _, err := b.RecvRaw()
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeRequest(raw)
	if err != nil || string(req.GetWalk().GetName()) != string(name) || req.Id != 3 {
		t.Fatalf("decoded %v, %v", req, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, b := range [][]byte{nil, {0xff}, {0x08, 0x01}, {0x1a, 0x10, 0x00}} {
		if _, err := DecodeRequest(b); err != ErrProtocol {
			t.Errorf("DecodeRequest(%x) = %v, want ErrProtocol", b, err)
		}
	}
}

func TestLimits(t *testing.T) {
	a, b := pair(t)
	big := &Request{Op: &Request_Setxattr{Setxattr: &SetxattrReq{Value: make([]byte, MaxMessageSize)}}}
	if err := a.Send(big, nil); err != unix.EMSGSIZE {
		t.Errorf("oversized send: %v", err)
	}
	if err := a.Send(&Request{}, make([]int, MaxFDs+1)); err != unix.EINVAL {
		t.Errorf("too many fds: %v", err)
	}
	a.Close()
	if _, _, err := b.RecvRaw(); err != io.EOF {
		t.Errorf("recv after peer close: %v", err)
	}
}
