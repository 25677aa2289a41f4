package access_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/testkit"
)

// The places FuzzParseKeys writes a secret into a keys file: where an
// operator pastes a key by mistake, and one right entry for it.
const (
	secretAlone      = iota // the key on a line of its own
	secretAsHash            // name:key, the key in place of its hash
	secretAfterSpace        // name key, no colon
	secretAsHeader          // Authorization: Bearer key
	secretCommented         // a comment that holds the key
	secretHashed            // k0:sha256(key), as it should be
	secretAsName            // key:, the key where its name goes
	secretPlaces
)

// hexRun is a run of hex digits as long as a SHA-256 in hex.
var hexRun = regexp.MustCompile(`[0-9a-fA-F]{64}`)

// FuzzParseKeys parses arbitrary keys files into which it writes a
// secret-looking key, in each of the places above, before or after the
// fuzzed lines. It proves that ParseKeys never panics; that an error never
// shows the key, nor a hash, nor anything written after a colon; and that
// a file it accepts holds one key for each line that is not blank or a
// comment, the right entry's key matching its name.
func FuzzParseKeys(f *testing.F) {
	for _, seed := range []struct {
		file   string
		secret string
		place  uint8
		before bool
	}{
		{"ci:" + sha("ci-key") + "\n", "sk_live_4f9a2c7e1b3d5f60", secretAlone, false},
		{"# keys\nweb : " + strings.ToUpper(sha("web-key")) + "\r\n", "sk_live_4f9a2c7e1b3d5f60", secretAsHash, true},
		{"ci:" + sha("ci-key"), "ig_9f8e7d6c5b4a3f2e1d0c", secretAfterSpace, false},
		{"", "0123456789abcdef0123456789abcdef", secretAsHeader, false},
		{"ci:" + sha("ci-key"), "AKIAIOSFODNN7EXAMPLE", secretCommented, false},
		{"ci:" + sha("ci-key") + "\nweb:" + sha("web-key"), "sk_live_4f9a2c7e1b3d5f60", secretHashed, false},
		{"k0:" + sha("sk_live_4f9a2c7e1b3d5f60"), "sk_live_4f9a2c7e1b3d5f60", secretHashed, false},
		{"ci:" + sha("x") + "\nci:" + sha("y"), "sk_live_4f9a2c7e1b3d5f60", secretAsHash, false},
		{"clé:" + sha("x"), sha("z"), secretAlone, true},
		{"ci:" + strings.Repeat("a", 70_000), "sk_live_4f9a2c7e1b3d5f60", secretAsHash, false},
		{"ci:" + sha("ci-key")[:63] + "g", "sk_live_4f9a2c7e1b3d5f60", secretAsHash, false},
		{"", "sk_live_4f9a2c7e1b3d5f60", secretAsName, false},
		{sha("ci-key") + ":ci", "sk_live_4f9a2c7e1b3d5f60", secretHashed, true},
	} {
		f.Add([]byte(seed.file), seed.secret, seed.place, seed.before)
	}
	f.Fuzz(func(t *testing.T, file []byte, raw string, place uint8, before bool) {
		secret := testkit.SecretLike(raw)
		var line string
		switch place % secretPlaces {
		case secretAlone:
			line = secret
		case secretAsHash:
			line = "pasted:" + secret
		case secretAfterSpace:
			line = "pasted " + secret
		case secretAsHeader:
			line = "Authorization: Bearer " + secret
		case secretCommented:
			line = "# the key is " + secret
		case secretHashed:
			line = "k0:" + sha(secret)
		case secretAsName:
			line = secret + ":"
		}
		content := append(append([]byte{}, file...), "\n"+line+"\n"...)
		if before {
			content = append([]byte(line+"\n"), file...)
		}

		keys, err := access.ParseKeys(bytes.NewReader(content))
		if err != nil {
			assert.Nil(t, keys)
			msg := err.Error()
			if !bytes.Contains(file, []byte(secret)) { // the fuzzed lines may name a key after it
				assert.NotContains(t, msg, secret, "the error shows the key")
			}
			assert.False(t, hexRun.MatchString(msg), "the error shows a hash: %s", msg)
			lines := strings.Split(string(content), "\n")
			for _, l := range lines {
				_, after, ok := strings.Cut(l, ":")
				if after = strings.TrimSpace(after); ok && len(after) >= 16 && !named(lines, after) {
					assert.NotContains(t, msg, after, "the error shows what follows a colon")
				}
			}
			return
		}
		require.NotNil(t, keys)
		assert.Equal(t, entries(content), keys.Len())
		if place%secretPlaces == secretHashed {
			name, ok := keys.Match(secret)
			assert.True(t, ok)
			assert.Equal(t, "k0", name)
		}
	})
}

// named reports whether s is part of what some line has before its colon:
// a key's name, which errors name.
func named(lines []string, s string) bool {
	for _, l := range lines {
		if name, _, ok := strings.Cut(l, ":"); ok && strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// entries counts the lines of a keys file that are neither blank nor
// comments.
func entries(content []byte) int {
	n := 0
	for _, l := range strings.Split(string(content), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// sha is the hex SHA-256 of key.
func sha(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}
