package model

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// InputError is an argument the API refuses, before any upstream call.
// Clients see it with extensions.code BAD_USER_INPUT.
type InputError struct{ Message string }

func (e *InputError) Error() string { return e.Message }

// InputErrorf returns an *InputError with a formatted message.
func InputErrorf(format string, args ...any) error {
	return &InputError{Message: fmt.Sprintf(format, args...)}
}

// cursorPrefix is what a cursor holds before its position. Cursors encode
// the position only, so a cursor of one connection is a position in any.
const cursorPrefix = "pos:"

// EncodeCursor returns the opaque cursor of position pos (zero-based).
func EncodeCursor(pos int) string {
	var buf [maxCursorLen]byte
	return string(appendCursor(buf[:0], pos))
}

// appendCursor appends the cursor of position pos to dst.
func appendCursor(dst []byte, pos int) []byte {
	var raw [32]byte
	return base64.RawURLEncoding.AppendEncode(dst, strconv.AppendInt(append(raw[:0], cursorPrefix...), int64(pos), 10))
}

// maxPosition is the largest position a cursor may hold: a list's length
// is a GraphQL Int (totalCount), so no list has a position past it, and
// windows computed from it cannot overflow an int.
const maxPosition = math.MaxInt32

// maxCursorLen is the length of the longest cursor, maxPosition's.
const maxCursorLen = 20

// decodeCursor returns the position a cursor holds; arg names the argument
// it came in, for the error. Only the cursor EncodeCursor writes for a
// position decodes: not another spelling of it (other padding bits in the
// last base64 character, a line break, which the base64 decoder skips, a
// zero before the number), so that a position has one cursor.
func decodeCursor(arg, c string) (int, error) {
	if len(c) <= maxCursorLen {
		var raw, again [maxCursorLen]byte
		b, err := base64.RawURLEncoding.AppendDecode(raw[:0], []byte(c))
		if err == nil {
			if s, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
				if pos, err := strconv.Atoi(s); err == nil && pos >= 0 && pos <= maxPosition && string(appendCursor(again[:0], pos)) == c {
					return pos, nil
				}
			}
		}
	}
	return 0, InputErrorf("%s: %q is not a cursor of this connection", arg, c)
}

// PageArgs are a connection's validated first/after/last/before.
type PageArgs struct {
	first, last   optInt
	after, before optInt
}

// optInt is an optional argument: n, when set. It is a value, not a
// pointer, so that parsing a connection's arguments allocates nothing.
type optInt struct {
	n   int
	set bool
}

// DefaultFirst is the page size when neither first nor last is given.
const DefaultFirst = 20

// DefaultMaxPageSize bounds first and last when nothing else is configured.
const DefaultMaxPageSize = 500

// ParsePageArgs validates the Relay arguments: first and last between 0 and
// maxPage, cursors that decode. Neither first nor last means first: 20.
func ParsePageArgs(first *int, after *string, last *int, before *string, maxPage int) (PageArgs, error) {
	var p PageArgs
	var err error
	if p.first, err = pageSize("first", first, maxPage); err != nil {
		return p, err
	}
	if p.last, err = pageSize("last", last, maxPage); err != nil {
		return p, err
	}
	if p.after, err = cursorArg("after", after); err != nil {
		return p, err
	}
	if p.before, err = cursorArg("before", before); err != nil {
		return p, err
	}
	if !p.first.set && !p.last.set {
		p.first = optInt{n: DefaultFirst, set: true}
	}
	return p, nil
}

func pageSize(name string, v *int, maxPage int) (optInt, error) {
	if v == nil {
		return optInt{}, nil
	}
	if *v < 0 || *v > maxPage {
		return optInt{}, InputErrorf("%s must be between 0 and %d, got %d", name, maxPage, *v)
	}
	return optInt{n: *v, set: true}, nil
}

func cursorArg(name string, v *string) (optInt, error) {
	if v == nil {
		return optInt{}, nil
	}
	pos, err := decodeCursor(name, *v)
	return optInt{n: pos, set: err == nil}, err
}

// Window is a slice [Start, End) of a list.
type Window struct{ Start, End int }

// Size is the number of positions in w.
func (w Window) Size() int { return w.End - w.Start }

// NeedsTotal reports whether the window cannot be fetched before the length
// of the list is known: `last` without `before` counts back from the list's
// end. With `before`, `last` counts back from the cursor; only a cursor
// past the list's end (the list shrank) moves the window, which the page's
// own count then reveals.
func (p PageArgs) NeedsTotal() bool { return p.last.set && !p.before.set }

// Window applies Relay's pagination algorithm to a list of total items:
// slice by after and before, then by first, then by last. total < 0 means
// unknown, for arguments whose window does not depend on it.
func (p PageArgs) Window(total int) Window {
	const unbounded = int(^uint(0) >> 1)
	w := Window{Start: 0, End: unbounded}
	if total >= 0 {
		w.End = total
	}
	if p.after.set && p.after.n+1 > w.Start {
		w.Start = p.after.n + 1
	}
	if p.before.set && p.before.n < w.End {
		w.End = p.before.n
	}
	if w.Start > w.End {
		w.Start = w.End
	}
	if p.first.set && w.Start+p.first.n < w.End {
		w.End = w.Start + p.first.n
	}
	if p.last.set && w.End-p.last.n > w.Start {
		w.Start = w.End - p.last.n
	}
	if total >= 0 && w.Start > total {
		w.Start, w.End = total, total
	}
	return w
}

// NewPageInfo returns the exact PageInfo of window w over total items, with
// n items actually in the window.
func NewPageInfo(w Window, n, total int) *PageInfo {
	pi := &PageInfo{
		HasPreviousPage: w.Start > 0 && total > 0,
		HasNextPage:     w.Start+n < total,
	}
	if n > 0 {
		s, e := EncodeCursor(w.Start), EncodeCursor(w.Start+n-1)
		pi.StartCursor, pi.EndCursor = &s, &e
	}
	return pi
}

// newVersionConnection pages an in-memory, ordered list of versions.
func newVersionConnection(all []*ImageVersion, p PageArgs) *ImageVersionConnection {
	w := p.Window(len(all))
	return &ImageVersionConnection{Nodes: all[w.Start:w.End], TotalCount: len(all), window: w}
}
