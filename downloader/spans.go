package downloader

import (
	"slices"
	"sort"
)

// span is the bytes [from, to) of a file.
type span struct{ from, to int64 }

func (s span) len() int64 { return s.to - s.from }

// spans is a sorted set of disjoint, non-touching spans.
type spans []span

// add returns s with x merged in.
func (s spans) add(x span) spans {
	if x.to <= x.from {
		return s
	}
	i := sort.Search(len(s), func(i int) bool { return s[i].to >= x.from })
	j := i
	for j < len(s) && s[j].from <= x.to {
		x.from, x.to = min(x.from, s[j].from), max(x.to, s[j].to)
		j++
	}
	return slices.Replace(s, i, j, x)
}

// bytes is how many bytes s covers.
func (s spans) bytes() int64 {
	var n int64
	for _, x := range s {
		n += x.len()
	}
	return n
}

// at returns the span that holds off.
func (s spans) at(off int64) (span, bool) {
	i := sort.Search(len(s), func(i int) bool { return s[i].to > off })
	if i < len(s) && s[i].from <= off {
		return s[i], true
	}
	return span{}, false
}

// gaps is what s leaves uncovered of [0, size).
func (s spans) gaps(size int64) spans {
	var out spans
	at := int64(0)
	for _, x := range s {
		if x.from >= size {
			break
		}
		if x.from > at {
			out = append(out, span{at, x.from})
		}
		at = max(at, x.to)
	}
	if at < size {
		out = append(out, span{at, size})
	}
	return out
}

// after is the part of s at or after off.
func (s spans) after(off int64) spans {
	var out spans
	for _, x := range s {
		if x.to <= off {
			continue
		}
		out = append(out, span{max(x.from, off), x.to})
	}
	return out
}

// firstGap is the first byte s does not cover.
func (s spans) firstGap() int64 {
	if len(s) > 0 && s[0].from == 0 {
		return s[0].to
	}
	return 0
}
