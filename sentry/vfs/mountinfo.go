package vfs

import (
	"sort"
	"strings"
)

// MountInfo describes one mount for /proc/PID/mounts and mountinfo.
type MountInfo struct {
	Mount *Mount
	// ParentID is the ID of the mount this one is attached to (its own
	// ID for the root mount, as Linux shows it).
	ParentID uint64
	// Root is the path of the mount's root within its filesystem: "/"
	// unless it is a bind mount of a subtree.
	Root string
}

// MountInfos returns every mount in the order it was mounted (so parents
// before children, as Linux lists them), with what
// mountinfo shows of it. Where each is mounted, as seen from a task's
// root, is PathnameWithin(root, m.Root()).
func (vfs *VirtualFilesystem) MountInfos() []MountInfo {
	ms := vfs.Mounts()
	// A mount is attached to one that exists already, so IDs, which
	// grow, order parents before children.
	sort.Slice(ms, func(i, j int) bool { return ms[i].id < ms[j].id })
	out := make([]MountInfo, 0, len(ms))
	vfs.mountMu.RLock()
	for _, m := range ms {
		mi := MountInfo{Mount: m, ParentID: m.id}
		if m.parent != nil {
			mi.ParentID = m.parent.id
		}
		out = append(out, mi)
	}
	vfs.mountMu.RUnlock()
	vfs.renameMu.RLock()
	for i := range out {
		var parts []string
		for d := out[i].Mount.root; d.parent != nil; d = d.parent {
			parts = append(parts, d.name)
		}
		var b strings.Builder
		for j := len(parts) - 1; j >= 0; j-- {
			b.WriteByte('/')
			b.WriteString(parts[j])
		}
		if b.Len() == 0 {
			b.WriteByte('/')
		}
		out[i].Root = b.String()
	}
	vfs.renameMu.RUnlock()
	return out
}
