// Package access decides who may call the API and how often: CORS for
// browsers on other origins, optional API keys, the client's identity (its
// key's name, or its address behind trusted proxies) and per-client rate
// limits in cost points.
//
// It knows nothing of GraphQL execution: the GraphQL layer reports an
// operation's estimated cost through [RateLimit.Admit] and turns the
// [*RateLimitedError] it may get back into a GraphQL error. Nor does it know
// the upstream API, configuration or logging formats: the server wires it in.
//
// The HTTP middleware is meant to wrap the API in this order, outermost
// first:
//
//	cors(Identify(trusted, Authenticate(keys, api)))
//
// CORS comes first so that preflights are answered before any key is asked
// for and so that a browser can read a 401; Identify comes before
// Authenticate so that Authenticate can name the client it lets in.
package access
