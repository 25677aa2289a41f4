package access

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/compshare/imagegraph/internal/codes"
)

// maxKeyNameLen is the longest key name a keys file may hold.
const maxKeyNameLen = 64

// Keys is the set of API keys a server accepts: each a name and the SHA-256
// of the key. The keys themselves are never held. Safe for concurrent use; a
// nil *Keys accepts no key.
type Keys struct {
	entries []keyEntry
}

// keyEntry is one accepted key.
type keyEntry struct {
	name string
	hash [sha256.Size]byte
}

// LoadKeys reads a keys file (see ParseKeys for its format). Its errors name
// the file and line ("path:line: what is wrong") and never show a hash.
func LoadKeys(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("API keys: %w", err)
	}
	defer f.Close()
	return parseKeys(f, path+":")
}

// ParseKeys reads API keys, one "name:sha256hex" a line, where hex is the 64
// hex digits (either case) of the SHA-256 of the key, as
// `printf %s "$KEY" | sha256sum` prints it. A name is 1 to 64 characters of
// A-Z a-z 0-9 . _ -; it is what logs and rate limits know the client by.
// Blank lines and lines starting with # are ignored, spaces around a line and
// around its two parts are trimmed. A repeated name or hash, and a file with
// no keys, are refused. Errors say "line N: what is wrong" and never show a
// hash or anything that might be a key.
func ParseKeys(r io.Reader) (*Keys, error) {
	return parseKeys(r, "")
}

// parseKeys does ParseKeys's work, with where ("path:" or "") before "line N".
func parseKeys(r io.Reader, where string) (*Keys, error) {
	type seen struct {
		line int
		name string
	}
	var (
		k      Keys
		names  = map[string]int{}
		hashes = map[[sha256.Size]byte]seen{}
	)
	pos := func(line int) string {
		if where == "" {
			return fmt.Sprintf("line %d", line)
		}
		return fmt.Sprintf("%s%d", where, line)
	}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, hexSum, ok := strings.Cut(text, ":")
		if !ok {
			// Perhaps a key pasted in place of its hash: do not repeat it.
			return nil, fmt.Errorf("%s: want name:sha256hex", pos(line))
		}
		name, hexSum = strings.TrimSpace(name), strings.TrimSpace(hexSum)
		if !validKeyName(name) {
			return nil, fmt.Errorf("%s: the key name must be 1 to %d characters of A-Z a-z 0-9 . _ -", pos(line), maxKeyNameLen)
		}
		var e keyEntry
		e.name = name
		if len(hexSum) != hex.EncodedLen(sha256.Size) {
			return nil, fmt.Errorf("%s: %s: want the SHA-256 of the key as %d hex digits, not the key itself", pos(line), keyRef(name), hex.EncodedLen(sha256.Size))
		}
		if _, err := hex.Decode(e.hash[:], []byte(hexSum)); err != nil {
			return nil, fmt.Errorf("%s: %s: the SHA-256 holds a character that is not a hex digit", pos(line), keyRef(name))
		}
		if first, dup := names[name]; dup {
			return nil, fmt.Errorf("%s: the name of %s is already used on line %d", pos(line), keyRef(name), first)
		}
		if first, dup := hashes[e.hash]; dup {
			return nil, fmt.Errorf("%s: %s has the same hash as %s on line %d", pos(line), keyRef(name), keyRef(first.name), first.line)
		}
		names[name] = line
		hashes[e.hash] = seen{line: line, name: name}
		k.entries = append(k.entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s: the line is too long", pos(line+1))
		}
		if where == "" {
			return nil, fmt.Errorf("API keys: %w", err)
		}
		return nil, fmt.Errorf("%s %w", where, err)
	}
	if len(k.entries) == 0 {
		if where == "" {
			return nil, errors.New("API keys: no keys")
		}
		return nil, fmt.Errorf("%s no keys", where)
	}
	return &k, nil
}

// minSecretLen is the length from which a name could be a key pasted in
// the wrong place (`KEY:`, or a hex key where its name goes): keys are at
// least this long, names usually much shorter.
const minSecretLen = 16

// keyRef is how an error names the key called name: `key "ci"`, or, for a
// name as long as a key, without repeating it (its line says which).
func keyRef(name string) string {
	if len(name) >= minSecretLen {
		return "the key (its name, as long as a key, not repeated)"
	}
	return fmt.Sprintf("key %q", name)
}

// validKeyName reports whether name is 1 to maxKeyNameLen characters of
// A-Z a-z 0-9 . _ -.
func validKeyName(name string) bool {
	if name == "" || len(name) > maxKeyNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Len is the number of keys.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}

// Match returns the name of the key, checking it against every entry in
// constant time (no early exit), so that how long it takes tells nothing of
// which entry, if any, matched. The empty key never matches.
func (k *Keys) Match(key string) (name string, ok bool) {
	if k == nil || key == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range k.entries {
		eq := subtle.ConstantTimeCompare(sum[:], k.entries[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return "", false
	}
	return k.entries[found].name, true
}

// realm is the realm of the WWW-Authenticate challenge Authenticate sends.
const realm = "imagegraph"

// The messages of Authenticate's 401 answers.
const (
	msgKeyRequired = "an API key is required: send Authorization: Bearer <key> or X-Api-Key: <key>"
	msgKeyInvalid  = "invalid API key"
)

// The bodies of Authenticate's 401 answers, built once.
var (
	bodyKeyRequired = unauthenticatedBody(msgKeyRequired)
	bodyKeyInvalid  = unauthenticatedBody(msgKeyInvalid)
)

// unauthenticatedBody is a GraphQL response with one UNAUTHENTICATED error.
func unauthenticatedBody(message string) []byte {
	type ext struct {
		Code string `json:"code"`
	}
	type gqlError struct {
		Message    string `json:"message"`
		Extensions ext    `json:"extensions"`
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep <key> readable
	if err := enc.Encode(struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{Message: message, Extensions: ext{Code: codes.Unauthenticated}}}}); err != nil {
		panic(err) // cannot happen: fixed strings
	}
	return b.Bytes()
}

// Authenticate requires a valid key on every request it wraps, sent as
// "Authorization: Bearer <key>" (scheme in any case) or "X-Api-Key: <key>".
// When either matches one of keys, it sets the Name of the request's Client
// (when Identify put one in the context) and calls next. Otherwise it answers
// 401 with a Bearer challenge, Cache-Control: no-store and a GraphQL-shaped
// JSON body whose error has extensions.code UNAUTHENTICATED. The presented
// key appears in no answer, error or log. OPTIONS requests pass without a key,
// since CORS preflights carry none (CORS answers them first anyway).
//
// A WebSocket upgrade passes without a key too: browsers cannot set headers
// on one, so its key comes in its connection_init message, which the
// GraphQL handler checks with Authorize before it serves anything.
//
// A nil or empty keys accepts no key; leave Authenticate out to turn keys off.
func Authenticate(keys *Keys, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		bearer := bearerToken(r.Header.Get("Authorization"))
		apiKey := strings.TrimSpace(r.Header.Get("X-Api-Key"))
		// Check both, so that which one was sent does not change the time taken.
		nameB, okB := keys.Match(bearer)
		nameK, okK := keys.Match(apiKey)
		if okB || okK {
			if c := ClientFrom(r.Context()); c != nil {
				if okB {
					c.Name = nameB
				} else {
					c.Name = nameK
				}
			}
			next.ServeHTTP(w, r)
			return
		}
		presented := bearer != "" || apiKey != ""
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Type", "application/json")
		body := bodyKeyRequired
		if presented {
			h.Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
			body = bodyKeyInvalid
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(body)
	})
}

// ErrKeyRequired refuses a WebSocket whose connection_init (and upgrade)
// carry no valid key.
var ErrKeyRequired = errors.New("an API key is required: send it in connection_init as {\"Authorization\": \"Bearer <key>\"} or {\"apiKey\": \"<key>\"}, or in the upgrade's Authorization header")

// Authorize checks a WebSocket's key, as Authenticate checks a request's:
// in its connection_init payload ("Authorization": "Bearer <key>", or
// "apiKey" / "X-Api-Key": "<key>") or in its upgrade's headers. On a
// match it names the connection's Client and returns ctx; otherwise
// ErrKeyRequired. The key appears in no error or log.
func (k *Keys) Authorize(ctx context.Context, header http.Header, payload map[string]any) (context.Context, error) {
	str := func(name string) string { s, _ := payload[name].(string); return strings.TrimSpace(s) }
	candidates := []string{
		bearerToken(str("Authorization")), bearerToken(str("authorization")),
		str("apiKey"), str("X-Api-Key"), str("x-api-key"),
		bearerToken(header.Get("Authorization")), strings.TrimSpace(header.Get("X-Api-Key")),
	}
	matched, name := false, ""
	for _, c := range candidates {
		// Check every one, so that which was sent does not change the time taken.
		if n, ok := k.Match(c); ok && !matched {
			matched, name = true, n
		}
	}
	if !matched {
		return ctx, ErrKeyRequired
	}
	if c := ClientFrom(ctx); c != nil {
		c.Name = name
	}
	return ctx, nil
}

// Exempt sends a request that exempt vouches for (a federation router that
// carries its secret, say: a credential of its own) straight to next, its
// Client named name, and every other request to guarded (Authenticate
// around next).
func Exempt(exempt func(*http.Request) bool, name string, next, guarded http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exempt(r) {
			if c := ClientFrom(r.Context()); c != nil {
				c.Name = name
			}
			next.ServeHTTP(w, r)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header,
// or "" when the header holds no bearer token.
func bearerToken(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
