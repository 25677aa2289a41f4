// Package documents is the executors' cache of parsed and validated GraphQL
// documents (gqlgen's graphql.Cache), bounded in bytes, and the canonical
// form that keys it: the document's tokens, without comments or the
// whitespace and commas between them, so that documents that differ only
// there share one entry.
//
// It knows gqlparser's lexer and AST, and nothing of the schema, the
// resolvers or HTTP.
package documents

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"math"
	"unsafe"

	"github.com/99designs/gqlgen/graphql"
	"github.com/maypok86/otter/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"
)

// Key identifies a document by its canonical form (see Canonical).
type Key [sha256.Size]byte

// Canonical returns the key of query's canonical form and the number of its
// tokens: the SHA-256 of its tokens in order, each written as its kind and
// its value, comments left out. Whitespace, commas and comments between
// tokens change nothing; anything else (a name, a string's value, an Int
// written as a Float) gives another key. ok is false when query does not
// lex, or has more than maxTokens tokens (0: no limit): such a document is
// not cached, and the parser reports it.
//
// It costs one pass of gqlparser's lexer over query, linear in its length.
func Canonical(query string, maxTokens int) (key Key, tokens int, ok bool) {
	h := sha256.New()
	tokens, ok = canonical(h, query, maxTokens)
	h.Sum(key[:0])
	return key, tokens, ok
}

func canonical(h hash.Hash, query string, maxTokens int) (int, bool) {
	lx := lexer.New(&ast.Source{Input: query})
	var n int
	var buf [binary.MaxVarintLen64 + 1]byte
	for {
		tok, err := lx.ReadToken()
		if err != nil {
			return n, false
		}
		switch tok.Kind {
		case lexer.EOF:
			return n, true
		case lexer.Comment:
			continue
		}
		n++
		if maxTokens > 0 && n > maxTokens {
			return n, false
		}
		// The kind, then the value's length and bytes: no two token
		// sequences write the same bytes.
		buf[0] = byte(tok.Kind)
		l := binary.PutUvarint(buf[1:], uint64(len(tok.Value)))
		h.Write(buf[:1+l])
		_, _ = io.WriteString(h, tok.Value)
	}
}

// Options configure a Cache.
type Options struct {
	// MaxBytes bounds the documents the cache holds, each weighed by
	// Weight. A document heavier than MaxBytes/MaxShare is parsed again
	// each time it is used, never cached.
	MaxBytes int64
	// MaxTokens is the parser's token limit (0: none): a document past it
	// is never cached, since it never parses.
	MaxTokens int
}

// DefaultMaxBytes bounds a cache when nothing else is configured: a
// thousand operations the size of GraphiQL's introspection query, or
// sixteen of the largest that the parser's default token limit lets
// through.
const DefaultMaxBytes = 16 << 20

// MaxShare is how many of the heaviest documents a Cache can hold at
// once: a document heavier than MaxBytes/MaxShare is not cached, so that a
// few large ones cannot push out everything else.
const MaxShare = 16

// BytesPerToken is what Weight counts for each token of a document: about
// what gqlparser's AST of a validated document holds per token (measured
// at 99 to 132 bytes on amd64 for the README's and GraphiQL's
// introspection operations), rounded up.
const BytesPerToken = 160

// EntryOverhead is what Weight counts for each document on top of its text
// and tokens: the AST's fixed part and otter's node.
const EntryOverhead = 1024

// Weight is what a document of text query with n tokens counts against
// MaxBytes: its text, which its AST keeps (for error positions), and its
// AST.
func Weight(query string, n int) uint64 {
	return uint64(len(query)) + uint64(n)*BytesPerToken + EntryOverhead
}

// aliasWeight is what an alias (the SHA-256 of a document's exact text,
// pointing at its canonical key) counts: two keys and otter's node.
const aliasWeight = 2*sha256.Size + 128

// Cache holds parsed, validated documents by their canonical form, bounded
// in bytes (otter's W-TinyLFU evicts when it is full). It answers gqlgen's
// executors (graphql.Cache): Get by the request's text, Add once a document
// validated. The exact text of each document seen is remembered too, by
// its SHA-256, so that a repeat of the same text finds its document
// without lexing it again. Share one Cache between the executors of one
// schema. It is safe for concurrent use.
type Cache struct {
	docs     *otter.Cache[Key, entry]
	aliases  *otter.Cache[Key, Key]
	maxEntry uint64
	tokens   int
}

// entry is a cached document with its weight.
type entry struct {
	doc    *ast.QueryDocument
	weight uint32
}

var _ graphql.Cache[*ast.QueryDocument] = (*Cache)(nil)

// New returns a Cache of at most opts.MaxBytes of documents (a bound that
// is not positive takes DefaultMaxBytes: the settings checked it).
func New(opts Options) *Cache {
	if opts.MaxBytes < 1 {
		opts.MaxBytes = DefaultMaxBytes
	}
	docs := otter.Must(&otter.Options[Key, entry]{
		MaximumWeight: uint64(opts.MaxBytes),
		Weigher:       func(_ Key, e entry) uint32 { return e.weight },
	})
	// The aliases get an eighth of the bound again: about ten thousand
	// texts for the default.
	aliases := otter.Must(&otter.Options[Key, Key]{
		MaximumWeight: max(uint64(opts.MaxBytes)/8, aliasWeight),
		Weigher:       func(Key, Key) uint32 { return aliasWeight },
	})
	return &Cache{
		docs:     docs,
		aliases:  aliases,
		maxEntry: min(uint64(opts.MaxBytes)/MaxShare, math.MaxUint32),
		tokens:   opts.MaxTokens,
	}
}

// exact is the SHA-256 of a document's exact text.
func exact(query string) Key {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(query), len(query)))
}

// Get returns the document of query: by its exact text when that was seen
// before, else by its canonical form.
func (c *Cache) Get(_ context.Context, query string) (*ast.QueryDocument, bool) {
	x := exact(query)
	if k, ok := c.aliases.GetIfPresent(x); ok {
		if e, ok := c.docs.GetIfPresent(k); ok {
			return e.doc, true
		}
	}
	k, _, ok := Canonical(query, c.tokens)
	if !ok {
		return nil, false
	}
	e, ok := c.docs.GetIfPresent(k)
	if !ok {
		return nil, false
	}
	c.aliases.Set(x, k)
	return e.doc, true
}

// Key returns the key of query's canonical form: by its exact text when
// that was seen before (no lexing), else by lexing it (and the text is
// remembered). ok is false when query has no canonical form.
func (c *Cache) Key(query string) (Key, bool) {
	x := exact(query)
	if k, ok := c.aliases.GetIfPresent(x); ok {
		return k, true
	}
	k, _, ok := Canonical(query, c.tokens)
	if ok {
		c.aliases.Set(x, k)
	}
	return k, ok
}

// KeyOf returns the key of the canonical form of the document whose exact
// text has SHA-256 sum (an APQ hash), when that text was seen.
func (c *Cache) KeyOf(sum Key) (Key, bool) {
	return c.aliases.GetIfPresent(sum)
}

// Add keeps doc, the parsed and validated document of query, unless it
// weighs more than a MaxShare of the cache's bound. A document whose
// canonical form is cached already is not replaced.
func (c *Cache) Add(_ context.Context, query string, doc *ast.QueryDocument) {
	k, n, ok := Canonical(query, c.tokens)
	if !ok || doc == nil {
		return
	}
	w := Weight(query, n)
	if w > c.maxEntry {
		return
	}
	c.docs.SetIfAbsent(k, entry{doc: doc, weight: uint32(w)})
	c.aliases.Set(exact(query), k)
}

// Stats are the cache's counts, for metrics.
type Stats struct {
	// Documents and Bytes are what the cache holds now.
	Documents int
	Bytes     uint64
}

// Stats returns what the cache holds.
func (c *Cache) Stats() Stats {
	return Stats{Documents: c.docs.EstimatedSize(), Bytes: c.docs.WeightedSize()}
}
