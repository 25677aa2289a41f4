package limits

import (
	"math"

	"github.com/vektah/gqlparser/v2/ast"
)

// Result is what the walk of one operation measured.
type Result struct {
	// Depth is the deepest nesting of fields.
	Depth int
	// Fields, Aliases, Directives and RootFields are counts, fragments
	// expanded (floats, since fragments spread in fragments multiply them):
	// Fields counts every field the operation selects once each fragment
	// spread is replaced by its fragment's selection, @skip and @include
	// applied.
	Fields, Aliases, Directives, RootFields float64
	// Cost is the estimated cost.
	Cost float64
	// UpstreamCalls is the estimated number of upstream calls.
	UpstreamCalls float64
	// MaxCost is the bound the cost was held to (0: none).
	MaxCost int
}

// State is what the CallEstimator tells the fields of an object about the
// field that produced it (where its data came from). Its values are the
// estimator's own; the zero State is the root's.
type State uint8

// Field is one field of the operation, as the CallEstimator sees it.
type Field struct {
	// Parent is the name of the type the field is selected on, Name the
	// field's name.
	Parent, Name string
	// Args are the field's argument values, variables and defaults applied.
	Args map[string]any
	// Selection is the field's own selection.
	Selection Selection
}

// Estimate is what one field costs in upstream calls.
type Estimate struct {
	// Calls is the number of upstream calls one instance of the field makes
	// itself (for a list, for all of its elements together).
	Calls float64
	// Child is the State of the objects the field returns.
	Child State
	// Size, when positive, is the exact length of the list the field
	// returns (nodes(ids:) has one entry per id), in place of what
	// @listSize says.
	Size int
}

// CallEstimator tells the walk which fields call the upstream. The GraphQL
// layer implements it: only it knows its resolvers.
type CallEstimator interface {
	Estimate(f Field, parent State) Estimate
}

// Selection is the selection set of a field, for a CallEstimator that must
// know what a field's selection reads.
type Selection struct {
	a   *analyzer
	set ast.SelectionSet
}

// Has reports whether the selection reads the field at path (names of
// fields nested in one another), through fragments, with @skip and
// @include applied.
func (s Selection) Has(path ...string) bool {
	if len(path) == 0 {
		return true
	}
	found := false
	s.a.eachField(s.set, map[string]bool{}, func(f *ast.Field) bool {
		if f.Name == path[0] && (Selection{s.a, f.SelectionSet}).Has(path[1:]...) {
			found = true
			return false
		}
		return true
	})
	return found
}

// analyzer walks one operation.
type analyzer struct {
	model *costModel
	doc   *ast.QueryDocument
	vars  map[string]any
	calls CallEstimator
	memo  map[memoKey]summary
}

// summary is what the walk of one selection set found. depth is relative:
// the deepest nesting of fields below the set's parent.
type summary struct {
	depth                       int
	cost, calls                 float64
	fields, aliases, directives float64
}

func (s *summary) add(o summary) {
	s.depth = max(s.depth, o.depth)
	s.fields += o.fields
	s.cost += o.cost
	s.calls += o.calls
	s.aliases += o.aliases
	s.directives += o.directives
}

// sizing is what a parent's @listSize says of its sized fields.
type sizing struct {
	owner *listSize
	size  int
}

// memoKey identifies the walk of a named fragment: its summary depends on
// nothing else, so a fragment spread many times (or spread in fragments
// spread many times) is walked once per distinct key, and the walk stays
// polynomial however the document multiplies its fragments.
type memoKey struct {
	fragment string
	sized    sizing
	state    State
}

// analyze walks op once, fragments expanded and @skip/@include applied.
func analyze(model *costModel, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any, calls CallEstimator) Result {
	a := &analyzer{model: model, doc: doc, vars: vars, calls: calls}
	root := a.selectionSet(op.SelectionSet, sizing{}, 0, false)
	r := Result{
		Depth:         root.depth,
		Fields:        root.fields,
		Aliases:       root.aliases,
		Directives:    root.directives + float64(len(op.Directives)),
		RootFields:    a.rootFields(op.SelectionSet),
		Cost:          root.cost,
		UpstreamCalls: root.calls,
	}
	if op.Operation == ast.Mutation {
		r.Cost += 10 // as the specification and Apollo Router count a mutation
	}
	for _, v := range op.VariableDefinitions {
		r.Directives += float64(len(v.Directives))
	}
	return r
}

// rootFields counts the fields of the root selection, through fragments,
// each spread counting its fragment's fields again. A fragment's count is
// worked out once: fragments that spread the next one twice, thirty deep,
// would otherwise be walked 2^30 times.
func (a *analyzer) rootFields(set ast.SelectionSet) float64 {
	memo := map[string]float64{}
	var count func(ast.SelectionSet) float64
	count = func(set ast.SelectionSet) float64 {
		var n float64
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				if !a.skipped(sel.Directives) {
					n++
				}
			case *ast.InlineFragment:
				if !a.skipped(sel.Directives) {
					n += count(sel.SelectionSet)
				}
			case *ast.FragmentSpread:
				if a.skipped(sel.Directives) {
					continue
				}
				m, ok := memo[sel.Name]
				if !ok {
					memo[sel.Name] = 0 // cuts a cycle (validation refuses one)
					if def := a.fragment(sel); def != nil {
						m = count(def.SelectionSet)
					}
					memo[sel.Name] = m
				}
				n += m
			}
		}
		return n
	}
	return count(set)
}

// eachField calls fn for every field of set that is not skipped, through
// inline fragments and fragment spreads (each named fragment once: visited
// holds those expanded), until fn returns false.
func (a *analyzer) eachField(set ast.SelectionSet, visited map[string]bool, fn func(*ast.Field) bool) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if a.skipped(sel.Directives) {
				continue
			}
			if !fn(sel) {
				return false
			}
		case *ast.InlineFragment:
			if a.skipped(sel.Directives) {
				continue
			}
			if !a.eachField(sel.SelectionSet, visited, fn) {
				return false
			}
		case *ast.FragmentSpread:
			if a.skipped(sel.Directives) {
				continue
			}
			if visited[sel.Name] {
				continue
			}
			visited[sel.Name] = true
			if def := a.fragment(sel); def != nil && !a.eachField(def.SelectionSet, visited, fn) {
				return false
			}
		}
	}
	return true
}

func (a *analyzer) fragment(s *ast.FragmentSpread) *ast.FragmentDefinition {
	if s.Definition != nil {
		return s.Definition
	}
	return a.doc.Fragments.ForName(s.Name)
}

// selectionSet walks one selection set of objects in state, whose fields
// named by sized are lists of sized.size entries. introspection is set
// inside __schema and __type, which cost nothing and call nothing.
func (a *analyzer) selectionSet(set ast.SelectionSet, sized sizing, state State, introspection bool) summary {
	var s summary
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			s.directives += float64(len(sel.Directives))
			if a.skipped(sel.Directives) {
				continue
			}
			s.add(a.field(sel, sized, state, introspection))
		case *ast.InlineFragment:
			s.directives += float64(len(sel.Directives))
			if a.skipped(sel.Directives) {
				continue
			}
			s.add(a.selectionSet(sel.SelectionSet, sized, state, introspection))
		case *ast.FragmentSpread:
			s.directives += float64(len(sel.Directives))
			if a.skipped(sel.Directives) {
				continue
			}
			def := a.fragment(sel)
			if def == nil {
				continue
			}
			key := memoKey{fragment: sel.Name, sized: sized, state: state}
			if introspection {
				key.fragment = "\x00" + key.fragment
			}
			fs, ok := a.memo[key]
			if !ok {
				fs = a.selectionSet(def.SelectionSet, sized, state, introspection)
				fs.directives += float64(len(def.Directives))
				if a.memo == nil {
					a.memo = map[memoKey]summary{}
				}
				a.memo[key] = fs
			}
			s.add(fs)
		}
	}
	return s
}

// field walks one field: cost = instances × (its type's cost + its
// selection's) + its arguments' cost, as the IBM specification and Apollo
// Router's demand control compute it; upstream calls = its own + instances
// × its selection's.
func (a *analyzer) field(f *ast.Field, sized sizing, state State, introspection bool) summary {
	s := summary{fields: 1}
	if f.Alias != "" && f.Alias != f.Name {
		s.aliases = 1
	}
	if f.Name == "__schema" || f.Name == "__type" {
		introspection = true
	}
	if introspection || f.Definition == nil || f.ObjectDefinition == nil {
		// Introspection (bounded by gqlparser's own rule), __typename, or a
		// field validation did not resolve: free, but its aliases and
		// directives count.
		sub := a.selectionSet(f.SelectionSet, sizing{}, 0, introspection)
		s.fields += sub.fields
		s.aliases += sub.aliases
		s.directives += sub.directives
		if !introspection {
			s.depth = 1
		}
		return s
	}
	def, parent := f.Definition, f.ObjectDefinition.Name
	key := parent + "." + f.Name
	args := argumentMap(f, a.vars)

	var est Estimate
	if a.calls != nil {
		est = a.calls.Estimate(Field{Parent: parent, Name: f.Name, Args: args, Selection: Selection{a, f.SelectionSet}}, state)
	}

	ls := a.model.lists[key]
	expected := -1 // the size @listSize gives the field: none
	if ls != nil {
		expected = ls.expectedSize(args)
	}
	instances := 1
	if def.Type.Elem != nil {
		switch {
		case sized.owner != nil && sized.owner.sizedField[f.Name] && sized.size >= 0:
			instances = sized.size
		case est.Size > 0:
			instances = est.Size
		case expected >= 0:
			instances = expected
		default:
			instances = defaultListSize
		}
	}

	var childSized sizing
	if ls != nil && len(ls.sizedField) > 0 {
		childSized = sizing{owner: ls, size: expected}
	}
	sub := a.selectionSet(f.SelectionSet, childSized, est.Child, false)

	n := float64(instances)
	s.depth = 1 + sub.depth
	s.cost = n*(a.model.typeCost(parent, def)+sub.cost) + a.model.argumentsCost(parent, def, args)
	s.calls = est.Calls + n*sub.calls
	s.fields += sub.fields
	s.aliases += sub.aliases
	s.directives += sub.directives
	if math.IsNaN(s.cost) {
		s.cost = math.Inf(1)
	}
	return s
}

// defaultListSize is the length assumed of a list the schema says nothing
// about (Apollo Router's static estimate default).
const defaultListSize = 10

// skipped applies @skip and @include.
func (a *analyzer) skipped(dirs ast.DirectiveList) bool {
	for _, d := range dirs {
		if d.Name != "skip" && d.Name != "include" {
			continue
		}
		arg := d.Arguments.ForName("if")
		if arg == nil || arg.Value == nil {
			continue
		}
		v, err := arg.Value.Value(a.vars)
		b, ok := v.(bool)
		if err != nil || !ok {
			continue
		}
		if d.Name == "skip" && b || d.Name == "include" && !b {
			return true
		}
	}
	return false
}

// argumentMap is f.ArgumentMap(vars), which panics on a literal it cannot
// convert (a number out of range): Precheck refuses those before
// validation, and a document that slipped past it is measured as if the
// field had no arguments rather than bringing the request down.
func argumentMap(f *ast.Field, vars map[string]any) (args map[string]any) {
	defer func() {
		if recover() != nil {
			args = nil
		}
	}()
	return f.ArgumentMap(vars)
}
