package model_test

import (
	"context"
	"encoding/base64"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/internal/codes"
)

// FuzzCursor feeds arbitrary `after` and `before` cursors, with `first`,
// `last` and a list length, to ParsePageArgs and the window it computes.
// It proves that a cursor that does not decode is refused with an
// *InputError, which the error presenter shows as BAD_USER_INPUT and whose
// message stays within a small multiple of the cursor's length; that a
// cursor it accepts is the one EncodeCursor writes for its position (no
// second spelling of a position); that EncodeCursor's cursors decode back
// to their position; and that every window is a real slice of the list:
// 0 <= Start <= End, no larger than first or last, inside the list when its
// length is known, and after `after` and before `before` (no overflow, for
// cursors up to the largest position a GraphQL Int can count).
func FuzzCursor(f *testing.F) {
	cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, seed := range []struct {
		after, before      string
		first, last, total int
	}{
		{model.EncodeCursor(0), model.EncodeCursor(10), 3, -1, 40},
		{model.EncodeCursor(19), "", 20, -1, -1},
		{"", model.EncodeCursor(5), -1, 2, 3},
		{"cG9zOjF", "cG9z\nOjE", 1, 1, 7},
		{cursor("pos:01"), cursor("pos:-1"), 0, 0, 0},
		{cursor("pos:+1"), cursor("pos: 1"), 501, -1, 1},
		{cursor("pos:9223372036854775807"), "", 20, -1, -1},
		{cursor("pos:9223372036854775800"), "", 20, -1, -1},
		{cursor("pos:2147483647"), cursor("pos:2147483648"), 2147483647, 2147483647, 2147483647},
		{cursor("pos:99999999999999999999"), "eA", -1, -1, 5},
		{"!!", "\xff\xfe", 5, 5, 5},
		{strings.Repeat("\x00", 4096), "", -1, -1, -1},
	} {
		f.Add(seed.after, seed.before, seed.first, seed.last, seed.total)
	}
	present := graph.ErrorPresenter(slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, after, before string, first, last, total int) {
		// Absent arguments: an empty cursor and a negative count.
		ptr := func(s string) *string {
			if s == "" {
				return nil
			}
			return &s
		}
		count := func(n int) *int {
			if n < 0 {
				return nil
			}
			n = min(n, math.MaxInt32) // a GraphQL Int
			return &n
		}
		a, b, fst, lst := ptr(after), ptr(before), count(first), count(last)
		for _, c := range []*string{a, b} {
			if c == nil {
				continue
			}
			pos, ok := position(t, *c, present)
			if ok {
				assert.Equal(t, *c, model.EncodeCursor(pos), "an accepted cursor is the one its position has")
			}
		}
		args, err := model.ParsePageArgs(fst, a, lst, b, math.MaxInt32)
		if err != nil {
			var input *model.InputError
			require.ErrorAs(t, err, &input)
			return
		}
		for _, n := range []int{-1, 0, max(total, 0) % (1 << 40)} {
			w := args.Window(n)
			require.True(t, 0 <= w.Start && w.Start <= w.End, "window %+v of %d items", w, n)
			if n >= 0 {
				assert.LessOrEqual(t, w.End, n, "window %+v of %d items", w, n)
			}
			if fst != nil {
				assert.LessOrEqual(t, w.Size(), *fst, "window %+v, first %d", w, *fst)
			}
			if lst != nil {
				assert.LessOrEqual(t, w.Size(), *lst, "window %+v, last %d", w, *lst)
			}
			if a != nil && w.Size() > 0 {
				p, _ := position(t, *a, present)
				assert.Greater(t, w.Start, p, "window %+v after %d", w, p)
			}
			if b != nil && w.Size() > 0 {
				p, _ := position(t, *b, present)
				assert.LessOrEqual(t, w.End, p, "window %+v before %d", w, p)
			}
		}

		// Generated values: a position's cursor decodes back to it.
		pos := max(first, 0) % (math.MaxInt32 + 1)
		got, ok := position(t, model.EncodeCursor(pos), present)
		require.True(t, ok)
		assert.Equal(t, pos, got)
	})
}

// position decodes cursor c as ParsePageArgs does, through its `after`
// (the empty window `first: 0` after c starts at c's position plus one). A
// cursor it refuses must come back as BAD_USER_INPUT, with a message about
// the cursor's size; decoding a long cursor allocates at most a small
// multiple of its length.
func position(t *testing.T, c string, present graphql.ErrorPresenterFunc) (int, bool) {
	t.Helper()
	zero := 0
	args, err := model.ParsePageArgs(&zero, &c, nil, nil, 1)
	if err != nil {
		var input *model.InputError
		require.ErrorAs(t, err, &input)
		gerr := present(context.Background(), err)
		assert.Equal(t, codes.BadUserInput, gerr.Extensions["code"])
		assert.LessOrEqual(t, len(gerr.Message), 4*len(c)+64, "the message is about the cursor's size")
		return 0, false
	}
	if len(c) >= 1<<12 {
		n := allocated(func() { _, _ = model.ParsePageArgs(&zero, &c, nil, nil, 1) })
		assert.LessOrEqual(t, n, uint64(16*len(c)+4<<10), "decoding %d bytes allocated %d", len(c), n)
	}
	return args.Window(-1).Start - 1, true
}
