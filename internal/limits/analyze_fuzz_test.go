package limits

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// FuzzAnalyze runs arbitrary documents through what the extension does to
// a document: Precheck on the parsed document, then, when it validates,
// the walk and the checks, with the variables given. None of it may panic,
// and the walk's work is linear in the document: it visits each selection
// of the document at most workPerSelection times, and asks the estimator
// about each field at most estimatesPerField times, however the document
// multiplies its fragments (spread twice in each of forty levels, spread
// under lists of a thousand different sizes, or in a thousand fields the
// estimator looks into). The seeds are issue 16's reproductions, and issue
// 20's documents whose walk was quadratic.
func FuzzAnalyze(f *testing.F) {
	for _, seed := range []string{
		fragmentBomb(40),
		`{ book(id: 1) { ...F0 } } fragment F0 on Book { ...F1 ...F1 } fragment F1 on Book { ...F2 ...F2 } fragment F2 on Book { t: title }`,
		`{ search(filter: {title: "x", nested: {tags: ["a"]}}, limit: 1e309) { title } }`,
		`{ book(id: 18446744073709551616) { title } }`,
		`query($n: Int = 99999999999999999999) { books(first: $n) { nodes { id } } }`,
		`{ books(first: 3) @skip(if: false) { edges { node { author { books { title } } } } } }`,
		`{ __schema { types { name fields { name } } } }`,
		`{ ... on Query { expensive } ...A } fragment A on Query { a: expensive }`,
		`mutation { addBook(title: "x") { id } }`,
		`{ a: books(first: 1) { ...C } b: books(first: 2) { ...C } c: books { ...C } } fragment C on BookConnection { nodes { title } total }`,
		`{ book(id: 1) { a: author { ...A } b: author { ...A ... on Author { books { title } } } } } fragment A on Author { name books { title } }`,
		sizedSpreads(300, 1000),
		spreadsTheEstimatorReads(500, 1000),
	} {
		f.Add(seed)
	}
	schema := mustSchema(f, testSchema)
	model := newCostModel(schema)
	r := rules.NewDefaultRules()
	f.Fuzz(func(t *testing.T, query string) {
		doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, DefaultTokens)
		if err != nil {
			return
		}
		if Precheck(doc, DefaultLimits) != nil {
			return
		}
		if errs := validator.ValidateWithRules(schema, doc, r); len(errs) > 0 {
			return
		}
		fields, selections := sizeOf(doc)
		for _, op := range doc.Operations {
			calls := &countingCalls{}
			res, visits := walk(model, doc, op, map[string]any{"n": int64(3)}, calls)
			_ = DefaultLimits.Check(&res)
			require.LessOrEqual(t, calls.n, estimatesPerField*fields,
				"the estimator was asked %d times about %d fields", calls.n, fields)
			require.LessOrEqual(t, visits, workPerSelection*selections,
				"the walk visited %d times the %d selections", visits, selections)
		}
	})
}

// The bounds of the walk's work on the test schema, with
// countingEstimator. A named fragment is walked once per memo key: per
// list whose @listSize sizes its fields (none, or books: 2), whether that
// size is known (2), the estimator's state (2) and whether it is inside
// introspection (2), so each field of the document is estimated at most
// 16 times. Each selection is visited once for that walk, once for the
// count of root fields, and by Selection.Has: countingEstimator asks
// whether an author reads books.title, which looks at the author's
// selection and its books' selections, once for each of the author's
// estimates, and at a named fragment once a path.
const (
	estimatesPerField = 2 * 2 * 2 * 2
	workPerSelection  = estimatesPerField*(1+2) + 1 + 2
)

// countingCalls is countingEstimator, counting what it is asked.
type countingCalls struct{ n int }

func (c *countingCalls) Estimate(f Field, parent State) Estimate {
	c.n++
	return countingEstimator{}.Estimate(f, parent)
}

// sizeOf counts the fields and the selections (fields, inline fragments,
// fragment spreads) of doc, its operations and its fragments.
func sizeOf(doc *ast.QueryDocument) (fields, selections int) {
	var count func(ast.SelectionSet)
	count = func(set ast.SelectionSet) {
		for _, sel := range set {
			selections++
			switch sel := sel.(type) {
			case *ast.Field:
				fields++
				count(sel.SelectionSet)
			case *ast.InlineFragment:
				count(sel.SelectionSet)
			}
		}
	}
	for _, op := range doc.Operations {
		count(op.SelectionSet)
	}
	for _, fr := range doc.Fragments {
		count(fr.SelectionSet)
	}
	return fields, selections
}

// sizedSpreads is a document of about twenty kilobytes that spreads one
// fragment of m fields under k lists of k different sizes: a walk that
// measures the fragment once per size visits k×m fields (300,000, about a
// tenth of a second of CPU for a document the server refuses anyway).
func sizedSpreads(k, m int) string {
	var b strings.Builder
	b.WriteString("{ ")
	for i := range k {
		fmt.Fprintf(&b, "b%d: books(first: %d) { ...F } ", i, i+1)
	}
	b.WriteString("} fragment F on BookConnection { ")
	for i := range m {
		fmt.Fprintf(&b, "t%d: total ", i)
	}
	b.WriteString("}")
	return b.String()
}

// spreadsTheEstimatorReads spreads one fragment of m fields in k authors,
// each of which countingEstimator asks whether it reads books.title: a
// Selection.Has that walks the fragment for each author visits k×m
// selections.
func spreadsTheEstimatorReads(k, m int) string {
	var b strings.Builder
	b.WriteString("{ book(id: 1) { ")
	for i := range k {
		fmt.Fprintf(&b, "a%d: author { ...A } ", i)
	}
	b.WriteString("} } fragment A on Author { ")
	for i := range m {
		fmt.Fprintf(&b, "x%d: name ", i)
	}
	b.WriteString("}")
	return b.String()
}
