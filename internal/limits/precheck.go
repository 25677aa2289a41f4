package limits

import (
	"fmt"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/internal/codes"
)

// repeatedField returns a request error when one selection set of doc
// selects one response name more than max times, counting the fields of its
// inline fragments and of the fragments it spreads (each once). It runs on
// the parsed document before validation, whose check that overlapping
// fields can merge compares every pair of fields with one response name:
// quadratic in the repeats, more than a second of CPU for a ten-thousand
// token document that repeats one field. doc is not validated yet, so
// unknown fragments are passed over and cycles are cut.
func repeatedField(doc *ast.QueryDocument, max int) *gqlerror.Error {
	fragments := map[string]*ast.FragmentDefinition{}
	for _, f := range doc.Fragments {
		if _, dup := fragments[f.Name]; !dup {
			fragments[f.Name] = f
		}
	}
	var sets []ast.SelectionSet
	var collect func(ast.SelectionSet)
	collect = func(set ast.SelectionSet) {
		if len(set) == 0 {
			return
		}
		sets = append(sets, set)
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				collect(sel.SelectionSet)
			case *ast.InlineFragment:
				collect(sel.SelectionSet)
			}
		}
	}
	for _, op := range doc.Operations {
		collect(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		collect(f.SelectionSet)
	}
	counts := map[string]int{}
	for _, set := range sets {
		clear(counts)
		visited := map[string]bool{}
		var name string
		var worst int
		var walk func(ast.SelectionSet)
		walk = func(set ast.SelectionSet) {
			for _, sel := range set {
				switch sel := sel.(type) {
				case *ast.Field:
					key := sel.Alias
					if key == "" {
						key = sel.Name
					}
					counts[key]++
					if counts[key] > worst {
						name, worst = key, counts[key]
					}
				case *ast.InlineFragment:
					walk(sel.SelectionSet)
				case *ast.FragmentSpread:
					if visited[sel.Name] {
						continue
					}
					visited[sel.Name] = true
					if def := fragments[sel.Name]; def != nil {
						walk(def.SelectionSet)
					}
				}
			}
		}
		walk(set)
		if worst > max {
			return &gqlerror.Error{
				Message: fmt.Sprintf("%q is selected %d times in one selection set, more than the %d allowed: select it once", name, worst, max),
				Extensions: map[string]any{
					"code":     codes.ValidationFailed,
					"limit":    max,
					"measured": worst,
				},
			}
		}
	}
	return nil
}
