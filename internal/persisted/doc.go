// Package persisted serves persisted operations: Apollo's automatic persisted
// queries (APQ), kept in a bounded store, and a safelist read from a manifest
// (Apollo's persisted query list, or Relay's map of ids to documents),
// optionally the only operations the server runs. It knows nothing of HTTP:
// the transport hands it a request's documentId in the operation's
// extensions.
//
// It must not know about the rest of the server either: not the schema's
// resolvers, not the upstream API, not how errors are presented or logged.
// It sees documents, hashes and ids, and a schema to validate a manifest
// against; what runs them is gqlgen's executor.
//
// [Extension] replaces gqlgen's extension.AutomaticPersistedQuery (use one or
// the other, never both). Add it with handler.Server.Use after
// extension.Introspection: introspection is off for an operation until that
// extension turns it on, and [Extension] reads the result to let
// introspection-only documents through when only listed operations run.
package persisted
