package upstream

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Params is a flattened parameter set: the exact keys and values sent in the
// form body, before PublicKey and Signature are added.
type Params map[string]string

// Flatten turns nested parameters into the upstream's flat form keys:
// arrays become zero-based indexed keys (Tag.0, Tag.1), objects dotted keys
// (SortCondition.Field), booleans true/false, integers decimal and floats the
// shortest decimal without exponent. Nil values and empty strings are dropped.
//
// Supported value types are string, bool, the integer types, float32,
// float64, []string, []any, map[string]any and pointers to the scalar types.
func Flatten(in map[string]any) (Params, error) {
	out := Params{}
	for k, v := range in {
		if err := flattenInto(out, k, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func flattenInto(out Params, key string, v any) error {
	switch v := v.(type) {
	case nil:
	case string:
		if v != "" {
			out[key] = v
		}
	case *string:
		if v != nil {
			return flattenInto(out, key, *v)
		}
	case bool:
		out[key] = strconv.FormatBool(v)
	case *bool:
		if v != nil {
			out[key] = strconv.FormatBool(*v)
		}
	case int:
		out[key] = strconv.Itoa(v)
	case *int:
		if v != nil {
			out[key] = strconv.Itoa(*v)
		}
	case int64:
		out[key] = strconv.FormatInt(v, 10)
	case int32:
		out[key] = strconv.FormatInt(int64(v), 10)
	case uint:
		out[key] = strconv.FormatUint(uint64(v), 10)
	case uint64:
		out[key] = strconv.FormatUint(v, 10)
	case float64:
		out[key] = strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		out[key] = strconv.FormatFloat(float64(v), 'f', -1, 32)
	case []string:
		for i, s := range v {
			if err := flattenInto(out, key+"."+strconv.Itoa(i), s); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := flattenInto(out, key+"."+strconv.Itoa(i), e); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range v {
			if err := flattenInto(out, key+"."+k, e); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("upstream: cannot encode parameter %s of type %T", key, v)
	}
	return nil
}

// StringToSign returns what UCloud's scheme hashes: every key of params
// (which must already hold PublicKey and must not hold Signature) in plain
// byte order, each followed by its value, with no separators or escaping,
// then the private key.
func StringToSign(params Params, privateKey string) string {
	keys := make([]string, 0, len(params))
	n := len(privateKey)
	for k, v := range params {
		keys = append(keys, k)
		n += len(k) + len(v)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.Grow(n)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(params[k])
	}
	b.WriteString(privateKey)
	return b.String()
}

// Sign returns the lower-case hex SHA-1 of StringToSign(params, privateKey).
// It is a pure function: no clock, no randomness, no I/O.
func Sign(params Params, privateKey string) string {
	sum := sha1.Sum([]byte(StringToSign(params, privateKey)))
	return hex.EncodeToString(sum[:])
}

// SignedForm returns the form body for params: params plus PublicKey and
// Signature, URL-encoded with keys in sorted order. params is not modified.
func SignedForm(params Params, publicKey, privateKey string) string {
	v := make(url.Values, len(params)+2)
	signed := make(Params, len(params)+1)
	for k, s := range params {
		v.Set(k, s)
		signed[k] = s
	}
	signed["PublicKey"] = publicKey
	v.Set("PublicKey", publicKey)
	v.Set("Signature", Sign(signed, privateKey))
	return v.Encode()
}

// Params flattens the request into the parameters sent for it, Action and
// Region included. defaultRegion is used when the request names none.
func (r *DescribeCommunityImagesRequest) Params(defaultRegion string) (Params, error) {
	region := r.Region
	if region == "" {
		region = defaultRegion
	}
	in := map[string]any{
		"Action":           ActionDescribeCommunityImages,
		"Region":           region,
		"CompShareImageId": r.CompShareImageId,
		"GroupId":          r.GroupId,
		"Name":             r.Name,
		"Author":           r.Author,
		"FuzzySearch":      r.FuzzySearch,
		"Tag":              r.Tag,
		"IsFree":           r.IsFree,
		"IsOfficial":       r.IsOfficial,
		"IfAutoStart":      r.IfAutoStart,
		"Offset":           r.Offset,
		"Limit":            r.Limit,
	}
	if r.SortCondition != nil {
		in["SortCondition"] = map[string]any{
			"Field": string(r.SortCondition.Field),
			"ASC":   r.SortCondition.ASC,
		}
	}
	return Flatten(in)
}

// CanonicalKey returns a string that is equal for two requests exactly when
// they send the same parameters to the same region: the sorted, encoded form
// of Params. It is what identical calls are deduplicated by.
func (r *DescribeCommunityImagesRequest) CanonicalKey(defaultRegion string) string {
	p, err := r.Params(defaultRegion)
	if err != nil {
		return ""
	}
	return encodeParams(p)
}

// encodeParams URL-encodes p with its keys in sorted order.
func encodeParams(p Params) string {
	v := make(url.Values, len(p))
	for k, s := range p {
		v.Set(k, s)
	}
	return v.Encode()
}
