package vfs

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

type countingImpl struct {
	FileDescriptionDefaultImpl
	released *int
}

func (c countingImpl) Release(context.Context)             { *c.released++ }
func (c countingImpl) Stat(context.Context) (Statx, error) { return Statx{}, nil }

func TestFDTable(t *testing.T) {
	ctx := context.Background()
	released := 0
	f := NewFileDescription(countingImpl{released: &released}, unix.O_RDWR, VirtualDentry{})
	tbl := NewFDTable()
	for want := int32(0); want < 3; want++ {
		if fd, err := tbl.NewFD(0, f, FDFlags{}, 4); fd != want || err != nil {
			t.Fatalf("NewFD = %d %v, want %d", fd, err, want)
		}
	}
	if fd, err := tbl.NewFD(0, f, FDFlags{CloseOnExec: true}, 4); fd != 3 || err != nil {
		t.Fatalf("NewFD = %d %v", fd, err)
	}
	if _, err := tbl.NewFD(0, f, FDFlags{}, 4); err != unix.EMFILE {
		t.Fatalf("past limit: %v", err)
	}
	// The lowest free descriptor is reused.
	tbl.Remove(1).DecRef(ctx)
	if fd, _ := tbl.NewFD(0, f, FDFlags{}, 4); fd != 1 {
		t.Fatalf("reuse got %d", fd)
	}
	if fd, _ := tbl.NewFD(2, f, FDFlags{}, 10); fd != 4 {
		t.Fatalf("minfd 2 got %d", fd)
	}
	if err := tbl.NewFDAt(ctx, 10, f, FDFlags{}, 10); err != unix.EBADF {
		t.Fatalf("NewFDAt at limit: %v", err)
	}
	if err := tbl.NewFDAt(ctx, 0, f, FDFlags{CloseOnExec: true}, 10); err != nil {
		t.Fatal(err)
	}
	if _, fl := tbl.Get(0); !fl.CloseOnExec {
		t.Fatalf("dup3 flags lost")
	} else {
		f.DecRef(ctx)
	}
	child := tbl.Fork()
	tbl.CloseOnExec(ctx)
	if g, _ := tbl.Get(3); g != nil {
		t.Fatalf("cloexec fd survived exec")
	}
	if g, _ := child.Get(3); g == nil {
		t.Fatalf("forked table lost fd 3")
	} else {
		g.DecRef(ctx)
	}
	tbl.RemoveRange(ctx, 0, ^uint32(0), false)
	if released != 0 {
		t.Fatalf("released while child table holds it")
	}
	child.DecRef(ctx)
	f.DecRef(ctx)
	if released != 1 {
		t.Fatalf("released %d times, want 1", released)
	}
}
