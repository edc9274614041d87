package sandbox

import "github.com/veil-sandbox/veil/runsc/boot"

// goferMounts lists what the gofer serves, one socket each: the root
// first, then every bind mount of args, whose GoferIndex it sets. The root
// is served read-only when the container may not change it on the host:
// root.readonly, or an overlay whose upper layer takes the writes.
func goferMounts(rootDir string, overlay string, args *boot.Args) []GoferMount {
	rootRO := args.RootReadOnly || overlay != "none"
	gm := []GoferMount{{Source: rootDir, ReadOnly: rootRO}}
	mounts := make([]boot.Mount, len(args.Mounts))
	for i, m := range args.Mounts {
		if m.Type == "bind" {
			m.GoferIndex = len(gm)
			gm = append(gm, GoferMount{Source: m.Source, ReadOnly: m.ReadOnly})
		}
		mounts[i] = m
	}
	args.Mounts = mounts
	return gm
}
