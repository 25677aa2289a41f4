// Package limits bounds what one GraphQL operation may cost before it runs
// and while it runs: the depth of its fields, its aliases, root fields and
// directives, its estimated cost (IBM's GraphQL Cost Directive
// specification, as Apollo Router's demand control computes it from @cost
// and @listSize in the schema) and its upstream calls, estimated before
// execution and counted during it. It also gives every operation a deadline
// and reports what it cost in the response's extensions.cost.
//
// It is a gqlgen handler extension plus a decorator of the upstream service.
// It knows the GraphQL document and the schema's cost annotations, but not
// which fields call the upstream: the GraphQL layer tells it through a
// CallEstimator. It knows nothing of HTTP.
package limits

import (
	"fmt"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/internal/codes"
)

// defaultFieldRepeats is MaxFieldRepeats when none is configured.
const defaultFieldRepeats = 100

// Limits are the bounds of one operation. A zero or negative bound is no
// bound.
type Limits struct {
	// MaxDepth bounds the deepest nesting of fields, fragments expanded
	// (introspection fields aside: gqlparser's own rule bounds those).
	MaxDepth int
	// MaxAliases bounds the aliased fields, fragments expanded.
	MaxAliases int
	// MaxRootFields bounds the fields of the operation's root selection.
	MaxRootFields int
	// MaxDirectives bounds the directives written in the operation,
	// fragments expanded.
	MaxDirectives int
	// MaxCost bounds the estimated cost.
	MaxCost int
	// MaxUpstreamCalls bounds the upstream calls: the estimate before
	// execution, and the real count during it.
	MaxUpstreamCalls int
	// MaxFieldRepeats bounds how often one response name may be selected
	// in one selection set (0: DefaultLimits' 100). Checked before
	// validation, whose overlap check is quadratic in it: a document of
	// ten thousand tokens repeating one field would otherwise cost more
	// than a second of CPU to validate.
	MaxFieldRepeats int
	// MaxExpandedFields bounds the fields of an operation with every
	// fragment spread expanded in place: a document of a kilobyte whose
	// fragments each spread the next one twice expands to billions of
	// fields. This package's walk measures each fragment once, so it costs
	// microseconds whatever the expansion; the bound spares the executor,
	// whose field collection expands fragments for every object it builds.
	MaxExpandedFields int
}

// DefaultLimits are the bounds of a server configured with nothing else:
// every query of the README, the playground and the tests fits, and so does
// imageGroups(first: 500) with its versions.
var DefaultLimits = Limits{
	MaxDepth:          12,
	MaxAliases:        30,
	MaxRootFields:     20,
	MaxDirectives:     50,
	MaxCost:           50000,
	MaxUpstreamCalls:  50,
	MaxFieldRepeats:   defaultFieldRepeats,
	MaxExpandedFields: 2000,
}

// DefaultOperationTimeout is the deadline of one operation when none is
// configured.
const DefaultOperationTimeout = 30 * time.Second

// DefaultTokens is the parser's token limit when none is configured.
const DefaultTokens = 10000

// refusal is a limit an operation exceeds, as the request error clients see.
func refusal(code, setting string, limit int, measured float64, msg string) *gqlerror.Error {
	return &gqlerror.Error{
		Message: msg,
		Extensions: map[string]any{
			"code":     code,
			"setting":  setting,
			"limit":    limit,
			"measured": number(measured),
		},
	}
}

// Check returns the first limit r exceeds, in the order of the Limits
// fields, or nil.
func (l Limits) Check(r *Result) *gqlerror.Error {
	switch {
	case l.MaxDepth > 0 && r.Depth > l.MaxDepth:
		return refusal(codes.MaxDepth, "MAX_DEPTH", l.MaxDepth, float64(r.Depth),
			fmt.Sprintf("the operation nests fields %d deep, more than the %d allowed", r.Depth, l.MaxDepth))
	case l.MaxAliases > 0 && r.Aliases > float64(l.MaxAliases):
		return refusal(codes.MaxAliases, "MAX_ALIASES", l.MaxAliases, r.Aliases,
			fmt.Sprintf("the operation has %s aliases, more than the %d allowed", count(r.Aliases), l.MaxAliases))
	case l.MaxRootFields > 0 && r.RootFields > float64(l.MaxRootFields):
		return refusal(codes.MaxRootFields, "MAX_ROOT_FIELDS", l.MaxRootFields, r.RootFields,
			fmt.Sprintf("the operation has %s root fields, more than the %d allowed", count(r.RootFields), l.MaxRootFields))
	case l.MaxDirectives > 0 && r.Directives > float64(l.MaxDirectives):
		return refusal(codes.MaxDirectives, "MAX_DIRECTIVES", l.MaxDirectives, r.Directives,
			fmt.Sprintf("the operation has %s directives, more than the %d allowed", count(r.Directives), l.MaxDirectives))
	case l.MaxExpandedFields > 0 && r.Fields > float64(l.MaxExpandedFields):
		return refusal(codes.MaxExpandedFields, "MAX_EXPANDED_FIELDS", l.MaxExpandedFields, r.Fields,
			fmt.Sprintf("the operation selects %s fields once its fragments are expanded, more than the %d allowed: spread a fragment where it is needed, not many times over", count(r.Fields), l.MaxExpandedFields))
	case l.MaxCost > 0 && r.Cost > float64(l.MaxCost):
		return refusal(codes.EstimatedCost, "MAX_COST", l.MaxCost, r.Cost,
			fmt.Sprintf("the operation's estimated cost is %s, more than the %d allowed", count(r.Cost), l.MaxCost))
	case l.MaxUpstreamCalls > 0 && r.UpstreamCalls > float64(l.MaxUpstreamCalls):
		return refusal(codes.EstimatedCost, "MAX_UPSTREAM_CALLS", l.MaxUpstreamCalls, r.UpstreamCalls,
			fmt.Sprintf("the operation may make %s upstream calls, more than the %d allowed", count(r.UpstreamCalls), l.MaxUpstreamCalls))
	}
	return nil
}

// count formats a measured value: an integer as such, a huge one in
// exponent form.
func count(f float64) string {
	if f < 1e15 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.3g", f)
}
