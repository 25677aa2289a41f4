package limits

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/internal/codes"
)

// numberOutOfRange returns a BAD_USER_INPUT request error for the first
// number written in doc that Go cannot hold: an Int beyond 64 bits, or a
// Float beyond float64 (1e309). Validation checks numbers only against the
// types it knows (an Int argument must fit 32 bits); a custom scalar such
// as federation's _Any takes any literal, and gqlparser's ArgumentMap
// panics on a number it cannot convert. Every value of the document is
// checked: arguments of fields and directives, list and object values,
// variables' defaults, in operations and fragments alike (each once).
func numberOutOfRange(doc *ast.QueryDocument) *gqlerror.Error {
	var bad *ast.Value
	var value func(v *ast.Value) bool
	value = func(v *ast.Value) bool {
		if v == nil {
			return true
		}
		switch v.Kind {
		case ast.IntValue:
			if _, err := strconv.ParseInt(v.Raw, 10, 64); err != nil {
				bad = v
				return false
			}
		case ast.FloatValue:
			if f, err := strconv.ParseFloat(v.Raw, 64); err != nil || math.IsInf(f, 0) {
				bad = v
				return false
			}
		case ast.ListValue, ast.ObjectValue:
			for _, c := range v.Children {
				if !value(c.Value) {
					return false
				}
			}
		}
		return true
	}
	directives := func(dirs ast.DirectiveList) bool {
		for _, d := range dirs {
			for _, a := range d.Arguments {
				if !value(a.Value) {
					return false
				}
			}
		}
		return true
	}
	var set func(ast.SelectionSet) bool
	set = func(s ast.SelectionSet) bool {
		for _, sel := range s {
			switch sel := sel.(type) {
			case *ast.Field:
				for _, a := range sel.Arguments {
					if !value(a.Value) {
						return false
					}
				}
				if !directives(sel.Directives) || !set(sel.SelectionSet) {
					return false
				}
			case *ast.InlineFragment:
				if !directives(sel.Directives) || !set(sel.SelectionSet) {
					return false
				}
			case *ast.FragmentSpread:
				if !directives(sel.Directives) {
					return false
				}
			}
		}
		return true
	}
	ok := true
	for _, op := range doc.Operations {
		for _, v := range op.VariableDefinitions {
			ok = ok && value(v.DefaultValue) && directives(v.Directives)
		}
		ok = ok && directives(op.Directives) && set(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		ok = ok && directives(f.Directives) && set(f.SelectionSet)
	}
	if ok {
		return nil
	}
	err := &gqlerror.Error{
		Message:    fmt.Sprintf("the number %s is out of range: an Int must fit in 64 bits and a Float must be finite", clip(bad.Raw)),
		Extensions: map[string]any{"code": codes.BadUserInput},
	}
	if bad.Position != nil {
		err.Locations = []gqlerror.Location{{Line: bad.Position.Line, Column: bad.Position.Column}}
	}
	return err
}

// clip shortens a number a client wrote to what an error message may quote.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:37] + "..."
}

// variablesOutOfRange returns a BAD_USER_INPUT request error for the first
// variable that holds a number no GraphQL type can take: one past the
// largest float64 (1e309), anywhere in the variable's value, or, in a
// variable the operation declares Int (or a list of Int), one past 32 bits
// (GraphQL's Int). gqlparser's coercion would call the first 0 and the
// second the largest int64, and say it cannot use that as an Int.
func variablesOutOfRange(doc *ast.QueryDocument, opName string, vars map[string]any) *gqlerror.Error {
	if len(vars) == 0 {
		return nil
	}
	ints := map[string]bool{}
	if op := operationNamed(doc, opName); op != nil {
		for _, v := range op.VariableDefinitions {
			if v.Type != nil && v.Type.Name() == "Int" {
				ints[v.Variable] = true
			}
		}
	}
	for name, v := range vars {
		if bad, ok := badNumber(v, ints[name]); !ok {
			what := "a number must be a finite float64"
			if ints[name] {
				what = "an Int must fit in 32 bits"
			}
			return &gqlerror.Error{
				Message:    fmt.Sprintf("variable $%s: the number %s is out of range: %s", clip(name), clip(bad), what),
				Extensions: map[string]any{"code": codes.BadUserInput},
			}
		}
	}
	return nil
}

// badNumber returns the first number in v (a variable's value, as
// encoding/json decodes it with UseNumber) that is out of range, and false.
// With int32s an integer must also fit in 32 bits (a number that is not an
// integer is coercion's to refuse, as a type error).
func badNumber(v any, int32s bool) (string, bool) {
	switch v := v.(type) {
	case json.Number:
		if int32s {
			_, err := strconv.ParseInt(string(v), 10, 32)
			if errors.Is(err, strconv.ErrRange) {
				return string(v), false
			}
		}
		if f, err := strconv.ParseFloat(string(v), 64); err != nil || math.IsInf(f, 0) {
			return string(v), false
		}
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) || int32s && v == math.Trunc(v) && (v < math.MinInt32 || v > math.MaxInt32) {
			return strconv.FormatFloat(v, 'g', -1, 64), false
		}
	case []any:
		for _, e := range v {
			if bad, ok := badNumber(e, int32s); !ok {
				return bad, false
			}
		}
	case map[string]any:
		for _, e := range v {
			if bad, ok := badNumber(e, false); !ok {
				return bad, false
			}
		}
	}
	return "", true
}

// operationNamed is the operation of doc that a request names, or its only
// one; nil when there is no such operation (validation says so).
func operationNamed(doc *ast.QueryDocument, name string) *ast.OperationDefinition {
	if doc == nil {
		return nil
	}
	if name == "" {
		if len(doc.Operations) == 1 {
			return doc.Operations[0]
		}
		return nil
	}
	return doc.Operations.ForName(name)
}
