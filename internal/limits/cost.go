package limits

import (
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"
)

// costModel is what the schema's @cost and @listSize say, read once.
type costModel struct {
	schema *ast.Schema
	// weights: "Type.field" for fields, "Type" for types, "Type.field(arg)"
	// for arguments, "Input.field" for input fields.
	weights map[string]float64
	// lists: the @listSize of "Type.field".
	lists map[string]*listSize
}

// listSize is one @listSize.
type listSize struct {
	assumed    int // -1 when not given
	slicing    []string
	sizedField map[string]bool
}

// newCostModel reads the cost directives of schema.
func newCostModel(schema *ast.Schema) *costModel {
	m := &costModel{schema: schema, weights: map[string]float64{}, lists: map[string]*listSize{}}
	for name, def := range schema.Types {
		if w, ok := weight(def.Directives); ok {
			m.weights[name] = w
		}
		for _, f := range def.Fields {
			key := name + "." + f.Name
			if w, ok := weight(f.Directives); ok {
				m.weights[key] = w
			}
			if ls := readListSize(f.Directives); ls != nil {
				m.lists[key] = ls
			}
			for _, a := range f.Arguments {
				if w, ok := weight(a.Directives); ok {
					m.weights[key+"("+a.Name+")"] = w
				}
			}
		}
	}
	return m
}

// weight reads @cost(weight:).
func weight(dirs ast.DirectiveList) (float64, bool) {
	d := dirs.ForName("cost")
	if d == nil {
		return 0, false
	}
	a := d.Arguments.ForName("weight")
	if a == nil || a.Value == nil {
		return 0, false
	}
	w, err := strconv.ParseFloat(a.Value.Raw, 64)
	return w, err == nil
}

// readListSize reads @listSize.
func readListSize(dirs ast.DirectiveList) *listSize {
	d := dirs.ForName("listSize")
	if d == nil {
		return nil
	}
	ls := &listSize{assumed: -1, sizedField: map[string]bool{}}
	if a := d.Arguments.ForName("assumedSize"); a != nil && a.Value != nil {
		if n, err := strconv.Atoi(a.Value.Raw); err == nil {
			ls.assumed = n
		}
	}
	if a := d.Arguments.ForName("slicingArguments"); a != nil && a.Value != nil {
		for _, c := range a.Value.Children {
			ls.slicing = append(ls.slicing, c.Value.Raw)
		}
	}
	if a := d.Arguments.ForName("sizedFields"); a != nil && a.Value != nil {
		for _, c := range a.Value.Children {
			ls.sizedField[c.Value.Raw] = true
		}
	}
	return ls
}

// typeCost is the cost of one instance of field f of parent: its @cost, or
// its type's, or 1 for an object, interface or union and 0 for a scalar or
// enum.
func (m *costModel) typeCost(parent string, f *ast.FieldDefinition) float64 {
	if w, ok := m.weights[parent+"."+f.Name]; ok {
		return w
	}
	named := f.Type.Name()
	if w, ok := m.weights[named]; ok {
		return w
	}
	if def := m.schema.Types[named]; def != nil && def.IsCompositeType() {
		return 1
	}
	return 0
}

// expectedSize is the size @listSize gives field f of parent with args: the
// largest slicing argument given (or defaulted), else assumedSize; -1 when
// it says nothing.
func (ls *listSize) expectedSize(args map[string]any) int {
	size := -1
	for _, name := range ls.slicing {
		if n, ok := intValue(args[name]); ok && n > size {
			size = n
		}
	}
	if size < 0 {
		size = ls.assumed
	}
	return size
}

// argumentsCost is the cost of a field's arguments, as Apollo Router's
// demand control counts it: an input object costs its @cost (1 without
// one) plus its fields', a list the sum of its elements', a scalar its
// @cost (0 without one).
func (m *costModel) argumentsCost(parent string, def *ast.FieldDefinition, args map[string]any) float64 {
	var total float64
	for _, a := range def.Arguments {
		v, ok := args[a.Name]
		if !ok {
			continue
		}
		w, hasWeight := m.weights[parent+"."+def.Name+"("+a.Name+")"]
		total += m.valueCost(a.Type, v, w, hasWeight)
	}
	return total
}

func (m *costModel) valueCost(t *ast.Type, v any, w float64, hasWeight bool) float64 {
	switch v := v.(type) {
	case nil:
		return 0
	case []any:
		var total float64
		if hasWeight {
			total = w
		}
		elem := t
		if t.Elem != nil {
			elem = t.Elem
		}
		for _, e := range v {
			total += m.valueCost(elem, e, w, hasWeight)
		}
		return total
	case map[string]any:
		def := m.schema.Types[t.Name()]
		total := 1.0
		if hasWeight {
			total = w
		}
		if def == nil {
			return total
		}
		for _, f := range def.Fields {
			fv, ok := v[f.Name]
			if !ok {
				continue
			}
			fw, fHas := m.weights[t.Name()+"."+f.Name]
			total += m.valueCost(f.Type, fv, fw, fHas)
		}
		return total
	default:
		if hasWeight {
			return w
		}
		return 0
	}
}

// IntArg reads an Int argument as Field.Args holds it (gqlparser gives
// literals as int64, variables as the JSON decoder left them).
func IntArg(v any) (int, bool) { return intValue(v) }

// intValue reads an Int argument as gqlparser's ArgumentMap gives it.
func intValue(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case float64:
		return int(n), true
	case interface{ Int64() (int64, error) }: // json.Number
		i, err := n.Int64()
		return int(i), err == nil
	}
	return 0, false
}
