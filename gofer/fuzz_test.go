package gofer

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	gproto "google.golang.org/protobuf/proto"

	"github.com/veil-sandbox/veil/gofer/proto"
)

// FuzzDecode feeds arbitrary packets to the server's request decoding and
// to a live session: neither may panic, and a decoded request must get an
// answer, never a crash of the gofer.
func FuzzDecode(f *testing.F) {
	seeds := []*proto.Request{
		{Id: 1, Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: proto.MaxVersion}}},
		{Id: 2, Op: &proto.Request_Walk{Walk: &proto.WalkReq{Dir: 1, Name: []byte("file")}}},
		{Id: 3, Op: &proto.Request_Open{Open: &proto.OpenReq{Handle: 2, Flags: unix.O_RDWR}}},
		{Id: 4, Op: &proto.Request_SetStat{SetStat: &proto.SetStatReq{Handle: 1, Mask: 0x3f, Atime: &proto.Timespec{Nsec: unix.UTIME_NOW}}}},
		{Id: 5, Op: &proto.Request_Rename{Rename: &proto.RenameReq{OldDir: 1, OldName: []byte("a"), NewDir: 1, NewName: []byte("..")}}},
		{Id: 6, Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: 1, Cookie: -1}}},
		{Id: 8, Op: &proto.Request_Readdir{Readdir: &proto.ReaddirReq{Dir: 1, Via: [][]byte{[]byte("dir")}, Name: []byte("sub"),
			Attrs: true, Packed: true, WantHandle: true, Prefetch: 3}}},
		{Id: 7, Op: &proto.Request_Close{Close: &proto.CloseReq{Handles: []uint32{1, 2, 3}}}},
	}
	for _, s := range seeds {
		b, err := gproto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	// Something to find: a file, a directory, a symlink out.
	root := f.TempDir()
	if err := os.WriteFile(filepath.Join(root, "file"), []byte("data"), 0o644); err != nil {
		f.Fatal(err)
	}
	os.Mkdir(filepath.Join(root, "dir"), 0o755)
	os.MkdirAll(filepath.Join(root, "dir", "sub", "deeper"), 0o755)
	os.Symlink("../../etc/passwd", filepath.Join(root, "link"))
	rfd, err := OpenRoot(root)
	if err != nil {
		f.Fatal(err)
	}
	pfd, err := openProcSelfFD()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := proto.DecodeRequest(b)
		if err != nil {
			return
		}
		dup, err := unix.Dup(rfd)
		if err != nil {
			t.Fatal(err)
		}
		// Read-only, so fuzzing never mutates the tree.
		s := newSession(dup, pfd, true)
		defer s.closeAll()
		s.handle(&proto.Request{Op: &proto.Request_Version{Version: &proto.VersionReq{MinVersion: 1, MaxVersion: proto.MaxVersion}}})
		resp, fds := s.handle(req)
		proto.CloseFDs(fds)
		if resp == nil {
			t.Fatal("no response")
		}
		if _, err := gproto.Marshal(resp); err != nil {
			t.Fatalf("response does not marshal: %v", err)
		}
	})
}
