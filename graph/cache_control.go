package graph

import (
	"context"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/compshare/imagegraph/internal/answers"
	"github.com/compshare/imagegraph/internal/gqlhttp"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/upstream"
)

// HTTPCaching says how HTTP caches (a CDN, a browser, a federation router's
// entity cache) may keep the API's answers.
type HTTPCaching struct {
	// MaxAge bounds an answer's max-age: the response cache's TTL. 0 turns
	// HTTP caching off: every answer says no-store.
	MaxAge time.Duration
	// Private lets only private caches keep answers: set it when answers
	// need credentials (API keys), so that a shared cache does not hand
	// them to whoever asks.
	Private bool
}

// policy is the Cache-Control of an executed answer: no-store when it holds
// errors, or data served past its freshness, or data read without a cache;
// otherwise max-age of the smallest remaining freshness of the data it
// used (MaxAge when it used none).
func (c HTTPCaching) policy(ctx context.Context, resp *graphql.Response) string {
	if c.MaxAge <= 0 || len(resp.Errors) > 0 {
		return "no-store"
	}
	r := upstream.UsageFrom(ctx).Report()
	age := c.MaxAge
	switch {
	case r.Stale:
		return "no-store"
	case r.Fresh:
		age = min(age, r.FreshFor)
	case r.Reads() > 0:
		return "no-store"
	}
	scope := "public"
	if c.Private {
		scope = "private"
	}
	return fmt.Sprintf("%s, max-age=%d", scope, int(age/time.Second))
}

var _ gqlhttp.CachePolicy = HTTPCaching{}.policy

// Judge says whether an executed answer may be given to the identical
// requests that waited for it, and whether it may be served again from the
// cache of answers, and for how long. It may be shared when it has data and
// no errors, stale data or federated trace; kept, too, when it was built
// from upstream data the response cache keeps fresh (or from none), for as
// long as the freshest-expiring of that data: the max-age policy gives
// HTTP caches. A hit carries the operation's extensions.cost with no
// upstream calls, and as cache hits the reads the answer was built from;
// it charges its client the estimated cost.
func (c HTTPCaching) Judge(ctx context.Context, resp *graphql.Response) answers.Verdict {
	if resp.Data == nil || len(resp.Errors) > 0 ||
		resp.Extensions["staleData"] != nil || resp.Extensions["ftv1"] != nil {
		return answers.Verdict{}
	}
	res := limits.ResultFrom(ctx)
	if res == nil {
		return answers.Verdict{}
	}
	r := upstream.UsageFrom(ctx).Report()
	// A hit makes no upstream call; the reads its answer was built from
	// are all answered by a cache now.
	cost := limits.Cost(ctx)
	cost["upstreamCalls"], cost["cacheHits"] = 0, r.Reads()
	v := answers.Verdict{Share: true, Cost: answers.Cost(res.Cost), Reads: r.Reads(), Extensions: map[string]any{"cost": cost}}
	switch {
	case c.MaxAge <= 0 || r.Stale:
	case r.Fresh:
		v.Keep, v.TTL = true, min(c.MaxAge, r.FreshFor)
	case r.Reads() > 0:
		// read without a cache: no freshness to go by
	default:
		v.Keep, v.TTL = true, c.MaxAge
	}
	if oc := graphql.GetOperationContext(ctx); oc.Operation != nil {
		v.Name, v.Type = oc.OperationName, string(oc.Operation.Operation)
		if v.Name == "" {
			v.Name = oc.Operation.Name
		}
	}
	return v
}
