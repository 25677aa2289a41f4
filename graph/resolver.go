// Package graph is the GraphQL API: the schema's resolvers, the per-request
// loaders that batch and deduplicate upstream calls, the error presenter and
// the HTTP handler. It depends on the upstream only through the Service
// interface and the upstream's types, never on HTTP details of the upstream.
package graph

//go:generate go run ./internal/gen

// Resolver is the root resolver and the one place the API's dependencies
// live. Per-request state (the loaders) comes from the context, via For.
type Resolver struct {
	// MaxPageSize bounds first and last of every connection.
	MaxPageSize int
}
