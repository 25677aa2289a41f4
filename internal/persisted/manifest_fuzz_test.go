package persisted

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// maxErrorLen bounds the message of a manifest the parser refuses: it names
// the operation and says what is wrong, but never quotes a large part of
// the file back (a megabyte id, a version that is an object, a number of a
// thousand digits, a document of a thousand unknown fields).
const maxErrorLen = 1 << 10

// FuzzParseManifest parses arbitrary bytes as a manifest (Apollo's list or
// Relay's map). It proves that ParseManifest never panics; that what it
// refuses it refuses with a plain error (no gqlparser error whose locations
// would point into a file the client never saw), prefixed "persisted
// operations: ", valid UTF-8, and at most maxErrorLen bytes however large
// the input; and that what it accepts keeps its promises: every operation
// is found by its id, its body is listed, the SHA-256 of its body (what an
// APQ client sends, and "sha256:" and the hash as a documentId) finds a
// body with that hash, unless an operation has that very id, and every
// operation has a type.
func FuzzParseManifest(f *testing.F) {
	apollo := func(ops ...string) string {
		return `{"format":"apollo-persisted-query-manifest","version":1,"operations":[` + strings.Join(ops, ",") + `]}`
	}
	long := strings.Repeat("x", 4<<10)
	for _, seed := range []string{
		apollo(`{"id":"`+hashOf(getImages)+`","name":"GetImages","type":"query","body":"`+getImages+`"}`,
			`{"id":"get-name","body":"query GetName { name }"}`, `{"id":"r","body":"mutation R($n: String!) { rename(name: $n) }"}`),
		`{"a1":"query GetImages { images(first: 2) { id url } }","b2":"{ name }","c3":"{ name }"}`,
		`{"a":"query One { name }","a":"query Two { name }"}`,
		`{"` + hashOf(getName) + `":"{ name }","x":"` + getName + `"}`,
		`{"sha256:` + hashOf(getName) + `":"{ name }"}`,
		apollo(`{"id":"` + long + `","name":"` + long + `","body":"{ nope }"}`),
		`{"format":"` + long + `","version":1,"operations":[]}`,
		`{"format":"apollo-persisted-query-manifest","version":{"` + long + `":1},"operations":[]}`,
		apollo(`{"id":` + strings.Repeat("9", 4<<10) + `,"body":"{ name }"}`),
		`{"r1":"{ ` + strings.Repeat("a ", 64) + `}"}`,
		`{"r1":"{ ` + long + ` }"}`,
		`{"r1":"query Broken { name "}`, `{"r1":"fragment F on Query { name }"}`, `{"a":{"body":"{ name }"}}`,
		`{}`, `[]`, `null`, `{"a":`, `{"a":"{ name }"} {}`, "{\"\xff\":\"{ name }\"}", "{\"a\":\"{ n\xffame }\"}",
		apollo(`{"name":"X","body":"query X { name }"}`), apollo(`{"id":"a","name":"X"}`), apollo(),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data, testSchema)
		if err != nil {
			assert.Nil(t, m)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "persisted operations: "), msg)
			assert.LessOrEqual(t, len(msg), maxErrorLen, "an error of %d bytes for %d bytes of manifest: %.200s…", len(msg), len(data), msg)
			assert.True(t, utf8.ValidString(msg), "%q", msg)
			var one *gqlerror.Error
			var list gqlerror.List
			assert.False(t, errors.As(err, &one) || errors.As(err, &list), "a plain error: %#v", err)
			return
		}
		require.NotNil(t, m)
		require.Equal(t, len(m.ops), m.Len())
		require.Positive(t, m.Len())
		for _, op := range m.ops {
			got, ok := m.Lookup(op.ID)
			require.True(t, ok, "id %q", op.ID)
			assert.Equal(t, op, got, "ids are unique")
			assert.True(t, m.Contains(op.Body))
			assert.Contains(t, []string{"query", "mutation", "subscription"}, op.Type, "%+v", op)

			h := hashOf(op.Body)
			got, ok = m.lookupHash(h)
			require.True(t, ok, "the hash of %q", op.Body)
			assert.Equal(t, op.Body, got.Body, "an APQ hash finds a body with that hash")
			body, ok := m.Resolve("sha256:" + strings.ToUpper(h))
			require.True(t, ok)
			if byID, named := m.byID["sha256:"+strings.ToUpper(h)]; named {
				assert.Equal(t, m.ops[byID].Body, body, "an operation with that very id")
			} else {
				assert.Equal(t, hashOf(body), h, "a documentId sha256:<hash> finds a body with that hash")
			}
		}
		// What an APQ hash finds has that hash, or that id.
		for h := range m.byHash {
			op, ok := m.lookupHash(h)
			require.True(t, ok)
			assert.Equal(t, h, hashOf(op.Body))
		}
		var v any
		assert.NoError(t, json.Unmarshal(data, &v), "an accepted manifest is JSON")
	})
}
