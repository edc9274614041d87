package mm

import (
	"github.com/google/btree"
)

// pageRun says that [start, end) (application addresses for the page table,
// object offsets for shared anonymous memory) lives at [off, off+end-start)
// of the memory file. cow marks pages that may be shared with another
// address space after fork and must be copied before they are written.
type pageRun struct {
	start, end uint64
	off        uint64
	cow        bool
}

func (r pageRun) length() uint64 { return r.end - r.start }

// clip returns r restricted to [start, end), with its file offset adjusted.
func (r pageRun) clip(start, end uint64) pageRun {
	if start > r.start {
		r.off += start - r.start
		r.start = start
	}
	if end < r.end {
		r.end = end
	}
	return r
}

// pageSet is an ordered set of non-overlapping page runs. Runs contiguous
// both in the key space and in the file, with the same cow flag, are merged,
// so a large region faulted in pieces costs few entries.
type pageSet struct {
	t *btree.BTreeG[pageRun]
}

func newPageSet() pageSet {
	return pageSet{t: btree.NewG(8, func(a, b pageRun) bool { return a.start < b.start })}
}

// find returns the run containing k.
func (s pageSet) find(k uint64) (pageRun, bool) {
	var out pageRun
	ok := false
	s.t.DescendLessOrEqual(pageRun{start: k}, func(r pageRun) bool {
		if k < r.end {
			out, ok = r, true
		}
		return false
	})
	return out, ok
}

// nextStart returns the start of the first run at or after k, or limit.
func (s pageSet) nextStart(k, limit uint64) uint64 {
	out := limit
	s.t.AscendGreaterOrEqual(pageRun{start: k}, func(r pageRun) bool {
		if r.start < out {
			out = r.start
		}
		return false
	})
	return out
}

// prevEnd returns the end of the last run starting before k, or zero.
func (s pageSet) prevEnd(k uint64) uint64 {
	var out uint64
	s.t.DescendLessOrEqual(pageRun{start: k}, func(r pageRun) bool {
		if r.start < k {
			out = r.end
			return false
		}
		return true
	})
	return out
}

// split makes k a run boundary.
func (s pageSet) split(k uint64) {
	r, ok := s.find(k)
	if !ok || r.start == k {
		return
	}
	s.t.ReplaceOrInsert(r.clip(r.start, k))
	s.t.ReplaceOrInsert(r.clip(k, r.end))
}

// overlapping returns the runs intersecting [start, end), unclipped.
func (s pageSet) overlapping(start, end uint64) []pageRun {
	var out []pageRun
	if r, ok := s.find(start); ok {
		out = append(out, r)
		start = r.end
	}
	if start >= end {
		return out
	}
	s.t.AscendRange(pageRun{start: start}, pageRun{start: end}, func(r pageRun) bool {
		out = append(out, r)
		return true
	})
	return out
}

// remove deletes [start, end) from the set and returns the removed runs,
// clipped, so that the caller can drop their references.
func (s pageSet) remove(start, end uint64) []pageRun {
	s.split(start)
	s.split(end)
	var out []pageRun
	s.t.AscendRange(pageRun{start: start}, pageRun{start: end}, func(r pageRun) bool {
		out = append(out, r)
		return true
	})
	for _, r := range out {
		s.t.Delete(r)
	}
	return out
}

// insert adds r, whose range must be empty in the set, merging with
// compatible neighbours.
func (s pageSet) insert(r pageRun) {
	var prev pageRun
	hasPrev := false
	s.t.DescendLessOrEqual(pageRun{start: r.start}, func(p pageRun) bool {
		prev, hasPrev = p, true
		return false
	})
	if hasPrev && prev.end == r.start && prev.off+prev.length() == r.off && prev.cow == r.cow {
		s.t.Delete(prev)
		r.off = prev.off
		r.start = prev.start
	}
	if next, ok := s.t.Get(pageRun{start: r.end}); ok && r.off+r.length() == next.off && next.cow == r.cow {
		s.t.Delete(next)
		r.end = next.end
	}
	s.t.ReplaceOrInsert(r)
}

// all returns every run in order.
func (s pageSet) all() []pageRun {
	out := make([]pageRun, 0, s.t.Len())
	s.t.Ascend(func(r pageRun) bool {
		out = append(out, r)
		return true
	})
	return out
}

// bytes is the total length of the runs.
func (s pageSet) bytes() uint64 {
	var n uint64
	s.t.Ascend(func(r pageRun) bool {
		n += r.length()
		return true
	})
	return n
}
