package documents

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func parse(t testing.TB, q string) *ast.QueryDocument {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	require.NoError(t, err)
	return doc
}

// TestCanonical: whitespace, commas and comments between tokens give the
// same key; a change of any token gives another.
func TestCanonical(t *testing.T) {
	t.Parallel()
	same := [][]string{
		{`{ a b }`, "{a b}", "{\n  a,\n  b # two fields\n}\n", "# lead\n{a,,,b}"},
		{`{ f(s: "x y") }`, `{f(s:"x y")}`, `{ f( s : "x y" ) }`},
		{`{ f(s: "A") }`, `{ f(s: "\u0041") }`},
	}
	for _, group := range same {
		want, _, ok := Canonical(group[0], 0)
		require.True(t, ok)
		for _, q := range group[1:] {
			got, _, ok := Canonical(q, 0)
			require.True(t, ok, q)
			assert.Equal(t, want, got, "%q and %q", group[0], q)
		}
	}
	different := []string{
		`{ a b }`, `{ b a }`, `{ a }`, `{ ab }`, `{ a: b }`,
		`{ f(n: 1) }`, `{ f(n: 1.0) }`, `{ f(n: "1") }`, `{ f(n: ONE) }`,
		`{ f(s: "x y") }`, `{ f(s: "x  y") }`, `{ f(s: "x") y }`, `{ f(s: "x\"") y }`,
		`query A { a }`, `query B { a }`, `{ a @skip(if: true) }`,
	}
	seen := map[Key]string{}
	for _, q := range different {
		k, _, ok := Canonical(q, 0)
		require.True(t, ok, q)
		if prev, dup := seen[k]; dup {
			t.Errorf("%q and %q share a key", prev, q)
		}
		seen[k] = q
	}
}

// TestCanonicalRefuses: a document that does not lex, or is longer than
// the token limit, has no canonical form.
func TestCanonicalRefuses(t *testing.T) {
	t.Parallel()
	_, _, ok := Canonical(`{ f(s: "unterminated) }`, 0)
	assert.False(t, ok)
	_, n, ok := Canonical(`{ a b c }`, 4)
	assert.False(t, ok)
	assert.Equal(t, 5, n)
	_, n, ok = Canonical(`{ a b c } # comments are not tokens`, 5)
	assert.True(t, ok)
	assert.Equal(t, 5, n)
}

// TestCacheSharesWhitespaceVariants: a document cached under one text is
// found under another that differs only in whitespace and comments, and a
// thousand such variants hold one document.
func TestCacheSharesWhitespaceVariants(t *testing.T) {
	t.Parallel()
	c := New(Options{MaxBytes: 1 << 20})
	ctx := context.Background()
	doc := parse(t, `{ a b }`)
	c.Add(ctx, `{ a b }`, doc)
	for i := range 1000 {
		q := fmt.Sprintf("{ a # variant %d\n b }", i)
		got, ok := c.Get(ctx, q)
		require.True(t, ok)
		assert.Same(t, doc, got)
		c.Add(ctx, q, parse(t, q)) // a copy does not replace it
	}
	c.docs.CleanUp()
	assert.Equal(t, 1, c.Stats().Documents)
	_, ok := c.Get(ctx, `{ b a }`)
	assert.False(t, ok)
}

// TestCacheBoundInBytes: distinct large documents never hold more than the
// bound, and one heavier than a share of it is not kept at all.
func TestCacheBoundInBytes(t *testing.T) {
	t.Parallel()
	const bound = 1 << 20
	c := New(Options{MaxBytes: bound})
	ctx := context.Background()
	pad := strings.Repeat("x", 20_000)
	for i := range 500 {
		q := fmt.Sprintf("query Q%d { a } # %s", i, pad)
		c.Add(ctx, q, parse(t, q))
	}
	c.docs.CleanUp()
	st := c.Stats()
	assert.LessOrEqual(t, st.Bytes, uint64(bound))
	assert.Positive(t, st.Documents)

	big := "query Big { a } # " + strings.Repeat("y", bound/MaxShare)
	c.Add(ctx, big, parse(t, big))
	_, ok := c.Get(ctx, big)
	assert.False(t, ok, "a document heavier than a share of the bound is not cached")
}

// TestCacheFindsExactTextFirst: a text seen before is found by its hash,
// without the canonical form: an alias to the canonical key.
func TestCacheFindsExactTextFirst(t *testing.T) {
	t.Parallel()
	c := New(Options{MaxBytes: 1 << 20})
	ctx := context.Background()
	q := `{ a }`
	doc := parse(t, q)
	c.Add(ctx, q, doc)
	k, ok := c.aliases.GetIfPresent(exact(q))
	require.True(t, ok)
	want, _, _ := Canonical(q, 0)
	assert.Equal(t, want, k)
	got, ok := c.Get(ctx, q)
	require.True(t, ok)
	assert.Same(t, doc, got)
}

func TestNoBoundTakesTheDefault(t *testing.T) {
	t.Parallel()
	assert.Equal(t, uint64(DefaultMaxBytes)/MaxShare, New(Options{}).maxEntry)
}

// BenchmarkGet compares a hit by exact text (the hash of the text, then two
// lookups) with one by canonical form (a pass of the lexer), for the
// README's reference operation and GraphiQL's introspection query.
func BenchmarkGet(b *testing.B) {
	for name, q := range map[string]string{"reference": referenceQuery, "introspection": introspectionQuery} {
		c := New(Options{MaxBytes: 16 << 20})
		ctx := context.Background()
		c.Add(ctx, q, parse(b, q))
		b.Run(name+"/exact", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := c.Get(ctx, q); !ok {
					b.Fatal("miss")
				}
			}
		})
		b.Run(name+"/canonical", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := Canonical(q, 0); !ok {
					b.Fatal("no form")
				}
			}
		})
	}
}

const referenceQuery = `{
  imageGroups(first: 20) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      groupId name favoritesCount status useTime
      versions { totalCount nodes { imageId name } }
      latestVersion { imageId name publishedAt }
    } }
  }
}`

const introspectionQuery = `query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } } fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } } fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue } fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }`
