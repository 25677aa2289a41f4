package answers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"

	"github.com/compshare/imagegraph/internal/documents"
)

// FuzzAnswerKey builds requests from an arbitrary document, variables and
// operation name, and compares the keys the cache of answers files them
// under. It proves that requests that must share an answer share a key:
// the document with other whitespace, commas, comments and byte order
// marks between its tokens; the variables with their keys in another order
// and other whitespace; the same request over GET and POST; the document
// named by its APQ hash alone, or by a persisted documentId. And that
// requests that may not share an answer have different keys: one token of
// the document changed (a name or alias, an argument's number or string),
// one variable's value changed, another operation name, another variant.
func FuzzAnswerKey(f *testing.F) {
	for _, seed := range []struct {
		query, vars, op string
		layout          uint64
	}{
		{`query Page($n: Int, $a: String) { imageGroups(first: $n, after: $a) { totalCount edges { cursor node { id name } } } }`, `{"n": 3, "a": "cG9zOjE"}`, "Page", 1},
		{`{ a: imageGroup(groupId: "g-1") { name } b: imageGroup(groupId: "g-2") { name } }`, ``, "", 2},
		{`query($f: ImageFilter) { imageGroups(filter: $f, first: 1.5e3) { nodes { groupId } } }`, `{"f": {"tags": ["x", "y"], "freeOnly": true, "name": null}}`, "", 3},
		{"# comment\n{ imageVersion(imageId: \"\\u0041\\n\") { readme(format: HTML) } }", `{}`, "", 4},
		{`{ x(a: """  block
		  string """, b: -0.0e-1, c: [1, 2, {d: $v}]) @skip(if: false) }`, `{"v": {"b": [1, {"z": 1, "a": 2}], "a": "\u00e9"}}`, "Q", 5},
		{`query A { __typename } query B { __typename }`, `{"x": 1, "x": 2}`, "B", 6},
		{`{ f(s: "é\ud83d\ude00") }`, `null`, "", 7},
		{"{ f }\ufeff", `{"n": 1e400}`, "", 8},
		{`{`, `[]`, "", 9},
	} {
		f.Add(seed.query, seed.vars, seed.op, seed.layout)
	}
	f.Fuzz(func(t *testing.T, query, vars, op string, layout uint64) {
		rng := rand.New(rand.NewPCG(layout, layout>>32))
		// JSON carries valid UTF-8 only: what the server would see.
		query, op = strings.ToValidUTF8(query, "\uFFFD"), strings.ToValidUTF8(op, "\uFFFD")
		// A cache of its own: a document the fuzzer's earlier inputs
		// pushed out of the record of texts seen has no key by its hash.
		c := New(Options{
			Documents: documents.New(documents.Options{}),
			Resolve: func(id string) (string, bool) {
				return query, id == "listed"
			},
			Variant: func(r *http.Request) string { return r.Header.Get("X-Variant") },
		})
		p := params{Query: query, OperationName: op}
		if json.Valid([]byte(vars)) {
			p.Variables = json.RawMessage(vars)
		}
		want, ok := keyOf(t, c, post(t, p, ""))
		if !ok {
			return
		}

		// Equal: over GET, with another layout, by hash, by id.
		got, ok := keyOf(t, c, get(p, ""))
		require.True(t, ok, "over GET")
		assert.Equal(t, want, got, "GET and POST")
		if tokens, ok := lex(query); ok {
			q := p
			q.Query = layOut(rng, tokens, -1)
			got, ok := keyOf(t, c, post(t, q, ""))
			require.True(t, ok, "%q laid out as %q", query, q.Query)
			assert.Equal(t, want, got, "%q laid out as %q", query, q.Query)
		}
		if v, ok := decodeObject(vars); ok {
			q := p
			q.Variables = json.RawMessage(shuffled(rng, v))
			got, ok := keyOf(t, c, post(t, q, ""))
			require.True(t, ok, "variables %s written %s", vars, q.Variables)
			assert.Equal(t, want, got, "variables %s written %s", vars, q.Variables)
		}
		sum := sha256.Sum256([]byte(query))
		q := p
		q.Query, q.Extensions = "", json.RawMessage(`{"persistedQuery":{"version":1,"sha256Hash":"`+hex.EncodeToString(sum[:])+`"}}`)
		got, ok = keyOf(t, c, post(t, q, ""))
		require.True(t, ok, "by its APQ hash")
		assert.Equal(t, want, got, "by its APQ hash")
		q = p
		q.Query, q.DocumentID = "", json.RawMessage(`"listed"`)
		got, ok = keyOf(t, c, post(t, q, ""))
		require.True(t, ok, "by its documentId")
		assert.Equal(t, want, got, "by its documentId")

		// Different: one token, one variable, the operation name, the
		// variant.
		if tokens, ok := lex(query); ok {
			if i, ok := changeable(rng, tokens); ok {
				q := p
				q.Query = layOut(rng, tokens, i)
				got, ok := keyOf(t, c, post(t, q, ""))
				require.True(t, ok, "%q changed to %q", query, q.Query)
				assert.NotEqual(t, want, got, "%q changed to %q", query, q.Query)
			}
		}
		if v, ok := decodeObject(vars); ok && len(v) > 0 {
			names := make([]string, 0, len(v))
			for k := range v {
				names = append(names, k)
			}
			slices.Sort(names)
			name := names[rng.IntN(len(names))]
			v[name] = []any{v[name]}
			q := p
			q.Variables = json.RawMessage(shuffled(rng, v))
			got, ok := keyOf(t, c, post(t, q, ""))
			require.True(t, ok)
			assert.NotEqual(t, want, got, "variables %s changed to %s", vars, q.Variables)
		}
		q = p
		q.OperationName += "x"
		got, ok = keyOf(t, c, post(t, q, ""))
		require.True(t, ok)
		assert.NotEqual(t, want, got, "operation %q and %q", p.OperationName, q.OperationName)
		got, ok = keyOf(t, c, post(t, p, "router"))
		require.True(t, ok)
		assert.NotEqual(t, want, got, "another variant")
	})
}

// keyOf is the key the cache files r's answer under; false when it keeps
// none for r.
func keyOf(t *testing.T, c *Cache, r *http.Request) (key, bool) {
	t.Helper()
	q, ok := c.parse(r)
	if !ok || !q.known {
		return key{}, false
	}
	return q.key(q.doc), true
}

// post is a POST of p, as variant.
func post(t *testing.T, p params, variant string) *http.Request {
	t.Helper()
	body, err := json.Marshal(p)
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	if variant != "" {
		r.Header.Set("X-Variant", variant)
	}
	return r
}

// get is a GET of p, as variant.
func get(p params, variant string) *http.Request {
	v := url.Values{"query": {p.Query}}
	if p.OperationName != "" {
		v.Set("operationName", p.OperationName)
	}
	if len(p.Variables) > 0 {
		v.Set("variables", string(p.Variables))
	}
	r := httptest.NewRequest(http.MethodGet, "/query?"+v.Encode(), nil)
	if variant != "" {
		r.Header.Set("X-Variant", variant)
	}
	return r
}

// token is one token of a document: its kind and its text as written.
type token struct {
	kind lexer.Type
	text string
}

// lex returns the tokens of query, comments left out; false when it does
// not lex.
func lex(query string) ([]token, bool) {
	// Token positions count runes: the byte offset of each.
	offsets := make([]int, 0, len(query)+1)
	for i := range query {
		offsets = append(offsets, i)
	}
	offsets = append(offsets, len(query))
	lx := lexer.New(&ast.Source{Input: query})
	var out []token
	for {
		tok, err := lx.ReadToken()
		if err != nil || tok.Pos.End >= len(offsets) {
			return nil, false
		}
		switch tok.Kind {
		case lexer.EOF:
			return out, true
		case lexer.Comment:
			continue
		}
		// gqlparser's lexer ends a block string whose text ends in a quote
		// (`"""a""""`, whose value is `a"`) one rune early: the text is the
		// one that lexes back to the token, the extra rune taken if need be.
		text, ok := tokenText(query, offsets, tok)
		if !ok {
			return nil, false
		}
		out = append(out, token{tok.Kind, text})
	}
}

// tokenText is the text of tok in query: what lexes, alone, to tok's kind
// and value and nothing after it.
func tokenText(query string, offsets []int, tok lexer.Token) (string, bool) {
	for end := tok.Pos.End; end <= tok.Pos.End+1 && end < len(offsets); end++ {
		text := query[offsets[tok.Pos.Start]:offsets[end]]
		lx := lexer.New(&ast.Source{Input: text})
		alone, err := lx.ReadToken()
		if err != nil || alone.Kind != tok.Kind || alone.Value != tok.Value {
			continue
		}
		if next, err := lx.ReadToken(); err == nil && next.Kind == lexer.EOF {
			return text, true
		}
	}
	return "", false
}

// ignored are the GraphQL ignored tokens put between tokens: whitespace,
// line ends, commas, comments and the byte order mark.
var ignored = []string{" ", "\t", "\n", "\r\n", "\r", ",", " , ", "# a comment\n", "#\r", "\ufeff", "  \n\t"}

// layOut writes tokens with ignored tokens between them, changing token
// change (none when change < 0): a name gets a letter, a number a digit,
// a string a first character.
func layOut(rng *rand.Rand, tokens []token, change int) string {
	var b strings.Builder
	for i, tok := range tokens {
		if i > 0 || rng.IntN(2) == 0 {
			for n := 1 + rng.IntN(2); n > 0; n-- {
				b.WriteString(ignored[rng.IntN(len(ignored))])
			}
		}
		text := tok.text
		if i == change {
			text = changed(tok)
		}
		b.WriteString(text)
	}
	if rng.IntN(2) == 0 || b.Len() == 0 { // a query of ignored tokens only is still one
		b.WriteString(ignored[rng.IntN(len(ignored))])
	}
	return b.String()
}

// changeable picks a token layOut can change, if any.
func changeable(rng *rand.Rand, tokens []token) (int, bool) {
	var can []int
	for i, tok := range tokens {
		if changed(tok) != tok.text {
			can = append(can, i)
		}
	}
	if len(can) == 0 {
		return 0, false
	}
	return can[rng.IntN(len(can))], true
}

// changed is tok written with another value.
func changed(tok token) string {
	switch tok.kind {
	case lexer.Name:
		return tok.text + "x"
	case lexer.Int, lexer.Float:
		if rest, neg := strings.CutPrefix(tok.text, "-"); neg {
			return "-1" + rest
		}
		return "1" + tok.text
	case lexer.String:
		return `"z` + tok.text[1:]
	case lexer.BlockString:
		return `"""z` + tok.text[3:]
	}
	return tok.text
}

// decodeObject decodes vars as the cache does, numbers as written; false
// when they are not a JSON object.
func decodeObject(vars string) (map[string]any, bool) {
	dec := json.NewDecoder(strings.NewReader(vars))
	dec.UseNumber()
	var v map[string]any
	if dec.Decode(&v) != nil || dec.More() || v == nil {
		return nil, false
	}
	return v, true
}

// shuffled writes v as JSON with the keys of every object in a random
// order and random whitespace.
func shuffled(rng *rand.Rand, v any) string {
	var b strings.Builder
	var write func(v any)
	space := func() {
		b.WriteString([]string{"", " ", "\n", "\t", "  "}[rng.IntN(5)])
	}
	write = func(v any) {
		space()
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			b.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				space()
				name, _ := json.Marshal(k)
				b.Write(name)
				space()
				b.WriteByte(':')
				write(v[k])
			}
			space()
			b.WriteByte('}')
		case []any:
			b.WriteByte('[')
			for i, e := range v {
				if i > 0 {
					b.WriteByte(',')
				}
				write(e)
			}
			b.WriteByte(']')
		default:
			e, _ := json.Marshal(v)
			b.Write(e)
		}
		space()
	}
	write(v)
	return b.String()
}
