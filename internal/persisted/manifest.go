package persisted

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

// apolloFormat is the format an Apollo persisted query manifest names.
const apolloFormat = "apollo-persisted-query-manifest"

// Operation is one entry of a manifest.
type Operation struct {
	// ID names the operation: Apollo's id (by default the SHA-256 hex of
	// Body), or the key of Relay's map.
	ID string
	// Name is the operation's name: the manifest's for Apollo; for Relay,
	// or when Apollo's is empty, the name of the document's first
	// operation. It is "" for an anonymous operation.
	Name string
	// Type is "query", "mutation" or "subscription": the manifest's for
	// Apollo; for Relay, or when Apollo's is empty, the type of the
	// document's first operation.
	Type string
	// Body is the document, exactly as the manifest has it.
	Body string
}

// Manifest is a safelist of operations, each parsed and validated against a
// schema when it was read. It is read-only, so safe for concurrent use. A nil
// *Manifest lists nothing.
type Manifest struct {
	ops    []Operation
	byID   map[string]int
	byHash map[string]int // SHA-256 hex of Body; the first operation with that body
	byBody map[string]int
}

// LoadManifest reads the manifest at path (see [ParseManifest]). Its errors
// name the file.
func LoadManifest(path string, schema *ast.Schema) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("persisted operations: %w", err) // names path
	}
	m, err := parseManifest(data, schema)
	if err != nil {
		return nil, fmt.Errorf("persisted operations: %s: %w", path, err)
	}
	return m, nil
}

// ParseManifest reads a manifest in either of two formats, told apart by a
// top-level "format" key:
//
//   - Apollo's persisted query list:
//     {"format": "apollo-persisted-query-manifest", "version": 1,
//     "operations": [{"id": "…", "name": "…", "type": "query", "body": "…"}]}.
//     Every operation needs an id and a body; ids are unique.
//   - Relay's map of ids to documents: {"<id>": "<document>", …}.
//
// Every body must parse and validate against schema; the error names the
// first operation that does not, and says why. A manifest with no operations
// is an error.
func ParseManifest(data []byte, schema *ast.Schema) (*Manifest, error) {
	m, err := parseManifest(data, schema)
	if err != nil {
		return nil, fmt.Errorf("persisted operations: %w", err)
	}
	return m, nil
}

// Lookup returns the operation whose id is id or, failing that, whose body
// has the SHA-256 hex id (so the hash an APQ client sends for a listed
// document finds it).
func (m *Manifest) Lookup(id string) (Operation, bool) {
	if m == nil {
		return Operation{}, false
	}
	if i, ok := m.byID[id]; ok {
		return m.ops[i], true
	}
	if i, ok := m.byHash[strings.ToLower(id)]; ok {
		return m.ops[i], true
	}
	return Operation{}, false
}

// lookupHash is Lookup that tries the body's hash first: what an APQ hash
// means. The two differ only when an id is some other body's hash.
func (m *Manifest) lookupHash(hash string) (Operation, bool) {
	if m == nil {
		return Operation{}, false
	}
	if i, ok := m.byHash[hash]; ok {
		return m.ops[i], true
	}
	return m.Lookup(hash)
}

// Resolve returns the document a request's documentId names, as the
// Extension resolves it: an id, or "sha256:" and the hash of a listed
// body.
func (m *Manifest) Resolve(id string) (string, bool) {
	op, ok := m.Lookup(id)
	if hex, isHash := strings.CutPrefix(id, "sha256:"); isHash && !ok {
		op, ok = m.lookupHash(strings.ToLower(hex))
	}
	return op.Body, ok
}

// Contains reports whether body is, byte for byte, the body of a listed
// operation.
func (m *Manifest) Contains(body string) bool {
	if m == nil {
		return false
	}
	_, ok := m.byBody[body]
	return ok
}

// Len returns the number of operations listed.
func (m *Manifest) Len() int {
	if m == nil {
		return 0
	}
	return len(m.ops)
}

// Names returns the names of the operations listed, each once, in the
// manifest's order; anonymous operations have none.
func (m *Manifest) Names() []string {
	if m == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, op := range m.ops {
		if op.Name != "" && !seen[op.Name] {
			seen[op.Name] = true
			out = append(out, op.Name)
		}
	}
	return out
}

// parseManifest is ParseManifest without the package's prefix on errors.
func parseManifest(data []byte, schema *ast.Schema) (*Manifest, error) {
	if schema == nil {
		return nil, errors.New("no schema to validate the manifest against")
	}
	members, err := objectMembers(data)
	if err != nil {
		return nil, err
	}
	var ops []Operation
	if hasKey(members, "format") {
		ops, err = apolloOperations(data)
	} else {
		ops, err = relayOperations(members)
	}
	if err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, errors.New("the manifest lists no operations")
	}

	m := &Manifest{
		ops:    ops,
		byID:   make(map[string]int, len(ops)),
		byHash: make(map[string]int, len(ops)),
		byBody: make(map[string]int, len(ops)),
	}
	for i := range m.ops {
		op := &m.ops[i]
		if _, dup := m.byID[op.ID]; dup {
			return nil, fmt.Errorf("%s: the id is listed more than once", describe(*op))
		}
		if err := check(op, schema); err != nil {
			return nil, fmt.Errorf("%s: %w", describe(*op), err)
		}
		m.byID[op.ID] = i
		if _, seen := m.byBody[op.Body]; !seen {
			m.byBody[op.Body] = i
			m.byHash[hashOf(op.Body)] = i
		}
	}
	return m, nil
}

// check parses and validates op's body against schema, and fills in its name
// and type from the document where the manifest left them out.
func check(op *Operation, schema *ast.Schema) error {
	doc, err := parser.ParseQuery(&ast.Source{Name: op.ID, Input: op.Body})
	if err != nil {
		return errors.New(messages(err))
	}
	if len(doc.Operations) == 0 {
		return errors.New("the document has no operation")
	}
	first := doc.Operations[0]
	if op.Name == "" {
		op.Name = first.Name
	}
	switch ast.Operation(op.Type) {
	case "":
		op.Type = string(first.Operation)
	case ast.Query, ast.Mutation, ast.Subscription:
	default:
		return fmt.Errorf("type %q is not query, mutation or subscription", clip(op.Type, 64))
	}
	if errs := validator.ValidateWithRules(schema, doc, nil); len(errs) > 0 {
		return errors.New(messages(errs))
	}
	return nil
}

// maxMessages is how many of gqlparser's errors about one document an
// error of the manifest says; the rest are counted.
const maxMessages = 3

// messages is what gqlparser's errors say, without the source name and
// position that their Error methods put first: the first maxMessages,
// each clipped (they quote the document's names, which may be long).
func messages(err error) string {
	var list gqlerror.List
	var one *gqlerror.Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = gqlerror.List{one}
	default:
		return clip(err.Error(), 200)
	}
	msgs := make([]string, 0, min(len(list), maxMessages+1))
	for _, e := range list[:min(len(list), maxMessages)] {
		msgs = append(msgs, clip(strings.TrimSuffix(e.Message, "."), 200))
	}
	if len(list) > maxMessages {
		msgs = append(msgs, fmt.Sprintf("and %d more", len(list)-maxMessages))
	}
	return strings.Join(msgs, "; ")
}

// describe names op in errors: its id, and its name when it has one, each
// clipped.
func describe(op Operation) string {
	if op.Name == "" {
		return fmt.Sprintf("operation %q", clip(op.ID, 64))
	}
	return fmt.Sprintf("operation %q (%s)", clip(op.ID, 64), clip(op.Name, 64))
}

// clip is s, as valid UTF-8, cut to at most n bytes and an ellipsis: what
// of a manifest an error may quote (a manifest may be large, and its
// errors go to the log).
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// apolloOperations reads an Apollo persisted query manifest.
func apolloOperations(data []byte) ([]Operation, error) {
	var manifest struct {
		Format     string          `json:"format"`
		Version    json.RawMessage `json:"version"`
		Operations []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Type string `json:"type"`
			Body string `json:"body"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(data, &manifest); err != nil {
		return nil, fmt.Errorf("not an Apollo persisted query manifest: %w", err)
	}
	if manifest.Format != apolloFormat {
		return nil, fmt.Errorf("format %q is not %q", clip(manifest.Format, 64), apolloFormat)
	}
	if v := string(bytes.TrimSpace(manifest.Version)); v != "1" {
		if v == "" {
			return nil, errors.New("the manifest has no version; want 1")
		}
		return nil, fmt.Errorf("version %s is not supported; want 1", clip(v, 64))
	}
	ops := make([]Operation, 0, len(manifest.Operations))
	for i, o := range manifest.Operations {
		op := Operation{ID: o.ID, Name: o.Name, Type: o.Type, Body: o.Body}
		switch {
		case op.ID == "" && op.Name == "":
			return nil, fmt.Errorf("operations[%d]: the id is empty", i)
		case op.ID == "":
			return nil, fmt.Errorf("operations[%d] (%s): the id is empty", i, clip(op.Name, 64))
		case op.Body == "":
			return nil, fmt.Errorf("%s: the body is empty", describe(op))
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// relayOperations reads Relay's map of ids to documents.
func relayOperations(members []member) ([]Operation, error) {
	ops := make([]Operation, 0, len(members))
	for _, mb := range members {
		op := Operation{ID: mb.key}
		if err := json.Unmarshal(mb.value, &op.Body); err != nil {
			return nil, fmt.Errorf("%s: a Relay manifest maps ids to documents, and this is not a string", describe(op))
		}
		switch {
		case op.ID == "":
			return nil, errors.New(`operation "": the id is empty`)
		case op.Body == "":
			return nil, fmt.Errorf("%s: the body is empty", describe(op))
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// member is one key and value of a JSON object.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of the JSON object data, in order, all
// of them: a key that comes twice comes twice (where encoding/json would keep
// the last and say nothing), so a Relay id listed twice is caught.
func objectMembers(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("the manifest is not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("the manifest is not a JSON object")
	}
	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("the manifest is not JSON: %w", err)
		}
		key, _ := tok.(string) // inside an object, a token before a value is its key
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("the manifest is not JSON: %w", err)
		}
		members = append(members, member{key: key, value: value})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("the manifest is not JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("the manifest has more after its JSON object")
	}
	return members, nil
}

func hasKey(members []member, key string) bool {
	for _, m := range members {
		if m.key == key {
			return true
		}
	}
	return false
}

// hashOf is the SHA-256 hex of a document: its APQ hash.
func hashOf(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}
