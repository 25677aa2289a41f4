package upstream

import (
	"bytes"
	"encoding/json"

	"github.com/bytedance/sonic"
)

// bodyJSON is sonic's std-compatible configuration (control characters in
// strings refused, keys matched case-insensitively, Unmarshaler methods
// honoured) except that decoded strings point into the body they were
// decoded from instead of being copied out one by one: 293 allocations for
// the reference page instead of 1,343.
var bodyJSON = sonic.Config{
	EscapeHTML:       true,
	SortMapKeys:      true,
	CompactMarshaler: true,
	ValidateString:   true,
}.Froze()

// decodeBody decodes a 2xx response body into out.
//
// Decoding the page is on every request's critical path: it runs after the
// upstream has answered and before any resolver can go on. encoding/json
// reads a 20-group page (about 49 KB, mostly CJK text) at about 40 MB/s, 1.3
// ms; sonic reads it in about a fifth of that (BenchmarkDecodePage).
// sonic's Unmarshal decodes a string copy of body, which the decoded
// strings then share, so the caller may reuse body at once
// (TestDecodeBodyCopiesStrings); copying it here as well would double the
// bytes a page allocates. TestDecodeBodyMatchesStd and
// FuzzDecodeBody pin the result to encoding/json's; the classes of bodies
// sonic reads otherwise (readsOtherwise) are decoded by encoding/json.
func decodeBody(body []byte, out *DescribeCommunityImagesResponse) error {
	if readsOtherwise(body) {
		return json.Unmarshal(body, out)
	}
	return bodyJSON.Unmarshal(body, out)
}

// DecodeResponse decodes a response body (the upstream's JSON, or a
// response encoded with encoding/json) with the client's decoder: what a
// shared cache tier reads its entries back with. Like decodeBody, the
// decoded strings share a copy of body, not body itself.
func DecodeResponse(body []byte) (*DescribeCommunityImagesResponse, error) {
	out := new(DescribeCommunityImagesResponse)
	unmarshal := bodyJSON.Unmarshal
	if readsOtherwise(body) {
		unmarshal = json.Unmarshal
	}
	if err := unmarshal(body, out); err != nil {
		return nil, err
	}
	out.Normalize()
	return out, nil
}

// foldedRunes are the UTF-8 encodings of the four runes that encoding/json,
// matching object keys to fields case-insensitively, folds to an ASCII
// letter (U+0130 İ and U+0131 ı to I, U+017F ſ to S, U+212A K to K); sonic
// folds ASCII letters only, so a key such as "ſtatus" sets Status for one
// and nothing for the other (FuzzDecodeBody found it).
var foldedRunes = [][]byte{{0xc4, 0xb0}, {0xc4, 0xb1}, {0xc5, 0xbf}, {0xe2, 0x84, 0xaa}}

// readsOtherwise reports whether body is one that sonic reads otherwise
// than encoding/json, which then decodes it. There are two classes
// (FuzzDecodeBody found both):
//
//   - a key only encoding/json matches: the body holds one of foldedRunes,
//     as itself or as a \u escape;
//   - an invalid escape (\0, \x, \u00zz) in the string of a field no type
//     has: sonic skips such a value without checking its escapes once
//     enough of the body follows it, and decodes the body, where
//     encoding/json refuses it.
//
// No upstream answer is in either class (its keys are ASCII, its escapes
// valid, and these runes are rare in its text); the scan costs the
// reference page about 9 µs, 8% of its decoding (BenchmarkDecodePage).
func readsOtherwise(body []byte) bool {
	for _, r := range foldedRunes {
		if bytes.Contains(body, r) {
			return true
		}
	}
	// Each escape, left to right, as a string's reader takes them:
	// backslashes are common (encoding/json escapes <, > and & as \u003c
	// and the like). A backslash outside a string makes the body invalid
	// whatever follows it, and either decoder refuses it.
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '\\')
		if j < 0 {
			return false
		}
		i += j + 1
		if i == len(body) {
			return true
		}
		switch body[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i++
		case 'u':
			if len(body) < i+5 || !isHex(body[i+1:i+5]) {
				return true
			}
			switch string(body[i : i+5]) {
			case "u0130", "u0131", "u017f", "u017F", "u212a", "u212A":
				return true
			}
			i += 5
		default:
			return true
		}
	}
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
