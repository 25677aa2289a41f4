package model

import (
	"encoding/base64"
	"errors"
	"strings"
)

// The type names global IDs carry.
const (
	TypeImageGroup   = "ImageGroup"
	TypeImageVersion = "ImageVersion"
)

// ErrBadID is returned for a global ID that does not decode.
var ErrBadID = errors.New("not a valid global ID")

// GlobalID returns the opaque global ID of the object of type typ with the
// upstream id: base64url of "typ:id", without padding.
func GlobalID(typ, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + id))
}

// ParseGlobalID returns the type and upstream id a global ID holds, or
// ErrBadID when it does not decode to a known type and a non-empty id, or
// is not the ID GlobalID writes for them (another spelling of it: other
// padding bits in the last base64 character, a line break, which the
// base64 decoder skips), so that an object has one global ID.
func ParseGlobalID(s string) (typ, id string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", "", ErrBadID
	}
	typ, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" || (typ != TypeImageGroup && typ != TypeImageVersion) || GlobalID(typ, id) != s {
		return "", "", ErrBadID
	}
	return typ, id, nil
}
