package graph

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/internal/codes"
)

// representationCheck checks every representation an _entities field is
// given before gqlgen's federation code sees them. That code fails a
// representation that is not an object, or names no entity type of this
// subgraph, or lacks every key, with an untyped error (an internal error to
// clients, and a log line), and a representation that is not an object
// fails the whole field. Here each bad representation becomes a
// BAD_USER_INPUT error at its own index (path ["_entities", i]), and its
// place in the list is null; its neighbours resolve as if it were not
// there.
//
// How: the field's representations become a variable of the operation's
// own, whose bad entries are replaced by a placeholder that names no
// entity (an empty key, which resolves to null without an upstream call).
// The operation is copied on the way to that field, never changed in
// place: the document is shared by every request that sends it.
type representationCheck struct {
	// keys are the fields of each entity type's @key directives, one
	// entry per @key (this schema's keys are single fields).
	keys map[string][]string
	// types are the entity types, sorted, for error messages.
	types []string
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
	graphql.RootFieldInterceptor
} = (*representationCheck)(nil)

// newRepresentationCheck reads the entity types and their keys off schema.
func newRepresentationCheck(schema *ast.Schema) *representationCheck {
	c := &representationCheck{keys: map[string][]string{}}
	for name, def := range schema.Types {
		for _, d := range def.Directives.ForNames("key") {
			if arg := d.Arguments.ForName("fields"); arg != nil && arg.Value != nil {
				c.keys[name] = append(c.keys[name], strings.Fields(arg.Value.Raw)...)
			}
		}
		if len(c.keys[name]) > 0 {
			c.types = append(c.types, name)
		}
	}
	slices.Sort(c.types)
	return c
}

func (*representationCheck) ExtensionName() string { return "RepresentationCheck" }

func (*representationCheck) Validate(graphql.ExecutableSchema) error { return nil }

// representationsVariable is the name of the variable that holds the
// checked representations of the nth _entities field: a name no client can
// declare (GraphQL names have no dot).
func representationsVariable(n int) string { return "representations." + strconv.Itoa(n) }

const representationStats = "RepresentationCheck"

// representationProblem is one bad representation: a request's mistake,
// reported at the representation's index.
type representationProblem struct {
	index   int
	message string
}

func (p representationProblem) Error() string   { return p.message }
func (representationProblem) ErrorCode() string { return codes.BadUserInput }
func (p representationProblem) ErrorExtensions() map[string]any {
	return map[string]any{"index": p.index}
}

// MutateOperationContext checks the representations of each _entities
// field of the operation's root selection and, when one is bad, gives the
// operation a copy of that field that reads the checked list.
func (c *representationCheck) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil || oc.Operation.Operation != ast.Query {
		return nil
	}
	var fields []*ast.Field
	rootFieldsNamed(oc.Doc, oc.Operation.SelectionSet, "_entities", map[string]bool{}, &fields)
	if len(fields) == 0 {
		return nil
	}
	replaced := map[*ast.Field]*ast.Field{}
	problems := map[*ast.Field][]representationProblem{}
	var vars map[string]any
	for _, f := range fields {
		if _, done := replaced[f]; done {
			continue
		}
		reps, err := argument(f, "representations", oc.Variables)
		if err != nil {
			return &gqlerror.Error{Message: err.Error(), Extensions: map[string]any{"code": codes.BadUserInput}}
		}
		checked, found := c.check(graphql.CoerceList(reps))
		if len(found) == 0 {
			continue
		}
		if vars == nil {
			vars = make(map[string]any, len(oc.Variables)+1)
			for k, v := range oc.Variables {
				vars[k] = v
			}
		}
		name := representationsVariable(len(replaced))
		vars[name] = checked
		nf := *f
		nf.Arguments = ast.ArgumentList{{
			Name:     "representations",
			Value:    &ast.Value{Kind: ast.Variable, Raw: name, Position: f.Position},
			Position: f.Position,
		}}
		replaced[f] = &nf
		problems[&nf] = found
	}
	if len(replaced) == 0 {
		return nil
	}
	op := *oc.Operation
	op.SelectionSet = replaceFields(oc.Doc, op.SelectionSet, replaced)
	oc.Operation = &op
	oc.Variables = vars
	oc.Stats.SetExtension(representationStats, problems)
	return nil
}

// InterceptRootField reports the bad representations of an _entities field
// at their indexes.
func (c *representationCheck) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	rf := graphql.GetRootFieldContext(ctx)
	if rf == nil || rf.Field.Name != "_entities" {
		return next(ctx)
	}
	problems, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(representationStats).(map[*ast.Field][]representationProblem)
	if found := problems[rf.Field.Field]; len(found) > 0 {
		fieldCtx := graphql.WithPathContext(ctx, graphql.NewPathWithField(rf.Field.Alias))
		for _, p := range found {
			graphql.AddError(graphql.WithPathContext(fieldCtx, graphql.NewPathWithIndex(p.index)), p)
		}
	}
	return next(ctx)
}

// check returns list with each bad representation replaced by one that
// names nothing, and what was wrong with each.
func (c *representationCheck) check(list []any) ([]any, []representationProblem) {
	var found []representationProblem
	var out []any
	for i, rep := range list {
		msg := c.problem(rep)
		if msg == "" {
			continue
		}
		if out == nil {
			out = slices.Clone(list)
		}
		found = append(found, representationProblem{index: i, message: fmt.Sprintf("representation %d %s", i, msg)})
		out[i] = c.placeholder()
	}
	return out, found
}

// problem says what is wrong with one representation, or "".
func (c *representationCheck) problem(rep any) string {
	m, ok := rep.(map[string]any)
	if !ok {
		return fmt.Sprintf("is %s, not an object with __typename and a key", jsonKind(rep))
	}
	v, present := m["__typename"]
	typename, ok := v.(string)
	switch {
	case !present:
		return fmt.Sprintf("has no __typename: it must name an entity type of this subgraph (%s)", strings.Join(c.types, ", "))
	case !ok:
		return fmt.Sprintf("has a __typename that is %s, not a string", jsonKind(v))
	}
	keys, ok := c.keys[typename]
	if !ok {
		return fmt.Sprintf("names %q, which is not an entity type of this subgraph (%s)", clipped(typename), strings.Join(c.types, ", "))
	}
	hasKey := false
	for _, k := range keys {
		kv, ok := m[k]
		if !ok || kv == nil {
			continue
		}
		if !scalarKey(kv) {
			return fmt.Sprintf("of %s has a %q that is %s, not an ID", typename, k, jsonKind(kv))
		}
		hasKey = true
	}
	if !hasKey {
		return fmt.Sprintf("of %s has none of its keys: it needs %s", typename, quotedList(keys))
	}
	return ""
}

// placeholder is a representation that resolves to null without an
// upstream call: an entity type with an empty key, which names nothing.
func (c *representationCheck) placeholder() map[string]any {
	t := c.types[0]
	return map[string]any{"__typename": t, c.keys[t][0]: ""}
}

// scalarKey reports whether v can be an ID: a string or a number (as a
// literal or a JSON variable gives it).
func scalarKey(v any) bool {
	switch v.(type) {
	case string, int, int64, float64, interface{ Int64() (int64, error) }:
		return true
	}
	return false
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return "a number"
}

func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, " or ")
}

// clipped shortens a client's string to what an error message may quote.
func clipped(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:61] + "..."
}

// argument is the value of f's argument name, variables applied. gqlparser
// panics on a literal it cannot convert (the operation limits refuse those
// before validation); a panic here is the client's error all the same.
func argument(f *ast.Field, name string, vars map[string]any) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the argument %q of %q cannot be read: %v", name, f.Name, p)
		}
	}()
	return f.ArgumentMap(vars)[name], nil
}

// rootFieldsNamed appends to out the fields named name of a root selection
// set, through inline fragments and fragment spreads (each fragment once).
func rootFieldsNamed(doc *ast.QueryDocument, set ast.SelectionSet, name string, seen map[string]bool, out *[]*ast.Field) {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Name == name {
				*out = append(*out, sel)
			}
		case *ast.InlineFragment:
			rootFieldsNamed(doc, sel.SelectionSet, name, seen, out)
		case *ast.FragmentSpread:
			if seen[sel.Name] {
				continue
			}
			seen[sel.Name] = true
			if def := doc.Fragments.ForName(sel.Name); def != nil {
				rootFieldsNamed(doc, def.SelectionSet, name, seen, out)
			}
		}
	}
}

// replaceFields returns set with the fields of replaced swapped for their
// replacements, copying every selection on the way to them and leaving the
// rest shared. A fragment spread on the way becomes an inline fragment of
// the same type condition and directives, holding the copied selection.
func replaceFields(doc *ast.QueryDocument, set ast.SelectionSet, replaced map[*ast.Field]*ast.Field) ast.SelectionSet {
	var out ast.SelectionSet
	put := func(i int, sel ast.Selection) {
		if out == nil {
			out = slices.Clone(set)
		}
		out[i] = sel
	}
	for i, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if nf := replaced[sel]; nf != nil {
				put(i, nf)
			}
		case *ast.InlineFragment:
			if sub := replaceFields(doc, sel.SelectionSet, replaced); sub != nil {
				c := *sel
				c.SelectionSet = sub
				put(i, &c)
			}
		case *ast.FragmentSpread:
			def := doc.Fragments.ForName(sel.Name)
			if def == nil {
				continue
			}
			if sub := replaceFields(doc, def.SelectionSet, replaced); sub != nil {
				put(i, &ast.InlineFragment{
					TypeCondition:    def.TypeCondition,
					Directives:       sel.Directives,
					SelectionSet:     sub,
					ObjectDefinition: def.Definition,
					Position:         sel.Position,
				})
			}
		}
	}
	return out
}
