package limits

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/compshare/imagegraph/internal/codes"
)

// testSchema exercises every rule of the cost model: @cost on fields, types,
// scalars, arguments and input fields; @listSize with slicing arguments,
// sized fields and assumed sizes; a list without @listSize.
const testSchema = `
directive @cost(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | SCALAR
directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION

type Query {
  book(id: ID!): Book
  books(first: Int, last: Int): BookConnection @listSize(assumedSize: 5, slicingArguments: ["first", "last"], sizedFields: ["nodes", "edges"], requireOneSlicingArgument: false)
  authors: [Author] @listSize(assumedSize: 3)
  shelves: [Shelf]
  search(filter: Filter, limit: Int @cost(weight: 4)): [Book] @listSize(assumedSize: 2)
  expensive: Int @cost(weight: 7)
}
type Mutation { addBook(title: String): Book }
input Filter { title: String, tags: [String!] @cost(weight: 2), nested: Filter }
type BookConnection { nodes: [Book] edges: [BookEdge] total: Int }
type BookEdge { node: Book cursor: String }
type Book { id: ID title: String author: Author price: Money }
type Author @cost(weight: 3) { name: String books: [Book] @listSize(assumedSize: 4) }
type Shelf { name: String }
scalar Money @cost(weight: 2)
`

func mustSchema(t testing.TB, src string) *ast.Schema {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "test.graphqls", Input: src})
	require.NoError(t, err)
	return s
}

// measure validates query against schema and walks it.
func measure(t testing.TB, schema *ast.Schema, query string, vars map[string]any, calls CallEstimator) Result {
	t.Helper()
	doc, errs := gqlparser.LoadQueryWithRules(schema, query, rules.NewDefaultRules())
	require.Empty(t, errs, query)
	return analyze(newCostModel(schema), doc, doc.Operations[0], vars, calls)
}

// TestCostEstimate pins the estimate to values computed by hand from the
// specification's rules: a field costs instances × (its type's weight + its
// selection's cost) + its arguments' cost; an object weighs 1, a scalar 0,
// unless @cost says otherwise; a list's instances are its largest slicing
// argument, else the size its parent's sizedFields gives, else its
// assumedSize, else 10.
func TestCostEstimate(t *testing.T) {
	t.Parallel()
	schema := mustSchema(t, testSchema)
	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
		want  float64
	}{
		{"an object costs 1, a scalar 0", `{ book(id: 1) { title } }`, nil, 1},
		{"a scalar's @cost", `{ book(id: 1) { price } }`, nil, 1 + 2},
		{"a field's @cost", `{ expensive }`, nil, 7},
		{"a type's @cost", `{ book(id: 1) { author { name } } }`, nil, 1 + 3},
		// books: 1 + nodes: 10 × (book 1 + author 3) = 41
		{"a slicing argument sizes the sized fields", `{ books(first: 10) { total nodes { title author { name } } } }`, nil, 1 + 10*(1+3)},
		{"the largest slicing argument", `{ books(first: 10, last: 3) { nodes { id } } }`, nil, 1 + 10},
		{"a slicing argument from a variable", `query($n: Int) { books(first: $n) { edges { node { id } } } }`, map[string]any{"n": int64(4)}, 1 + 4*(1+1)},
		{"no slicing argument: the assumed size", `{ books { nodes { id } } }`, nil, 1 + 5},
		{"a list's assumed size", `{ authors { name books { title } } }`, nil, 3 * (3 + 4*1)},
		{"a list without @listSize: 10", `{ shelves { name } }`, nil, 10},
		// search: 2 × 1 + filter (1 + tags (2 + 2 + 2) + nested (1)) + limit 4
		{"arguments: input objects, weighted lists and scalars", `{ search(filter: {title: "x", tags: ["a", "b"], nested: {title: "y"}}, limit: 3) { id } }`, nil, 2 + 1 + 6 + 1 + 4},
		{"arguments from variables", `query($f: Filter) { search(filter: $f) { id } }`, map[string]any{"f": map[string]any{"tags": []any{"a"}}}, 2 + 1 + 2 + 2},
		{"a mutation costs 10 more", `mutation { addBook(title: "x") { id } }`, nil, 10 + 1},
		{"fragments spread twice count twice", `{ ...Q } fragment Q on Query { book(id: 1) { ...B ...B } } fragment B on Book { author { name } }`, nil, 1 + 3 + 3},
		{"inline fragments", `{ book(id: 1) { ... on Book { author { name } } } }`, nil, 1 + 3},
		{"@skip and @include apply", `query($s: Boolean!) { book(id: 1) @skip(if: $s) { title } expensive @include(if: $s) }`, map[string]any{"s": true}, 7},
		{"@skip and @include apply, the other way", `query($s: Boolean!) { book(id: 1) @skip(if: $s) { title } expensive @include(if: $s) }`, map[string]any{"s": false}, 1},
		{"a skipped fragment costs nothing", `{ ...Q @skip(if: true) expensive } fragment Q on Query { book(id: 1) { id } }`, nil, 7},
		{"introspection and __typename cost nothing", `{ __typename __schema { types { name fields { name } } } }`, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := measure(t, schema, tc.query, tc.vars, nil)
			assert.Equal(t, tc.want, got.Cost)
		})
	}
}

// TestShapeCounts pins depth, aliases, root fields and directives.
func TestShapeCounts(t *testing.T) {
	t.Parallel()
	schema := mustSchema(t, testSchema)
	for _, tc := range []struct {
		name                            string
		query                           string
		depth                           int
		rootFields, aliases, directives float64
	}{
		{"depth counts fields", `{ books { edges { node { author { books { title } } } } } }`, 6, 1, 0, 0},
		{"depth through fragments", `{ books { ...C } } fragment C on BookConnection { nodes { author { name } } }`, 4, 1, 0, 0},
		{"introspection does not deepen", `{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }`, 0, 1, 0, 0},
		{"aliases", `{ a: book(id: 1) { id } b: book(id: 2) { t: title } }`, 2, 2, 3, 0},
		{"aliases through a fragment spread twice", `{ book(id: 1) { ...A ...A } } fragment A on Book { x: title }`, 2, 1, 2, 0},
		{"root fields through fragments", `{ ...R book(id: 1) { id } } fragment R on Query { expensive authors { name } }`, 2, 3, 0, 0},
		{"skipped root fields do not count", `{ expensive @skip(if: true) book(id: 1) { id } }`, 2, 1, 0, 1},
		{"directives, also skipped ones", `{ book(id: 1) @include(if: true) { id @skip(if: false) } ...F @include(if: true) } fragment F on Query { expensive }`, 2, 2, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := measure(t, schema, tc.query, nil, nil)
			assert.Equal(t, tc.depth, got.Depth, "depth")
			assert.Equal(t, tc.rootFields, got.RootFields, "root fields")
			assert.Equal(t, tc.aliases, got.Aliases, "aliases")
			assert.Equal(t, tc.directives, got.Directives, "directives")
		})
	}
}

// TestFragmentBombIsCheap: fragments spread twice in fragments spread twice,
// forty deep, name 2^40 aliased fields. The walk counts them exactly
// without expanding them (each fragment is walked once).
func TestFragmentBombIsCheap(t *testing.T) {
	t.Parallel()
	schema := mustSchema(t, testSchema)
	var b strings.Builder
	b.WriteString("{ book(id: 1) { ...F0 } }\n")
	const n = 40
	for i := range n {
		fmt.Fprintf(&b, "fragment F%d on Book { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Book { t: title author { name } }\n", n)
	got := measure(t, schema, b.String(), nil, nil)
	assert.Equal(t, math.Exp2(n), got.Aliases)
	assert.Equal(t, 1+3*math.Exp2(n), got.Cost)
	assert.Equal(t, 3, got.Depth)
	err := DefaultLimits.Check(&got)
	require.NotNil(t, err)
	assert.Equal(t, codes.MaxAliases, err.Extensions["code"])
}

// countingEstimator: book makes one call and gives its author state 1, in
// which author makes one call per instance.
type countingEstimator struct{}

func (countingEstimator) Estimate(f Field, parent State) Estimate {
	switch f.Parent + "." + f.Name {
	case "Query.book":
		return Estimate{Calls: 1, Child: 1}
	case "Book.author":
		if parent == 1 && f.Selection.Has("books", "title") {
			return Estimate{Calls: 1}
		}
	case "Query.search":
		if ids, _ := f.Args["limit"].(int64); ids > 0 {
			return Estimate{Calls: float64(ids), Child: 1, Size: int(ids)}
		}
	}
	return Estimate{Child: parent}
}

// TestUpstreamCallsEstimate: the estimator's calls multiply down the tree
// like costs, its states reach the children, its Size replaces @listSize,
// and Selection.Has sees through fragments and directives.
func TestUpstreamCallsEstimate(t *testing.T) {
	t.Parallel()
	schema := mustSchema(t, testSchema)
	for _, tc := range []struct {
		name  string
		query string
		calls float64
		cost  float64
	}{
		{"one call", `{ book(id: 1) { id } }`, 1, 1},
		{"a child's call when its selection reads it", `{ book(id: 1) { author { books { title } } } }`, 2, 1 + 3 + 4},
		{"not when it does not", `{ book(id: 1) { author { name } } }`, 1, 1 + 3},
		{"Has sees through fragments", `{ book(id: 1) { author { ...A } } } fragment A on Author { ... on Author { books { title } } }`, 2, 1 + 3 + 4},
		{"Has applies @skip", `{ book(id: 1) { author { books { title @skip(if: true) } } } }`, 1, 1 + 3 + 4},
		{"states do not leak to siblings", `{ authors { books { author { books { title } } } } }`, 0, 3 * (3 + 4*(1+3+4))},
		// search: 6 calls, 6 books, each author call 1: 6 + 6
		{"Size replaces @listSize", `{ search(limit: 6) { author { books { title } } } }`, 12, 6*(1+3+4) + 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := measure(t, schema, tc.query, nil, countingEstimator{})
			assert.Equal(t, tc.calls, got.UpstreamCalls, "calls")
			assert.Equal(t, tc.cost, got.Cost, "cost")
		})
	}
}

// TestRefusals: each limit refuses with its code, the limit and the
// measured value, and the first limit exceeded is the one reported.
func TestRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		res     Result
		code    string
		setting string
	}{
		{Result{Depth: 13}, codes.MaxDepth, "MAX_DEPTH"},
		{Result{Aliases: 31}, codes.MaxAliases, "MAX_ALIASES"},
		{Result{RootFields: 21}, codes.MaxRootFields, "MAX_ROOT_FIELDS"},
		{Result{Directives: 51}, codes.MaxDirectives, "MAX_DIRECTIVES"},
		{Result{Cost: 50001}, codes.EstimatedCost, "MAX_COST"},
		{Result{Cost: math.Inf(1)}, codes.EstimatedCost, "MAX_COST"},
		{Result{UpstreamCalls: 51}, codes.EstimatedCost, "MAX_UPSTREAM_CALLS"},
		{Result{Depth: 13, Cost: 1e9}, codes.MaxDepth, "MAX_DEPTH"},
	} {
		err := DefaultLimits.Check(&tc.res)
		require.NotNil(t, err, tc.code)
		assert.Equal(t, tc.code, err.Extensions["code"])
		assert.Equal(t, tc.setting, err.Extensions["setting"])
		assert.NotNil(t, err.Extensions["limit"])
		assert.NotNil(t, err.Extensions["measured"])
	}
	assert.Nil(t, DefaultLimits.Check(&Result{Depth: 12, Aliases: 30, RootFields: 20, Directives: 50, Cost: 50000, UpstreamCalls: 50}))
	assert.Nil(t, Limits{}.Check(&Result{Depth: 1000, Cost: math.Inf(1)}), "zero limits are no limits")
}

// TestRepeatedField: a selection set that selects one response name more
// than the bound is refused before validation, through inline fragments
// and spreads; distinct names and the bound itself pass.
func TestRepeatedField(t *testing.T) {
	t.Parallel()
	parse := func(q string) *ast.QueryDocument {
		doc, err := gqlparser.LoadQueryWithRules(mustSchema(t, testSchema), q, rules.NewDefaultRules())
		if err != nil {
			// Not all of these validate (that is the point); parse only.
			var perr error
			doc, perr = parserOnly(q)
			require.NoError(t, perr)
		}
		return doc
	}
	rep := func(s string, n int) string { return strings.Repeat(s+" ", n) }
	for _, tc := range []struct {
		name  string
		query string
		ok    bool
	}{
		{"at the bound", `{ book(id: 1) { ` + rep("title", 100) + `} }`, true},
		{"past it", `{ book(id: 1) { ` + rep("title", 101) + `} }`, false},
		{"aliases repeated", `{ book(id: 1) { ` + rep("t: id", 101) + `} }`, false},
		{"distinct aliases", `{ book(id: 1) { ` + func() string {
			var b strings.Builder
			for i := range 300 {
				fmt.Fprintf(&b, "a%d: title ", i)
			}
			return b.String()
		}() + `} }`, true},
		{"through inline fragments", `{ book(id: 1) { ` + rep("... on Book { title }", 101) + `} }`, false},
		{"through distinct fragments", `{ book(id: 1) { ` + func() string {
			var b strings.Builder
			for i := range 101 {
				fmt.Fprintf(&b, "...F%d ", i)
			}
			b.WriteString("} }\n")
			for i := range 101 {
				fmt.Fprintf(&b, "fragment F%d on Book { title }\n", i)
			}
			return b.String()
		}(), false},
		{"one fragment spread many times counts once", `{ book(id: 1) { ` + rep("...F", 200) + `} } fragment F on Book { title }`, true},
		{"cycles and unknown fragments are cut", `{ book(id: 1) { ...A ...Nope } } fragment A on Book { ...A title }`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := repeatedField(parse(tc.query), 100)
			if tc.ok {
				assert.Nil(t, err)
			} else {
				require.NotNil(t, err)
				assert.Equal(t, "GRAPHQL_VALIDATION_FAILED", err.Extensions["code"])
			}
		})
	}
}

func parserOnly(q string) (*ast.QueryDocument, error) {
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// fragmentBomb is a document of about a kilobyte whose operation, every
// fragment expanded, selects 2^levels root fields: each fragment spreads
// the next one twice. It is the fuzzer's reproduction of the exponential
// walk.
func fragmentBomb(levels int) string {
	var b strings.Builder
	b.WriteString("query { ...F0 } ")
	for i := range levels {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d } ", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Query { expensive }", levels)
	return b.String()
}

// TestRootFieldsOfAFragmentBomb: the root fields of a fragment bomb are
// counted exactly, each fragment once (the walk used to expand every path:
// 2^60 of them here, which no test could wait for).
func TestRootFieldsOfAFragmentBomb(t *testing.T) {
	t.Parallel()
	got := measure(t, mustSchema(t, testSchema), fragmentBomb(60), nil, nil)
	assert.Equal(t, math.Exp2(60), got.RootFields)
	err := DefaultLimits.Check(&got)
	require.NotNil(t, err)
	assert.Equal(t, codes.MaxRootFields, err.Extensions["code"])
}

// TestExpandedFields: the fields of an operation with its fragments
// expanded, fragments counted each time they are spread, nested and
// introspection fields included, skipped ones not; the refusal names the
// setting, the limit and the count, after the limits of the operation's
// shape and before its cost.
func TestExpandedFields(t *testing.T) {
	t.Parallel()
	schema := mustSchema(t, testSchema)
	for _, tc := range []struct {
		name  string
		query string
		want  float64
	}{
		{"plain fields", `{ book(id: 1) { id title } }`, 3},
		{"a fragment spread twice counts twice", `{ book(id: 1) { ...A ...A } } fragment A on Book { id author { name } }`, 1 + 2*3},
		{"inline fragments", `{ ... on Query { book(id: 1) { ... { id } } } }`, 2},
		{"skipped fields do not count", `{ book(id: 1) { id title @skip(if: true) } }`, 2},
		{"introspection and __typename count", `{ __typename __schema { types { name } } }`, 4},
		{"a bomb", fragmentBomb(30), math.Exp2(30)},
		{"a bomb past float64", fragmentBomb(1100), math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, measure(t, schema, tc.query, nil, nil).Fields)
		})
	}
	l := Limits{MaxExpandedFields: 100, MaxCost: 1}
	err := l.Check(&Result{Fields: 101, Cost: 2})
	require.NotNil(t, err)
	assert.Equal(t, codes.MaxExpandedFields, err.Extensions["code"])
	assert.Equal(t, "MAX_EXPANDED_FIELDS", err.Extensions["setting"])
	assert.Equal(t, 100, err.Extensions["limit"])
	assert.Equal(t, int64(101), err.Extensions["measured"])
	l.MaxDirectives = 1
	assert.Equal(t, codes.MaxDirectives, l.Check(&Result{Fields: 101, Directives: 2}).Extensions["code"], "the shape's limits first")
	assert.Nil(t, Limits{}.Check(&Result{Fields: math.Inf(1)}), "no bound, no refusal")
}

// TestNumbersOutOfRange: a number Go cannot hold, anywhere in a document,
// is a BAD_USER_INPUT request error that names it and its place; numbers
// that fit pass.
func TestNumbersOutOfRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, query string
		bad         string
	}{
		{"a float past float64", `{ _entities(representations: [{a: 1e309}]) { __typename } }`, "1e309"},
		{"an int past 64 bits", `{ _entities(representations: [{a: 18446744073709551616}]) { __typename } }`, "18446744073709551616"},
		{"a negative int past 64 bits", `{ f(a: -9223372036854775809) }`, "-9223372036854775809"},
		{"in a list in an object", `{ f(a: {b: [1, 2, {c: 1e400}]}) }`, "1e400"},
		{"in a directive", `{ f @d(a: 1e309) }`, "1e309"},
		{"in a variable's default", `query($v: X = 1e309) { f }`, "1e309"},
		{"in a fragment", `{ ...A } fragment A on Query { f(a: 99999999999999999999) }`, "99999999999999999999"},
		{"in a nested field", `{ a { b { c(x: 1e999) } } }`, "1e999"},
		{"in an operation's directive", `query @d(a: 1e309) { f }`, "1e309"},
		{"fits", `{ f(a: 9223372036854775807, b: -9223372036854775808, c: 1.7976931348623157e308, d: 1e-400) }`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc, err := parserOnly(tc.query)
			require.NoError(t, err)
			gerr := numberOutOfRange(doc)
			if tc.bad == "" {
				assert.Nil(t, gerr)
				return
			}
			require.NotNil(t, gerr)
			assert.Equal(t, "BAD_USER_INPUT", gerr.Extensions["code"])
			assert.Contains(t, gerr.Message, tc.bad)
			require.Len(t, gerr.Locations, 1)
		})
	}
}
