package graph

import (
	"context"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/compshare/imagegraph/internal/gqlhttp"
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
