package model_test

import (
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/graph/model"
)

// FuzzGlobalID decodes arbitrary strings as global IDs. It proves that
// ParseGlobalID never panics and fails only with ErrBadID (which the node
// resolvers turn into BAD_USER_INPUT); that a global ID it accepts is the
// one GlobalID writes for what it decoded to (one object, one ID: no
// second spelling of the same ID, such as other padding bits in the last
// base64 character, or a line break, which Go's base64 decoder skips);
// that GlobalID of a known type and any non-empty id decodes back to both;
// and that decoding a long input allocates at most a small multiple of its
// length.
func FuzzGlobalID(f *testing.F) {
	for _, seed := range []struct{ s, typ, id string }{
		{model.GlobalID(model.TypeImageGroup, "group-1"), model.TypeImageGroup, "group-1"},
		{model.GlobalID(model.TypeImageVersion, "uimage-abc:def"), model.TypeImageVersion, "uimage-abc:def"},
		{"SW1hZ2VHcm91cDp4", model.TypeImageGroup, "x"},
		{"SW1hZ2VHcm91cDp5", model.TypeImageVersion, "\x00\xff"},
		{"", model.TypeImageGroup, "中文"},
		{"SW1hZ2VHcm91cDo", model.TypeImageGroup, ":"},
		{"SW1hZ2VHcm91cDp4==", model.TypeImageVersion, " "},
		{"SW1hZ2VH\ncm91cDp4", model.TypeImageGroup, "a\nb"},
		{"U29tZXRoaW5nOng", "", ""},
		{"!!!!", model.TypeImageGroup, strings.Repeat("x", 300)},
		{strings.Repeat("QUFB", 1<<10) + "A", model.TypeImageVersion, "id"},
	} {
		f.Add(seed.s, seed.typ, seed.id)
	}
	f.Fuzz(func(t *testing.T, s, typ, id string) {
		gotTyp, gotID, err := model.ParseGlobalID(s)
		if err != nil {
			require.ErrorIs(t, err, model.ErrBadID)
			assert.Empty(t, gotTyp)
			assert.Empty(t, gotID)
		} else {
			assert.Contains(t, []string{model.TypeImageGroup, model.TypeImageVersion}, gotTyp)
			assert.NotEmpty(t, gotID)
			assert.Equal(t, s, model.GlobalID(gotTyp, gotID), "an accepted ID is the one its object has")
		}
		if len(s) >= 1<<12 {
			n := allocated(func() { _, _, _ = model.ParseGlobalID(s) })
			assert.LessOrEqual(t, n, uint64(4*len(s)+4<<10), "decoding %d bytes allocated %d", len(s), n)
		}

		// Generated values: any non-empty id of either type comes back.
		if typ != model.TypeImageGroup {
			typ = model.TypeImageVersion
		}
		if id == "" {
			return
		}
		g := model.GlobalID(typ, id)
		gotTyp, gotID, err = model.ParseGlobalID(g)
		require.NoError(t, err, "GlobalID(%q, %q) = %q", typ, id, g)
		assert.Equal(t, typ, gotTyp)
		assert.Equal(t, id, gotID)
		assert.True(t, utf8.ValidString(g) && !strings.ContainsAny(g, "+/=\r\n"), "a global ID is URL-safe base64 without padding: %q", g)
	})
}

// allocated is the bytes the heap grew by while f ran (the fuzz worker runs
// one input at a time, so nothing else allocates meanwhile).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
