package graph

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
)

// listCtx is an execution context for marshalList: an operation, a response
// to gather errors in, and a list field at path "list".
func listCtx() context.Context {
	rec := func(_ context.Context, p any) error { return fmt.Errorf("recovered: %v", p) }
	ctx := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, rec)
	ctx = graphql.WithOperationContext(ctx, &graphql.OperationContext{RecoverFunc: rec})
	return graphql.WithFieldContext(ctx, &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Name: "list", Alias: "list"}}})
}

func selection(names ...string) ast.SelectionSet {
	var sel ast.SelectionSet
	for _, n := range names {
		sel = append(sel, &ast.Field{Name: n, Alias: n})
	}
	return sel
}

// goroutineID is the calling goroutine's number, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	return string(bytes.Fields(buf)[1])
}

// TestMarshalListInline: with none of the concurrent fields selected, the
// elements are marshalled in order on the calling goroutine, each at its own
// path.
func TestMarshalListInline(t *testing.T) {
	ctx := listCtx()
	caller := goroutineID()
	var order []int
	ret := marshalList(ctx, selection("name"), []string{"T"}, []string{"group"}, 4, func(ctx context.Context, i int) graphql.Marshaler {
		assert.Equal(t, caller, goroutineID(), "element %d ran on another goroutine", i)
		assert.Equal(t, fmt.Sprintf("list[%d]", i), graphql.GetPath(ctx).String())
		order = append(order, i)
		return graphql.MarshalInt(i)
	})
	require.Len(t, ret, 4)
	assert.Equal(t, []int{0, 1, 2, 3}, order)
}

// TestMarshalListConcurrent: a selected concurrent field sends the list to
// one goroutine per element, as gqlgen does: every element runs at once.
func TestMarshalListConcurrent(t *testing.T) {
	ctx := listCtx()
	const n = 4
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	ret := marshalList(ctx, selection("name", "group"), []string{"T"}, []string{"group"}, n, func(ctx context.Context, i int) graphql.Marshaler {
		arrived.Done()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			t.Errorf("element %d waited for the others: not concurrent", i)
		}
		return graphql.MarshalInt(i)
	})
	require.Len(t, ret, n)
}

// TestMarshalListPanic: a panicking element is null with an error at its
// path; its neighbours stay.
func TestMarshalListPanic(t *testing.T) {
	ctx := listCtx()
	ret := marshalList(ctx, selection("name"), []string{"T"}, nil, 3, func(ctx context.Context, i int) graphql.Marshaler {
		if i == 1 {
			panic("boom")
		}
		return graphql.MarshalInt(i)
	})
	require.Len(t, ret, 3)
	assert.True(t, ret[1] == graphql.Null, "the panicking element is null")
	assert.True(t, ret[0] != graphql.Null && ret[2] != graphql.Null, "its neighbours stay")
	errs := graphql.GetErrors(ctx)
	require.Len(t, errs, 1)
	assert.Equal(t, "list[1]", errs[0].Path.String())
	assert.Contains(t, errs[0].Message, "boom")
}

// TestDeferredGroup: an object with no @defer'd field gets an empty group
// (no path, field set or map built); one with a deferred field gets
// gqlgen's own group, ready to collect it.
func TestDeferredGroup(t *testing.T) {
	ctx := listCtx()
	plain := []graphql.CollectedField{{Field: &ast.Field{Name: "a"}}, {Field: &ast.Field{Name: "b"}}}
	g := deferredGroup(ctx, plain)
	assert.Nil(t, g.Defers)
	assert.Nil(t, g.FieldSet)
	assert.Nil(t, g.Path)

	deferred := append(plain, graphql.CollectedField{Field: &ast.Field{Name: "c"}, Deferrables: []*graphql.Deferrable{{Label: "later"}}})
	g = deferredGroup(ctx, deferred)
	assert.NotNil(t, g.Defers)
	assert.NotNil(t, g.FieldSet)
	assert.Equal(t, "list", g.Path.String())
}

// TestObjectValueMatchesFieldSet: objectValue writes exactly what gqlgen's
// FieldSet writes for the same fields and values, repeated names included.
func TestObjectValueMatchesFieldSet(t *testing.T) {
	field := func(alias string) graphql.CollectedField {
		return graphql.CollectedField{Field: &ast.Field{Name: "f", Alias: alias}}
	}
	for _, tc := range []struct {
		fields []graphql.CollectedField
		values []graphql.Marshaler
	}{
		{nil, nil},
		{[]graphql.CollectedField{field("a")}, []graphql.Marshaler{graphql.MarshalString(`x"<y>\\`)}},
		{
			[]graphql.CollectedField{field("a"), field("__typename"), field("b_2"), field("a")},
			[]graphql.Marshaler{graphql.MarshalInt(1), graphql.MarshalString("T"), graphql.Null, graphql.MarshalInt(2)},
		},
		{
			[]graphql.CollectedField{field("list"), field("obj")},
			[]graphql.Marshaler{graphql.Array{graphql.MarshalInt(1), graphql.Null}, newObjectValue([]graphql.CollectedField{field("z")}, []graphql.Marshaler{graphql.MarshalBoolean(true)})},
		},
	} {
		fs := graphql.NewFieldSet(tc.fields)
		copy(fs.Values, tc.values)
		var want, got bytes.Buffer
		fs.MarshalGQL(&want)
		newObjectValue(tc.fields, tc.values).MarshalGQL(&got)
		assert.Equal(t, want.String(), got.String())
	}
}
