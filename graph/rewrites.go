package graph

// This file holds what graph/internal/gen's rewrites of generated.go call:
// lists of plain reads marshalled in the calling goroutine (marshalList),
// @defer bookkeeping only for deferred fields (deferredGroup), objects
// written without gqlgen's per-object map (objectValue), and the switch for
// reading plain fields inline (inlinePlainFields).

import (
	"context"
	"io"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// marshalList marshals a list of n objects for the generated executor (see
// graph/internal/gen, which rewrites gqlgen's lists to call it). When the
// list's selection sel asks for none of the element type's concurrent
// fields, every element is a plain read: they are marshalled in order in
// this goroutine, each under its own field context and with its own panic
// recovery, exactly as graphql.MarshalSliceConcurrently does in a goroutine
// each. Otherwise the list goes to MarshalSliceConcurrently, so that
// elements that load resolve in parallel.
func marshalList(ctx context.Context, sel ast.SelectionSet, implementors, concurrent []string, n int,
	marshal func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	if n > 1 && len(concurrent) > 0 && selectsAny(graphql.GetOperationContext(ctx), sel, implementors, concurrent) {
		return graphql.MarshalSliceConcurrently(ctx, n, 0, false, marshal)
	}
	ret := make(graphql.Array, n)
	fcs := make([]graphql.FieldContext, n)
	idx := make([]int, n)
	for i := range n {
		idx[i] = i
		fcs[i].Index = &idx[i]
		ret[i] = marshalElement(graphql.WithFieldContext(ctx, &fcs[i]), i, marshal)
	}
	return ret
}

// marshalElement marshals element i, turning a panic into a null element
// and an error at its path, as MarshalSliceConcurrently does.
func marshalElement(ctx context.Context, i int, marshal func(ctx context.Context, i int) graphql.Marshaler) (ret graphql.Marshaler) {
	defer func() {
		if r := recover(); r != nil {
			graphql.AddError(ctx, graphql.Recover(ctx, r))
			ret = graphql.Null
		}
	}()
	return marshal(ctx, i)
}

// selectsAny reports whether sel, collected for an object of the given
// implementors (fragments and @skip/@include applied), holds one of fields.
func selectsAny(oc *graphql.OperationContext, sel ast.SelectionSet, implementors, fields []string) bool {
	for _, f := range graphql.CollectFields(oc, sel, implementors) {
		for _, name := range fields {
			if f.Name == name {
				return true
			}
		}
	}
	return false
}

// deferredGroup starts the group of an object's @defer'd fields for the
// generated executor (see graph/internal/gen): graphql.NewDeferredGroup(ctx)
// when one of the object's collected fields is deferred, and otherwise an
// empty group, which gqlgen only ever asks for its length. NewDeferredGroup
// would build the object's path, a field set and a map for every object of
// the response.
func deferredGroup(ctx context.Context, fields []graphql.CollectedField) graphql.DeferredGroup {
	for _, f := range fields {
		if f.IsDeferred() {
			return graphql.NewDeferredGroup(ctx)
		}
	}
	return graphql.DeferredGroup{Context: ctx}
}

// objectValue is an object of the response, written as JSON: the values of
// its collected fields under their response names (aliases), in order. The
// generated executor returns one per object (see graph/internal/gen) in
// place of gqlgen's *graphql.FieldSet, whose MarshalGQL writes the same JSON
// but builds a map per object and copies every field to the heap to do it.
type objectValue struct {
	fields []graphql.CollectedField
	values []graphql.Marshaler
}

func newObjectValue(fields []graphql.CollectedField, values []graphql.Marshaler) graphql.Marshaler {
	return &objectValue{fields: fields, values: values}
}

// MarshalGQL writes the object. Response names are GraphQL names
// ([_A-Za-z][_0-9A-Za-z]*), which JSON takes as they are; a name that
// appears twice is written once, its first time, as FieldSet does.
func (o *objectValue) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, "{")
	first := true
	for i := range o.fields {
		alias := o.fields[i].Alias
		if seenAlias(o.fields[:i], alias) {
			continue
		}
		if first {
			first = false
		} else {
			_, _ = io.WriteString(w, ",")
		}
		_, _ = io.WriteString(w, `"`)
		_, _ = io.WriteString(w, alias)
		_, _ = io.WriteString(w, `":`)
		o.values[i].MarshalGQL(w)
	}
	_, _ = io.WriteString(w, "}")
}

func seenAlias(fields []graphql.CollectedField, alias string) bool {
	for i := range fields {
		if fields[i].Alias == alias {
			return true
		}
	}
	return false
}

// inlinePlainFields reports whether the generated executor may read plain
// fields inline for the resolver root r: see Resolver.PlainFieldsInline.
func inlinePlainFields(r ResolverRoot) bool {
	p, ok := r.(interface{ InlinePlainFields() bool })
	return ok && p.InlinePlainFields()
}
