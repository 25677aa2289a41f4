package persisted

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseManifestApollo(t *testing.T) {
	t.Parallel()
	m := testManifest(t)
	assert.Equal(t, 3, m.Len())

	op, ok := m.Lookup("rename")
	require.True(t, ok)
	assert.Equal(t, Operation{ID: "rename", Name: "Rename", Type: "mutation", Body: rename}, op)
}

func TestParseManifestApolloFillsNameAndType(t *testing.T) {
	t.Parallel()
	m, err := ParseManifest(apolloManifest(t, Operation{ID: "r", Body: rename}), testSchema)
	require.NoError(t, err)

	op, ok := m.Lookup("r")
	require.True(t, ok)
	assert.Equal(t, "Rename", op.Name)
	assert.Equal(t, "mutation", op.Type)
}

func TestParseManifestRelay(t *testing.T) {
	t.Parallel()
	data := `{
		"a1": "query GetImages { images(first: 2) { id url } }",
		"b2": "mutation Rename($name: String!) { rename(name: $name) }",
		"c3": "{ name }"
	}`
	m, err := ParseManifest([]byte(data), testSchema)
	require.NoError(t, err)
	assert.Equal(t, 3, m.Len())

	tests := []struct {
		id   string
		want Operation
	}{
		{id: "a1", want: Operation{ID: "a1", Name: "GetImages", Type: "query", Body: getImages}},
		{id: "b2", want: Operation{ID: "b2", Name: "Rename", Type: "mutation", Body: rename}},
		{id: "c3", want: Operation{ID: "c3", Name: "", Type: "query", Body: "{ name }"}},
	}
	for _, tt := range tests {
		got, ok := m.Lookup(tt.id)
		require.True(t, ok, tt.id)
		assert.Equal(t, tt.want, got)
	}
	assert.Equal(t, []string{"GetImages", "Rename"}, m.Names(), "the anonymous one has no name")
	assert.Nil(t, (*Manifest)(nil).Names())
}

func TestManifestLookup(t *testing.T) {
	t.Parallel()
	m := testManifest(t)

	tests := []struct {
		name   string
		id     string
		wantID string // "" for not found
	}{
		{name: "by id", id: "get-name", wantID: "get-name"},
		{name: "by id that is the hash", id: hashOf(getImages), wantID: hashOf(getImages)},
		{name: "by hash of a body", id: hashOf(getName), wantID: "get-name"},
		{name: "by upper-case hash", id: strings.ToUpper(hashOf(rename)), wantID: "rename"},
		{name: "unknown id", id: "nope"},
		{name: "hash of an unlisted body", id: hashOf(unlisted)},
		{name: "empty", id: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op, ok := m.Lookup(tt.id)
			assert.Equal(t, tt.wantID != "", ok)
			assert.Equal(t, tt.wantID, op.ID)
		})
	}
}

func TestManifestContains(t *testing.T) {
	t.Parallel()
	m := testManifest(t)
	assert.True(t, m.Contains(getName))
	assert.False(t, m.Contains(getName+" "), "the exact text only")
	assert.False(t, m.Contains(unlisted))
	assert.False(t, m.Contains(""))
}

func TestNilManifestListsNothing(t *testing.T) {
	t.Parallel()
	var m *Manifest
	_, ok := m.Lookup("x")
	assert.False(t, ok)
	assert.False(t, m.Contains(getName))
	assert.Zero(t, m.Len())
}

func TestParseManifestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want []string // each must be in the error
	}{
		{
			name: "field that does not exist",
			data: `{"format":"apollo-persisted-query-manifest","version":1,"operations":[
				{"id":"abc123","name":"GetImages","type":"query","body":"query GetImages { images { foo } }"}]}`,
			want: []string{`persisted operations: operation "abc123" (GetImages): Cannot query field "foo" on type "Image"`},
		},
		{
			name: "relay field that does not exist, named from the document",
			data: `{"r1":"query Broken { nope }"}`,
			want: []string{`persisted operations: operation "r1" (Broken): Cannot query field "nope" on type "Query"`},
		},
		{
			name: "parse error",
			data: `{"r1":"query Broken { name "}`,
			want: []string{`persisted operations: operation "r1": Expected Name, found <EOF>`},
		},
		{
			name: "no operation in the document",
			data: `{"r1":"fragment F on Query { name }"}`,
			want: []string{`operation "r1": the document has no operation`},
		},
		{
			name: "wrong format",
			data: `{"format":"something-else","version":1,"operations":[{"id":"a","body":"{ name }"}]}`,
			want: []string{`format "something-else" is not "apollo-persisted-query-manifest"`},
		},
		{
			name: "wrong version",
			data: `{"format":"apollo-persisted-query-manifest","version":2,"operations":[{"id":"a","body":"{ name }"}]}`,
			want: []string{"version 2 is not supported"},
		},
		{
			name: "no version",
			data: `{"format":"apollo-persisted-query-manifest","operations":[{"id":"a","body":"{ name }"}]}`,
			want: []string{"no version"},
		},
		{
			name: "duplicate apollo ids",
			data: `{"format":"apollo-persisted-query-manifest","version":1,"operations":[
				{"id":"a","name":"One","body":"query One { name }"},
				{"id":"a","name":"Two","body":"query Two { name }"}]}`,
			want: []string{`operation "a" (Two): the id is listed more than once`},
		},
		{
			name: "duplicate relay ids",
			data: `{"a":"query One { name }","a":"query Two { name }"}`,
			want: []string{`operation "a": the id is listed more than once`},
		},
		{
			name: "apollo op without id",
			data: `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"name":"X","body":"query X { name }"}]}`,
			want: []string{"operations[0] (X): the id is empty"},
		},
		{
			name: "apollo op without body",
			data: `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"a","name":"X"}]}`,
			want: []string{`operation "a" (X): the body is empty`},
		},
		{
			name: "relay value that is not a string",
			data: `{"a":{"body":"{ name }"}}`,
			want: []string{`operation "a": a Relay manifest maps ids to documents`},
		},
		{
			name: "empty apollo manifest",
			data: `{"format":"apollo-persisted-query-manifest","version":1,"operations":[]}`,
			want: []string{"no operations"},
		},
		{
			name: "empty relay manifest",
			data: `{}`,
			want: []string{"no operations"},
		},
		{name: "not JSON", data: `{"a":`, want: []string{"not JSON"}},
		{name: "array", data: `[{"id":"a","body":"{ name }"}]`, want: []string{"not a JSON object"}},
		{name: "null", data: `null`, want: []string{"not a JSON object"}},
		{name: "trailing data", data: `{"a":"{ name }"} {}`, want: []string{"more after its JSON object"}},
		{
			name: "apollo operations of the wrong shape",
			data: `{"format":"apollo-persisted-query-manifest","version":1,"operations":{"a":"{ name }"}}`,
			want: []string{"not an Apollo persisted query manifest"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseManifest([]byte(tt.data), testSchema)
			require.Error(t, err)
			assert.Nil(t, m)
			assert.True(t, strings.HasPrefix(err.Error(), "persisted operations: "), err.Error())
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestParseManifestNeedsASchema(t *testing.T) {
	t.Parallel()
	_, err := ParseManifest([]byte(`{"a":"{ name }"}`), nil)
	assert.ErrorContains(t, err, "no schema")
}

func TestLoadManifest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"a1":"query GetName { name }"}`), 0o600))
	m, err := LoadManifest(good, testSchema)
	require.NoError(t, err)
	assert.Equal(t, 1, m.Len())
	assert.True(t, m.Contains(getName))

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"abc123":"query GetImages { foo }"}`), 0o600))
	_, err = LoadManifest(bad, testSchema)
	assert.EqualError(t, err, `persisted operations: `+bad+`: operation "abc123" (GetImages): Cannot query field "foo" on type "Query"`)

	missing := filepath.Join(dir, "missing.json")
	_, err = LoadManifest(missing, testSchema)
	require.Error(t, err)
	assert.Contains(t, err.Error(), missing)
}
