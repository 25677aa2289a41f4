package limits

import (
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// FuzzAnalyze runs arbitrary documents through what the extension does to
// a document: Precheck on the parsed document, then, when it validates,
// the walk and the checks, with the variables given. None of it may panic;
// and whatever the document's fragments multiply, the walk measures each
// fragment once, so a seed such as a forty-level fragment bomb finishes at
// once (a hang fails the fuzzer). The seeds are issue 16's reproductions.
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
		for _, op := range doc.Operations {
			res := analyze(model, doc, op, map[string]any{"n": int64(3)}, countingEstimator{})
			_ = DefaultLimits.Check(&res)
		}
	})
}
