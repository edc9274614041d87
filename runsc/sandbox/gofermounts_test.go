package sandbox

import (
	"testing"

	"github.com/veil-sandbox/veil/runsc/boot"
)

func TestGoferMounts(t *testing.T) {
	args := &boot.Args{Mounts: []boot.Mount{
		{Destination: "/proc", Type: "proc"},
		{Destination: "/data", Type: "bind", Source: "/srv/data"},
		{Destination: "/etc/hosts", Type: "bind", Source: "/run/hosts", ReadOnly: true},
	}}
	orig := args.Mounts
	gm := goferMounts("/rootfs", "memory", args)
	want := []GoferMount{{Source: "/rootfs", ReadOnly: true}, {Source: "/srv/data"}, {Source: "/run/hosts", ReadOnly: true}}
	if len(gm) != len(want) {
		t.Fatalf("gofer mounts %+v", gm)
	}
	for i := range want {
		if gm[i] != want[i] {
			t.Errorf("gofer mount %d = %+v, want %+v", i, gm[i], want[i])
		}
	}
	if args.Mounts[1].GoferIndex != 1 || args.Mounts[2].GoferIndex != 2 {
		t.Errorf("gofer indexes %+v", args.Mounts)
	}
	if orig[1].GoferIndex != 0 {
		t.Error("the caller's mount list was changed in place")
	}
	// Without an overlay the root is served writable unless root.readonly.
	if gm := goferMounts("/rootfs", "none", &boot.Args{}); gm[0].ReadOnly {
		t.Error("--overlay=none served the root read-only")
	}
	if gm := goferMounts("/rootfs", "none", &boot.Args{RootReadOnly: true}); !gm[0].ReadOnly {
		t.Error("root.readonly served the root writable")
	}
}
