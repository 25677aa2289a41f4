// Command gen generates the GraphQL executor: gqlgen's generate, as `go run
// github.com/99designs/gqlgen generate` does it, followed by four rewrites of
// its output (graph/generated.go), each for speed: docs/performance.md gives
// the benchmark that shows each one pays.
//
// gqlgen marshals every list of objects with graphql.MarshalSliceConcurrently,
// a goroutine per element, whatever the element's fields do. For an object
// whose selected fields are all plain reads, that goroutine buys nothing and
// costs a spawn, a stack grown by copying, and a scheduling hop: for the
// reference operation (20 groups with their versions) about half of the
// executor's wall time. The rewrite makes each list of objects call
// graph.marshalList instead, with the names of the element type's fields
// that gqlgen runs concurrently (resolvers and methods taking a context):
// marshalList marshals the elements in order, in the calling goroutine,
// unless the list's selection asks for one of those fields, and then hands
// the list to MarshalSliceConcurrently as before. Lists of interfaces and
// unions are left as they are.
//
// A second rewrite spares every object the group gqlgen starts for its
// @defer'd fields (its path as a fresh slice, a field set and a map: a
// sixth of the executor's allocations for the reference operation) when
// none of its collected fields is deferred: each object calls
// graph.deferredGroup instead of graphql.NewDeferredGroup.
//
// A third rewrite has every object return graph.newObjectValue instead of
// its *graphql.FieldSet: the same JSON, written without the map per object
// and the heap copy per field that FieldSet.MarshalGQL makes (about 800
// allocations for the reference operation).
//
// A fourth rewrite reads plain fields inline: a field bound to a struct
// field, without resolver, arguments or directives, whose type is a scalar
// or an enum, cannot fail, so what graphql.ResolveField does for it (a field
// context, a context value, closures, the value boxed twice, the field
// middleware) serves only field middleware. Its function gets a first
// branch that marshals the struct field directly when the resolver root
// says no extension intercepts fields (graph.inlinePlainFields); otherwise
// it goes through ResolveField as before.
//
// The rewrites are strict: if gqlgen's output no longer has the shape they
// expect, gen fails rather than leave the code half rewritten.
//
//	go run ./internal/gen   (from graph/, as go:generate does)
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
	"github.com/99designs/gqlgen/plugin"
	"github.com/vektah/gqlparser/v2/ast"
	"golang.org/x/tools/imports"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no gqlgen.yml here or above: %w", err)
		}
		return err
	}
	lists := &listCollector{}
	if err := api.Generate(cfg, api.AddPlugin(lists)); err != nil {
		return err
	}
	src, err := os.ReadFile(cfg.Exec.Filename)
	if err != nil {
		return err
	}
	out, err := rewriteLists(src, lists.lists, lists.plain)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Exec.Filename, err)
	}
	return os.WriteFile(cfg.Exec.Filename, out, 0o644)
}

// objectList is one generated marshal function of a list of objects.
type objectList struct {
	// marshalFunc is the generated function's name.
	marshalFunc string
	// implementors names the generated variable of the element type's
	// implementors, which CollectFields takes.
	implementors string
	// concurrent are the element type's fields gqlgen resolves
	// concurrently, sorted.
	concurrent []string
}

// listCollector is a gqlgen plugin that reads, from the data gqlgen renders
// the executor from, every list of objects and its element's concurrent
// fields, and every plain field.
type listCollector struct {
	lists []objectList
	// plain names the generated functions of the plain fields: fields of
	// an API object bound to a Go struct field, without resolver,
	// arguments or directives, whose type is a scalar or an enum.
	plain []string
}

var _ plugin.CodeGenerator = (*listCollector)(nil)

func (*listCollector) Name() string { return "lists" }

func (c *listCollector) GenerateCode(data *codegen.Data) error {
	objects := map[string]*codegen.Object{}
	for _, o := range data.Objects {
		objects[o.Name] = o
	}
	seen := map[string]bool{}
	for _, ref := range data.ReferencedTypes {
		if !ref.IsSlice() || ref.Definition == nil || ref.Definition.Kind != ast.Object || ref.GQL.Elem == nil {
			continue
		}
		obj, ok := objects[ref.Definition.Name]
		if !ok {
			continue
		}
		name := ref.MarshalFunc()
		if seen[name] {
			continue
		}
		seen[name] = true
		l := objectList{marshalFunc: name, implementors: lcFirst(obj.Name) + "Implementors"}
		for _, f := range obj.Fields {
			if f.IsConcurrent() {
				l.concurrent = append(l.concurrent, f.Name)
			}
		}
		sort.Strings(l.concurrent)
		c.lists = append(c.lists, l)
	}
	sort.Slice(c.lists, func(i, j int) bool { return c.lists[i].marshalFunc < c.lists[j].marshalFunc })
	for _, o := range data.Objects {
		if o.Root || strings.HasPrefix(o.Name, "__") {
			continue
		}
		for _, f := range o.Fields {
			ref := f.TypeReference
			if f.IsResolver || !f.IsVariable() || len(f.Args) > 0 || len(f.Directives) > 0 || f.HasHaser ||
				ref == nil || ref.IsSlice() || ref.Definition == nil ||
				(ref.Definition.Kind != ast.Scalar && ref.Definition.Kind != ast.Enum) {
				continue
			}
			c.plain = append(c.plain, "_"+o.Name+"_"+f.Name)
		}
	}
	sort.Strings(c.plain)
	return nil
}

// concurrentCall is how gqlgen's list template starts the call this rewrite
// replaces (no worker limit, panic handler on: gqlgen.yml's settings).
const concurrentCall = "graphql.MarshalSliceConcurrently(ctx, len(v), 0, false, func(ctx context.Context, i int) graphql.Marshaler {"

// rewriteLists replaces, in each list's marshal function of src, the
// concurrent call with marshalList, applies the other rewrites, and formats
// the result.
func rewriteLists(src []byte, lists []objectList, plain []string) ([]byte, error) {
	s := string(src)
	var err error
	for _, l := range lists {
		head := "func (ec *executionContext) " + l.marshalFunc + "("
		start := strings.Index(s, head)
		if start < 0 {
			return nil, fmt.Errorf("no function %s", l.marshalFunc)
		}
		end := strings.Index(s[start:], "\n}\n")
		if end < 0 {
			return nil, fmt.Errorf("function %s does not end", l.marshalFunc)
		}
		end += start
		body := s[start:end]
		if strings.Count(body, concurrentCall) != 1 {
			return nil, fmt.Errorf("%s: expected one %q; gqlgen's list template changed", l.marshalFunc, concurrentCall)
		}
		if !strings.Contains(s, "var "+l.implementors+" = ") {
			return nil, fmt.Errorf("no variable %s", l.implementors)
		}
		fields := "nil"
		if len(l.concurrent) > 0 {
			quoted := slices.Clone(l.concurrent)
			for i, f := range quoted {
				quoted[i] = strconv.Quote(f)
			}
			fields = "[]string{" + strings.Join(quoted, ", ") + "}"
		}
		call := fmt.Sprintf("marshalList(ctx, sel, %s, %s, len(v), func(ctx context.Context, i int) graphql.Marshaler {", l.implementors, fields)
		s = s[:start] + strings.Replace(body, concurrentCall, call, 1) + s[end:]
	}
	for _, r := range objectRewrites {
		if s, err = r.apply(s); err != nil {
			return nil, err
		}
	}
	if s, err = rewritePlainFields(s, plain); err != nil {
		return nil, err
	}
	// imports drops what the rewrites left unused and formats the code.
	out, err := imports.Process("generated.go", []byte(s), &imports.Options{Comments: true, TabIndent: true, TabWidth: 8, FormatOnly: false})
	if err != nil {
		return nil, fmt.Errorf("formatting the rewritten code: %w", err)
	}
	return out, nil
}

// objectRewrite replaces, in every object's marshal function, one run of
// gqlgen's object template (old) with new. anchor is a line every such
// function holds once, so that an object whose template no longer matches
// old fails the rewrite instead of being skipped.
type objectRewrite struct {
	anchor, old, new string
	// expected says where old should stand, for the error.
	expected string
}

// objectRewrites are the rewrites of every object:
//
//   - graph.deferredGroup starts the object's group of @defer'd fields,
//     building gqlgen's group only when one of its collected fields is
//     deferred;
//   - the object returns graph.newObjectValue over its collected fields and
//     values instead of its *graphql.FieldSet, whose MarshalGQL builds a map
//     per object and copies every field to the heap.
var objectRewrites = []objectRewrite{
	{
		anchor:   "graphql.NewDeferredGroup(ctx)",
		old:      "out := graphql.NewFieldSet(fields)\n\tdeferred := graphql.NewDeferredGroup(ctx)\n",
		new:      "out := graphql.NewFieldSet(fields)\n\tdeferred := deferredGroup(ctx, fields)\n",
		expected: "graphql.NewDeferredGroup(ctx) right after the object's field set",
	},
	{
		anchor:   "ec.ProcessDeferredGroup(deferred)",
		old:      "\t\tec.ProcessDeferredGroup(deferred)\n\t}\n\n\treturn out\n}\n",
		new:      "\t\tec.ProcessDeferredGroup(deferred)\n\t}\n\n\treturn newObjectValue(fields, out.Values)\n}\n",
		expected: "every object to end by returning its field set",
	},
}

func (r objectRewrite) apply(s string) (string, error) {
	n := strings.Count(s, r.anchor)
	if n == 0 || strings.Count(s, r.old) != n {
		return "", fmt.Errorf("expected %s (%d objects); gqlgen's object template changed", r.expected, n)
	}
	return strings.ReplaceAll(s, r.old, r.new), nil
}

// plainField matches gqlgen's function for a field bound to a struct
// field: the head of the function, the Go expression it reads and the
// marshal function it hands the value to.
var plainField = regexp.MustCompile(`(?m)^(func \(ec \*executionContext\) (_[A-Za-z0-9_]+)\(ctx context\.Context, field graphql\.CollectedField, obj [^)]+\) \(ret graphql\.Marshaler\) \{\n)` +
	`\treturn graphql\.ResolveField\(\n\t\tctx,\n\t\tec\.OperationContext,\n\t\tfield,\n` +
	`\t\tfunc\(ctx context\.Context, field graphql\.CollectedField\) \(\*graphql\.FieldContext, error\) \{\n\t\t\treturn ec\.fieldContext_[A-Za-z0-9_]+\(ctx, field\)\n\t\t\},\n` +
	`\t\tfunc\(ctx context\.Context\) \(any, error\) \{\n\t\t\treturn (obj\.[A-Za-z0-9_]+), nil\n\t\t\},\n` +
	`\t\tnil,\n` +
	`\t\tfunc\(ctx context\.Context, selections ast\.SelectionSet, v [^)]+\) graphql\.Marshaler \{\n\t\t\treturn (ec\.[^\s(]+)\(ctx, selections, v\)\n`)

// rewritePlainFields gives each plain field's function a first branch that,
// when the resolver root allows it (graph.inlinePlainFields), marshals the
// struct field directly instead of going through graphql.ResolveField.
func rewritePlainFields(s string, plain []string) (string, error) {
	want := map[string]bool{}
	for _, name := range plain {
		want[name] = true
	}
	done := map[string]bool{}
	s = plainField.ReplaceAllStringFunc(s, func(m string) string {
		sub := plainField.FindStringSubmatch(m)
		head, name, expr, marshal := sub[1], sub[2], sub[3], sub[4]
		if !want[name] {
			return m
		}
		done[name] = true
		return head + "\tif inlinePlainFields(ec.Resolvers) {\n\t\treturn " + marshal + "(ctx, field.Selections, " + expr + ")\n\t}\n" + m[len(head):]
	})
	for _, name := range plain {
		if !done[name] {
			return "", fmt.Errorf("plain field %s: its function does not have the shape expected; gqlgen's field template changed", name)
		}
	}
	return s, nil
}

func lcFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
