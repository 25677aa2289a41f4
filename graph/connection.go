package graph

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/compshare/imagegraph/graph/model"
)

// cursorPrefix is what a cursor holds before its position. Cursors encode
// the position only, so a cursor of one connection is a position in any.
const cursorPrefix = "pos:"

// encodeCursor returns the opaque cursor of position pos (zero-based).
func encodeCursor(pos int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.Itoa(pos)))
}

// decodeCursor returns the position a cursor holds.
func decodeCursor(arg, c string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if s, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if pos, err := strconv.Atoi(s); err == nil && pos >= 0 && strconv.Itoa(pos) == s {
				return pos, nil
			}
		}
	}
	return 0, badInputf("%s: %q is not a cursor of this connection", arg, c)
}

// pageArgs are a connection's validated first/after/last/before.
type pageArgs struct {
	first, last   *int
	after, before *int
}

// defaultFirst is the page size when neither first nor last is given.
const defaultFirst = 20

// parsePageArgs validates the Relay arguments: first and last between 0 and
// maxPage, cursors that decode. Neither first nor last means first: 20.
func parsePageArgs(first *int, after *string, last *int, before *string, maxPage int) (pageArgs, error) {
	var p pageArgs
	for _, a := range []struct {
		name string
		v    *int
		dst  **int
	}{{"first", first, &p.first}, {"last", last, &p.last}} {
		if a.v == nil {
			continue
		}
		if *a.v < 0 || *a.v > maxPage {
			return p, badInputf("%s must be between 0 and %d, got %d", a.name, maxPage, *a.v)
		}
		*a.dst = a.v
	}
	for _, c := range []struct {
		name string
		v    *string
		dst  **int
	}{{"after", after, &p.after}, {"before", before, &p.before}} {
		if c.v == nil {
			continue
		}
		pos, err := decodeCursor(c.name, *c.v)
		if err != nil {
			return p, err
		}
		*c.dst = &pos
	}
	if p.first == nil && p.last == nil {
		n := defaultFirst
		p.first = &n
	}
	return p, nil
}

// window is a slice [start, end) of a list of total items.
type window struct{ start, end int }

func (w window) size() int { return w.end - w.start }

// needsTotal reports whether the window depends on the length of the list
// beyond clipping its end: `last` counts back from an end that is the
// list's end, or that may lie past it.
func (p pageArgs) needsTotal() bool { return p.last != nil }

// window applies Relay's pagination algorithm to a list of total items:
// slice by after and before, then by first, then by last. total < 0 means
// unknown, for arguments whose window does not depend on it.
func (p pageArgs) window(total int) window {
	const unbounded = int(^uint(0) >> 1)
	w := window{start: 0, end: unbounded}
	if total >= 0 {
		w.end = total
	}
	if p.after != nil && *p.after+1 > w.start {
		w.start = *p.after + 1
	}
	if p.before != nil && *p.before < w.end {
		w.end = *p.before
	}
	if w.start > w.end {
		w.start = w.end
	}
	if p.first != nil && w.start+*p.first < w.end {
		w.end = w.start + *p.first
	}
	if p.last != nil && w.end-*p.last > w.start {
		w.start = w.end - *p.last
	}
	if total >= 0 && w.start > total {
		w.start, w.end = total, total
	}
	return w
}

// pageInfo returns the exact PageInfo of window w over total items, with n
// items actually in the window.
func pageInfo(w window, n, total int) *model.PageInfo {
	pi := &model.PageInfo{
		HasPreviousPage: w.start > 0 && total > 0,
		HasNextPage:     w.start+n < total,
	}
	if n > 0 {
		s, e := encodeCursor(w.start), encodeCursor(w.start+n-1)
		pi.StartCursor, pi.EndCursor = &s, &e
	}
	return pi
}

// versionConnection pages an in-memory, ordered list of versions.
func versionConnection(all []*model.ImageVersion, p pageArgs) *model.ImageVersionConnection {
	w := p.window(len(all))
	items := all[w.start:w.end]
	conn := &model.ImageVersionConnection{
		Edges:      make([]*model.ImageVersionEdge, len(items)),
		Nodes:      items,
		PageInfo:   pageInfo(w, len(items), len(all)),
		TotalCount: len(all),
	}
	for i, v := range items {
		conn.Edges[i] = &model.ImageVersionEdge{Cursor: encodeCursor(w.start + i), Node: v}
	}
	return conn
}
