package persisted

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/compshare/imagegraph/internal/codes"
)

// The messages Apollo Client's and urql's persisted-query links match on.
const (
	messageNotFound     = "PersistedQueryNotFound"
	messageNotSupported = "PersistedQueryNotSupported"
	messageNotInList    = "this server runs only persisted operations, and this one is not in its list"
)

// DocumentIDExtension is the key under which the transport puts a request's
// documentId (or doc_id) in RawParams.Extensions.
const DocumentIDExtension = "documentId"

// apqExtension is the key of Apollo's APQ extension in a request.
const apqExtension = "persistedQuery"

// statsName is the key of the extension's record in an operation's stats,
// and its name.
const statsName = "PersistedOperations"

// Extension is a gqlgen handler extension (graphql.HandlerExtension,
// graphql.OperationParameterMutator, graphql.OperationContextMutator) that
// serves persisted operations. It replaces gqlgen's
// extension.AutomaticPersistedQuery; add it after extension.Introspection.
//
// A request names its document in one of three ways:
//
//   - extensions.documentId (put there by the transport): a listed
//     operation, by id or as "sha256:<hex>". Only the manifest is searched.
//   - extensions.persistedQuery, Apollo's APQ: {"version": 1,
//     "sha256Hash": "<hex>"}, with or without the query. Without it, the
//     document comes from the manifest or the Store; with it, the query
//     must have that hash, and is stored for next time once it has parsed
//     and validated.
//   - the query alone, as usual.
//
// The fields must not change once the server serves requests.
type Extension struct {
	// Store keeps APQ documents; nil turns APQ off (but hashes of listed
	// documents are still served from Manifest).
	Store Store
	// Manifest is the safelist; nil for none.
	Manifest *Manifest
	// Only makes the server refuse documents that are not in Manifest
	// (except introspection-only queries while introspection is on, and
	// requests that Trusted vouches for), and keeps clients from storing
	// new APQ documents.
	Only bool
	// Trusted reports requests that may run any document even when Only is
	// set (a federation router's query plans are in no list). It sees the
	// parsed and validated operation, with the request's headers. nil:
	// none.
	Trusted func(ctx context.Context, oc *graphql.OperationContext) bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
} = (*Extension)(nil)

// ExtensionName returns "PersistedOperations".
func (e *Extension) ExtensionName() string { return statsName }

// Validate returns nil: every configuration of the fields makes sense.
func (e *Extension) Validate(graphql.ExecutableSchema) error { return nil }

// record is what the extension learns of an operation before it is parsed,
// kept in its stats for MutateOperationContext and Listed.
type record struct {
	// listed: the document came from the manifest, by id, hash or exact text.
	listed bool
	// register is the APQ hash to store the operation's document under once
	// it has parsed and validated and is allowed to run; "" for none.
	register string
}

// MutateOperationParameters resolves a request's documentId or APQ hash to
// its document, and checks the hash of a document the request sends along.
// It runs before the document is parsed.
func (e *Extension) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	rec := &record{}
	if v := raw.Extensions[DocumentIDExtension]; v != nil {
		if err := e.byDocumentID(v, raw, rec); err != nil {
			return err
		}
	}
	if v := raw.Extensions[apqExtension]; v != nil {
		if err := e.byHash(ctx, v, raw, rec); err != nil {
			return err
		}
	} else if !rec.listed {
		rec.listed = e.Manifest.Contains(raw.Query)
	}
	if graphql.HasOperationContext(ctx) {
		graphql.GetOperationContext(ctx).Stats.SetExtension(statsName, rec)
	}
	return nil
}

// byDocumentID sets raw.Query to the listed document of a documentId: an id
// of the manifest, or "sha256:" and the hash of a listed body.
func (e *Extension) byDocumentID(v any, raw *graphql.RawParams, rec *record) *gqlerror.Error {
	id, ok := v.(string)
	if !ok || id == "" {
		return invalidf("the documentId must be a non-empty string")
	}
	op, found := e.Manifest.Lookup(id)
	if hex, ok := strings.CutPrefix(id, "sha256:"); ok && !found {
		op, found = e.Manifest.lookupHash(strings.ToLower(hex))
	}
	if !found {
		return coded(codes.PersistedQueryNotFound, messageNotFound)
	}
	if raw.Query != "" && raw.Query != op.Body {
		return coded(codes.PersistedQueryHashMismatch, fmt.Sprintf("the query is not the document of documentId %q", id))
	}
	raw.Query = op.Body
	rec.listed = true
	return nil
}

// byHash serves Apollo's APQ: it sets raw.Query to the document of the hash
// when the request has none, and checks the hash of the query when it has.
func (e *Extension) byHash(ctx context.Context, v any, raw *graphql.RawParams, rec *record) *gqlerror.Error {
	ext, ok := v.(map[string]any)
	if !ok {
		return invalidf("the persistedQuery extension must be an object")
	}
	version, ok := ext["version"]
	if !ok {
		return invalidf("the persistedQuery extension has no version")
	}
	n, ok := number(version)
	if !ok {
		return invalidf("the persistedQuery version must be a number")
	}
	if n != 1 {
		// Apollo's answer to a version it does not speak: the client falls
		// back to sending documents.
		return coded(codes.PersistedQueryNotSupported, messageNotSupported)
	}
	hash, _ := ext["sha256Hash"].(string)
	if !isSHA256Hex(hash) {
		return invalidf("the persistedQuery sha256Hash must be 64 hexadecimal digits")
	}
	hash = strings.ToLower(hash)

	if raw.Query == "" {
		if op, ok := e.Manifest.lookupHash(hash); ok {
			raw.Query = op.Body
			rec.listed = true
			return nil
		}
		if e.Store == nil {
			return coded(codes.PersistedQueryNotSupported, messageNotSupported)
		}
		query, ok := e.Store.Get(ctx, hash)
		if !ok {
			return coded(codes.PersistedQueryNotFound, messageNotFound)
		}
		raw.Query = query
		rec.listed = e.Manifest.Contains(query)
		return nil
	}

	if hashOf(raw.Query) != hash {
		return coded(codes.PersistedQueryHashMismatch, "the sha256Hash of the persistedQuery extension is not the hash of the query")
	}
	rec.listed = rec.listed || e.Manifest.Contains(raw.Query)
	if !rec.listed && e.Store != nil {
		// A listed document is found by its hash in the manifest, so only
		// unlisted ones need storing. MutateOperationContext stores it
		// once it has parsed and validated, and once Trusted has seen the
		// headers (which are not in the operation context yet).
		rec.register = hash
	}
	return nil
}

// MutateOperationContext refuses an unlisted operation when Only is set
// (unless Trusted vouches for it, or it only introspects and introspection
// is on for it), and stores the document of an APQ registration. It runs
// after the document has parsed and validated.
func (e *Extension) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	rec, _ := oc.Stats.GetExtension(statsName).(*record)
	if rec == nil {
		// MutateOperationParameters did not run for this operation: judge
		// it by its text.
		rec = &record{listed: e.Manifest.Contains(oc.RawQuery)}
		oc.Stats.SetExtension(statsName, rec)
	}
	if !e.Only || rec.listed {
		e.register(ctx, rec, oc)
		return nil
	}
	if e.Trusted != nil && e.Trusted(ctx, oc) {
		e.register(ctx, rec, oc)
		return nil
	}
	if !oc.DisableIntrospection && introspectionOnly(oc) {
		return nil // but a client may not store it
	}
	return coded(codes.PersistedQueryNotInList, messageNotInList)
}

// register stores the document of an APQ registration that passed.
func (e *Extension) register(ctx context.Context, rec *record, oc *graphql.OperationContext) {
	if rec.register != "" && e.Store != nil {
		e.Store.Add(ctx, rec.register, oc.RawQuery)
	}
}

// Listed reports whether the operation of ctx came from the manifest (by
// id, hash or exact text); for logs and metrics. It is false outside an
// operation, or when no [Extension] is in use.
func Listed(ctx context.Context) bool {
	if !graphql.HasOperationContext(ctx) {
		return false
	}
	rec, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(statsName).(*record)
	return rec != nil && rec.listed
}

// introspectionOnly reports whether oc is a query that selects nothing but
// __schema, __type and __typename at its top level, through fragments and
// inline fragments: what a playground's docs explorer sends.
func introspectionOnly(oc *graphql.OperationContext) bool {
	if oc.Operation == nil || oc.Operation.Operation != ast.Query {
		return false
	}
	return onlyIntrospection(oc.Doc, oc.Operation.SelectionSet, map[string]bool{})
}

func onlyIntrospection(doc *ast.QueryDocument, set ast.SelectionSet, seen map[string]bool) bool {
	if len(set) == 0 {
		return false
	}
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			switch sel.Name {
			case "__schema", "__type", "__typename":
			default:
				return false
			}
		case *ast.InlineFragment:
			if !onlyIntrospection(doc, sel.SelectionSet, seen) {
				return false
			}
		case *ast.FragmentSpread:
			if seen[sel.Name] {
				continue // validation refuses cycles; this only keeps us out of one
			}
			seen[sel.Name] = true
			def := sel.Definition
			if def == nil && doc != nil {
				def = doc.Fragments.ForName(sel.Name)
			}
			if def == nil || !onlyIntrospection(doc, def.SelectionSet, seen) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// number is the value of a JSON number as it arrives decoded: json.Number
// from gqlgen's transports, float64 from encoding/json's defaults, an int
// from Go code.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	default:
		return 0, false
	}
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// coded is a request error with code in extensions.code.
func coded(code, message string) *gqlerror.Error {
	err := &gqlerror.Error{Message: message}
	errcode.Set(err, code)
	return err
}

func invalidf(format string, args ...any) *gqlerror.Error {
	return coded(codes.PersistedQueryInvalid, fmt.Sprintf(format, args...))
}
