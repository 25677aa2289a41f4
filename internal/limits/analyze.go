package limits

import (
	"math"
	"strings"

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
func (s Selection) Has(path ...string) bool { return s.a.has(s.set, path) }

// analyzer walks one operation.
type analyzer struct {
	model *costModel
	doc   *ast.QueryDocument
	vars  map[string]any
	calls CallEstimator
	memo  map[memoKey]scaled
	// hasMemo holds what has found in a named fragment, by fragment and
	// path.
	hasMemo map[hasKey]bool
	// visits counts the selections the walk visited: its work.
	visits int
}

// hasKey identifies what has looks for in a named fragment: the path's
// names joined by NUL, which no name holds.
type hasKey struct{ fragment, path string }

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

// scaled is the summary of a selection set whose parent's @listSize gives
// its sized fields a size: fixed, plus perItem (cost and calls only) once
// for each of those items. The walk of a set does not depend on the size,
// only on whether there is one, so a named fragment spread under lists of
// many sizes is walked once.
type scaled struct {
	fixed, perItem summary
}

// at is the summary of s for lists of n items.
func (s scaled) at(n int) summary {
	out := s.fixed
	out.cost = finite(out.cost + float64(n)*s.perItem.cost)
	out.calls = finite(out.calls + float64(n)*s.perItem.calls)
	return out
}

// finite turns NaN (zero items of an infinite cost) into +Inf: what cannot
// be measured is too much, never less than a limit.
func finite(f float64) float64 {
	if math.IsNaN(f) {
		return math.Inf(1)
	}
	return f
}

// sizing is what a parent's @listSize says of its sized fields: they are
// lists of the size its slicing argument gives, when known.
type sizing struct {
	owner *listSize
	known bool
}

// memoKey identifies the walk of a named fragment: its summary depends on
// nothing else, so a fragment spread many times (or spread in fragments
// spread many times) is walked once per distinct key. The keys of one
// fragment are few (the schema's sized lists, the estimator's states), so
// the walk visits each selection of the document a bounded number of
// times: linear in the document, however it multiplies its fragments.
type memoKey struct {
	fragment string
	sized    sizing
	state    State
}

// analyze walks op once, fragments expanded and @skip/@include applied.
func analyze(model *costModel, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any, calls CallEstimator) Result {
	r, _ := walk(model, doc, op, vars, calls)
	return r
}

// walk is analyze, and the number of selections it visited.
func walk(model *costModel, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any, calls CallEstimator) (Result, int) {
	a := &analyzer{model: model, doc: doc, vars: vars, calls: calls}
	root := a.selectionSet(op.SelectionSet, sizing{}, 0, false).fixed
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
	return r, a.visits
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
			a.visits++
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

// has reports whether set, through inline fragments and fragment spreads,
// selects a field named path[0] whose selection has path[1:], fields that
// are skipped left out. What a named fragment has for a path is worked out
// once, so that an estimator asking of every field that spreads one
// fragment walks the fragment once, not once a field.
func (a *analyzer) has(set ast.SelectionSet, path []string) bool {
	if len(path) == 0 {
		return true
	}
	for _, sel := range set {
		a.visits++
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Name == path[0] && !a.skipped(sel.Directives) && a.has(sel.SelectionSet, path[1:]) {
				return true
			}
		case *ast.InlineFragment:
			if !a.skipped(sel.Directives) && a.has(sel.SelectionSet, path) {
				return true
			}
		case *ast.FragmentSpread:
			if a.skipped(sel.Directives) {
				continue
			}
			key := hasKey{fragment: sel.Name, path: strings.Join(path, "\x00")}
			found, ok := a.hasMemo[key]
			if !ok {
				if a.hasMemo == nil {
					a.hasMemo = map[hasKey]bool{}
				}
				a.hasMemo[key] = false // cuts a cycle (validation refuses one)
				if def := a.fragment(sel); def != nil {
					found = a.has(def.SelectionSet, path)
				}
				a.hasMemo[key] = found
			}
			if found {
				return true
			}
		}
	}
	return false
}

func (a *analyzer) fragment(s *ast.FragmentSpread) *ast.FragmentDefinition {
	if s.Definition != nil {
		return s.Definition
	}
	return a.doc.Fragments.ForName(s.Name)
}

// add adds o to s.
func (s *scaled) add(o scaled) {
	s.fixed.add(o.fixed)
	s.perItem.add(o.perItem)
}

// selectionSet walks one selection set of objects in state, whose fields
// named by sized are lists of the size sized.owner's slicing argument gives
// (perItem counts them once: the caller multiplies). introspection is set
// inside __schema and __type, which cost nothing and call nothing.
func (a *analyzer) selectionSet(set ast.SelectionSet, sized sizing, state State, introspection bool) scaled {
	var s scaled
	for _, sel := range set {
		a.visits++
		switch sel := sel.(type) {
		case *ast.Field:
			s.fixed.directives += float64(len(sel.Directives))
			if a.skipped(sel.Directives) {
				continue
			}
			s.add(a.field(sel, sized, state, introspection))
		case *ast.InlineFragment:
			s.fixed.directives += float64(len(sel.Directives))
			if a.skipped(sel.Directives) {
				continue
			}
			s.add(a.selectionSet(sel.SelectionSet, sized, state, introspection))
		case *ast.FragmentSpread:
			s.fixed.directives += float64(len(sel.Directives))
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
				fs.fixed.directives += float64(len(def.Directives))
				if a.memo == nil {
					a.memo = map[memoKey]scaled{}
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
// × its selection's. A sized field of a list whose size is known counts
// its instances in perItem, for the caller to multiply.
func (a *analyzer) field(f *ast.Field, sized sizing, state State, introspection bool) scaled {
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
		sub := a.selectionSet(f.SelectionSet, sizing{}, 0, introspection).fixed
		s.fields += sub.fields
		s.aliases += sub.aliases
		s.directives += sub.directives
		if !introspection {
			s.depth = 1
		}
		return scaled{fixed: s}
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
	perItem := false // a sized field: sized.owner's size is its instances
	if def.Type.Elem != nil {
		switch {
		case sized.owner != nil && sized.owner.sizedField[f.Name] && sized.known:
			perItem = true
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
		childSized = sizing{owner: ls, known: expected >= 0}
	}
	sub := a.selectionSet(f.SelectionSet, childSized, est.Child, false).at(max(expected, 0))

	s.depth = 1 + sub.depth
	s.fields += sub.fields
	s.aliases += sub.aliases
	s.directives += sub.directives
	one := a.model.typeCost(parent, def) + sub.cost // one instance
	argsCost := a.model.argumentsCost(parent, def, args)
	if perItem {
		s.cost, s.calls = argsCost, est.Calls
		return scaled{fixed: s, perItem: summary{cost: one, calls: sub.calls}}
	}
	n := float64(instances)
	s.cost = finite(n*one + argsCost)
	s.calls = finite(est.Calls + n*sub.calls)
	return scaled{fixed: s}
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
