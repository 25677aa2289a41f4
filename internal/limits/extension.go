package limits

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/compshare/imagegraph/upstream"
)

// Extension is the gqlgen handler extension that holds operations to
// Limits. Before validation it refuses a document that repeats a field
// beyond MaxFieldRepeats; after validation it walks the operation once
// (fragments expanded, @skip and @include applied), refuses it when it
// exceeds a limit (a request error: nothing runs, no upstream call is made),
// and charges its estimated cost to Admit; while it runs, its upstream calls
// are counted against MaxUpstreamCalls (see Meter) and it has Timeout to
// finish; its answer's extensions.cost says what it cost.
type Extension struct {
	// Limits are the bounds.
	Limits Limits
	// Calls says which fields call the upstream; nil estimates none.
	Calls CallEstimator
	// QueryCache is the executor's cache of parsed, validated documents: a
	// document found there skips the check before validation. nil checks
	// every document.
	QueryCache graphql.Cache[*ast.QueryDocument]
	// Tokens is the parser's token limit, for that check's own parse (0:
	// DefaultTokens).
	Tokens int
	// Admit, when set, is charged each operation's estimated cost once the
	// operation is within the limits: a client rate limit. An error it
	// returns refuses the operation with the error's ErrorCode() and
	// ErrorExtensions() when it has them.
	Admit func(ctx context.Context, cost int) error
	// Timeout is the deadline of one operation (0: none). Past it the
	// upstream calls still waiting are given up and their fields fail.
	Timeout time.Duration
	// Inflight, when set, bounds the estimated cost of the operations
	// running at once (shared by every executor of the process): an
	// operation within the limits and admitted by Admit waits for room
	// there, and gives it back once answered. (A shed operation has been
	// charged to Admit: it was the client's to send.)
	Inflight *Inflight

	model *costModel
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = (*Extension)(nil)

const (
	statsKey    = "limits"
	inflightKey = "limits.inflight"
)

// ExtensionName names the extension.
func (e *Extension) ExtensionName() string { return "Limits" }

// Validate reads the schema's cost directives.
func (e *Extension) Validate(schema graphql.ExecutableSchema) error {
	e.model = newCostModel(schema.Schema())
	return nil
}

// MutateOperationParameters checks a document it has not seen before
// gqlgen validates it (see Precheck), and the request's variables: a
// number Go cannot hold, or an Int variable past 32 bits, is
// BAD_USER_INPUT.
func (e *Extension) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	if raw.Query == "" {
		return nil
	}
	var doc *ast.QueryDocument
	if e.QueryCache != nil {
		doc, _ = e.QueryCache.Get(ctx, raw.Query)
	}
	if doc == nil {
		tokens := e.Tokens
		if tokens <= 0 {
			tokens = DefaultTokens
		}
		parsed, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: raw.Query}, tokens)
		if err != nil {
			return nil // gqlgen's own parse reports it
		}
		if err := Precheck(parsed, e.Limits); err != nil {
			return err
		}
		doc = parsed
	}
	return variablesOutOfRange(doc, raw.OperationName, raw.Variables)
}

// Precheck refuses a parsed document, before validation, when a selection
// set repeats a field more than l.MaxFieldRepeats times
// (GRAPHQL_VALIDATION_FAILED: validation's overlap check is quadratic in
// the repeats), or when it writes a number Go cannot hold (BAD_USER_INPUT:
// gqlparser's ArgumentMap panics on one). It costs time linear in the
// document.
func Precheck(doc *ast.QueryDocument, l Limits) *gqlerror.Error {
	repeats := l.MaxFieldRepeats
	if repeats <= 0 {
		repeats = defaultFieldRepeats
	}
	if err := repeatedField(doc, repeats); err != nil {
		return err
	}
	return numberOutOfRange(doc)
}

// MutateOperationContext measures the operation, refuses it when it exceeds
// a limit, charges its cost to Admit, and waits for room for it in
// Inflight.
func (e *Extension) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	res := e.Analyze(oc)
	if err := e.Limits.Check(&res); err != nil {
		return err
	}
	cost := int(min(math.Ceil(res.Cost), math.MaxInt32))
	// The client's limit first: a client over it is refused at once, and
	// never takes a place in the queue for room that others wait in.
	if e.Admit != nil {
		if err := e.Admit(ctx, cost); err != nil {
			return requestError(err)
		}
	}
	if e.Inflight != nil {
		release, err := e.Inflight.Acquire(ctx, cost)
		if err != nil {
			return requestError(err)
		}
		// Given back once the operation is answered (InterceptOperation),
		// and at the latest when its request ends, should it never run.
		context.AfterFunc(ctx, release)
		oc.Stats.SetExtension(inflightKey, release)
	}
	res.MaxCost = max(e.Limits.MaxCost, 0)
	oc.Stats.SetExtension(statsKey, &res)
	return nil
}

// release gives back the room the operation of oc holds in Inflight.
func (e *Extension) release(oc *graphql.OperationContext) {
	if release, ok := oc.Stats.GetExtension(inflightKey).(func()); ok {
		release()
	}
}

// Analyze measures the operation of oc.
func (e *Extension) Analyze(oc *graphql.OperationContext) Result {
	return analyze(e.model, oc.Doc, oc.Operation, oc.Variables, e.Calls)
}

// InterceptOperation gives the operation its upstream-call budget and its
// deadline, and gives its room in Inflight back once it is answered.
func (e *Extension) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	ctx = WithBudget(ctx, NewBudget(e.Limits.MaxUpstreamCalls))
	cancel := context.CancelFunc(func() {})
	if e.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
	}
	h := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		if resp == nil || resp.HasNext == nil || !*resp.HasNext {
			cancel()
			if graphql.HasOperationContext(ctx) {
				e.release(graphql.GetOperationContext(ctx))
			}
		}
		return resp
	}
}

// InterceptResponse adds extensions.cost to every answer with data.
func (e *Extension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || resp.Data == nil {
		return resp
	}
	cost := Cost(ctx)
	if cost == nil {
		return resp
	}
	if resp.Extensions == nil {
		resp.Extensions = map[string]any{}
	}
	resp.Extensions["cost"] = cost
	return resp
}

// Cost returns what extensions.cost says of the operation of ctx: its
// estimated cost and upstream calls, the upstream calls it made so far (and
// its cache hits, from the upstream.Usage of ctx), and the bounds; nil when
// the extension did not measure it.
func Cost(ctx context.Context) map[string]any {
	res := ResultFrom(ctx)
	if res == nil {
		return nil
	}
	out := map[string]any{
		"estimated":              number(res.Cost),
		"max":                    res.MaxCost,
		"upstreamCallsEstimated": number(res.UpstreamCalls),
	}
	if b := BudgetFrom(ctx); b != nil {
		out["upstreamCalls"] = b.Calls()
		out["maxUpstreamCalls"] = b.Max()
	}
	if u := upstream.UsageFrom(ctx); u != nil {
		// The client's count: real calls only, not those a cache answered
		// or another operation's identical call in flight did.
		r := u.Report()
		out["upstreamCalls"] = r.Calls
		out["cacheHits"] = r.CacheHits
	}
	return out
}

// ResultFrom returns what the extension measured of the operation of ctx,
// or nil.
func ResultFrom(ctx context.Context) *Result {
	if !graphql.HasOperationContext(ctx) {
		return nil
	}
	res, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(statsKey).(*Result)
	return res
}

// number is f for JSON: an integer, never an infinity (which JSON cannot say).
func number(f float64) any {
	switch {
	case math.IsInf(f, 1) || f > math.MaxInt64:
		return math.MaxFloat64
	case f >= 0 && f == math.Trunc(f):
		return int64(f)
	}
	return f
}

// requestError is err as a request error, with the code and extensions it
// names.
func requestError(err error) *gqlerror.Error {
	out := &gqlerror.Error{Message: err.Error(), Extensions: map[string]any{}}
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		out.Extensions["code"] = coded.ErrorCode()
	}
	var ext interface{ ErrorExtensions() map[string]any }
	if errors.As(err, &ext) {
		for k, v := range ext.ErrorExtensions() {
			if k != "code" {
				out.Extensions[k] = v
			}
		}
	}
	return out
}
