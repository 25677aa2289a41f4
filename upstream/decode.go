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
// FuzzDecodeBody pin the result to encoding/json's; the one class of
// bodies sonic reads otherwise (foldsBeyondASCII) is decoded by
// encoding/json.
func decodeBody(body []byte, out *DescribeCommunityImagesResponse) error {
	if foldsBeyondASCII(body) {
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
	if foldsBeyondASCII(body) {
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

// foldsBeyondASCII reports whether body holds one of foldedRunes, as
// itself or as a \u escape: then it may hold a key only encoding/json
// matches, and encoding/json decodes it. No upstream answer holds one (the
// upstream's keys are ASCII, and these runes are rare in its text); the
// scan costs the reference page a few microseconds, about 3% of its
// decoding (BenchmarkDecodePage).
func foldsBeyondASCII(body []byte) bool {
	for _, r := range foldedRunes {
		if bytes.Contains(body, r) {
			return true
		}
	}
	// The escapes: \u0130, \u0131, \u017f and \u212a, hex digits in either
	// case. Backslashes are common (encoding/json escapes <, > and & as
	// \u003c and the like): each is looked at where it is found.
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '\\')
		if j < 0 || len(body) < i+j+6 {
			return false
		}
		i += j + 1
		switch string(body[i : i+5]) {
		case "u0130", "u0131", "u017f", "u017F", "u212a", "u212A":
			return true
		}
	}
}
