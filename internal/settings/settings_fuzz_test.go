package settings

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/testkit"
)

// FuzzSetting gives one setting of the table an arbitrary value, through
// the environment or through its flag, and loads the settings as the
// server does (Load: parse, then Validate). It proves that Load never
// panics; that an error names the setting (its variable or its flag);
// that a secret (COMPSHARE_PRIVATE_KEY, FEDERATION_SECRET, the password
// of REDIS_URL) shows in no error, in nothing Load writes, and in no log
// line of the settings; and that an accepted value, written back as the
// setting's text (what -h and the docs show), loads to the same settings.
func FuzzSetting(f *testing.F) {
	defaults := Defaults()
	table := defaults.Table()
	for _, seed := range []struct {
		name, value, secret string
		flag                bool
	}{
		{"PORT", "8080", "", false}, {"PORT", " 70000 ", "", true}, {"PORT", "0x1F", "", false},
		{"COMPSHARE_TIMEOUT", "1h2m3.5s", "", false}, {"COMPSHARE_TIMEOUT", "9223372036854775807ns", "", true}, {"OPERATION_TIMEOUT", "soon", "", false},
		{"COMPSHARE_QPS", "1e300", "", false}, {"COMPSHARE_QPS", "NaN", "", true}, {"LIVE_POLL_SHARE", "0x1p-2", "", false},
		{"MAX_BODY_BYTES", "-9223372036854775808", "", false}, {"INTROSPECTION", "T", "", true},
		{"LOG_LEVEL", "debug+2", "", false}, {"LOG_LEVEL", "WARN-1", "", true}, {"LOG_FORMAT", " JSON ", "", false},
		{"METRICS_ADDR", "", "", false}, {"METRICS_ADDR", "[::1]:9090", "", true}, {"METRICS_ADDR", ":65536", "", false},
		{"CORS_ALLOWED_ORIGINS", "https://A.example:443/, http://b.example:8080", "", false},
		{"CORS_ALLOWED_ORIGINS", "*, https://ok.example", "", true}, {"CORS_ALLOWED_ORIGINS", "https://exa mple", "", false},
		{"TRUSTED_PROXIES", "10.0.0.0/8, ::ffff:10.0.0.1, fd00::/8", "", false}, {"TRUSTED_PROXIES", "::ffff:10.0.0.0/95", "", true},
		{"TRUSTED_PROXIES", "fe80::1%eth0", "", false},
		{"REDIS_URL", "redis", "hunter2-s3cret-pw", false}, {"REDIS_URL", "http", "hunter2-s3cret-pw", true},
		{"REDIS_URL", "REDIS", "hunter2-s3cret-pw", true}, {"REDIS_URL", "rediss", "p%40ss-hunter2-xx", false},
		{"COMPSHARE_PRIVATE_KEY", "", "priv-hunter2-0123456789", false}, {"COMPSHARE_PRIVATE_KEY", " ", "priv-hunter2-0123456789", true},
		{"FEDERATION_SECRET", "x", "fed-hunter2-0123456789", true}, {"COMPSHARE_PUBLIC_KEY", "pub", "", false},
		{"PERSISTED_OPERATIONS_ONLY", "true", "", false}, {"MAX_DEPTH", "-1", "", true},
	} {
		f.Add(seed.name, seed.value, seed.secret, seed.flag)
	}
	f.Fuzz(func(t *testing.T, name, value, secret string, viaFlag bool) {
		e := entry(table, name)
		secret = testkit.SecretLike(secret)
		v, hidden := value, ""
		switch {
		case e.Secret:
			v, hidden = value+secret, secret
		case e.Name == "REDIS_URL":
			// value is the scheme: a password of a URL of any scheme.
			v, hidden = scheme(value)+"://user:"+secret+"@cache:6379/0", secret
		}
		vars := map[string]string{}
		switch e.Name { // the key that goes with it, so that the pair can load
		case "COMPSHARE_PRIVATE_KEY":
			vars["COMPSHARE_PUBLIC_KEY"] = "pub"
		case "COMPSHARE_PUBLIC_KEY":
			vars["COMPSHARE_PRIVATE_KEY"] = "priv"
		}
		var args []string
		if viaFlag {
			args = []string{"-" + e.Flag() + "=" + v}
		} else {
			vars[e.Name] = v
		}
		var out bytes.Buffer
		s, err := Load(args, env(vars), &out)
		if hidden != "" {
			assert.False(t, strings.Contains(out.String(), hidden), "Load wrote the secret of %s: %.300s", e.Name, out.String())
		}
		if err != nil {
			msg := err.Error()
			assert.True(t, strings.Contains(msg, e.Name) || strings.Contains(msg, "-"+e.Flag()), "%q does not name %s", msg, e.Name)
			if hidden != "" {
				assert.NotContains(t, msg, hidden, "the error shows the secret of %s", e.Name)
			}
			return
		}

		var got Entry
		for _, g := range s.Table() {
			if g.Name == e.Name {
				got = g
			}
		}
		require.Equal(t, e.Name, got.Name)
		if hidden != "" {
			var log bytes.Buffer
			slog.New(slog.NewJSONHandler(&log, nil)).Info("settings", "settings", s)
			assert.NotContains(t, log.String(), hidden, "the log line of the settings shows the secret of %s", e.Name)
			assert.NotContains(t, got.Shown(), hidden)
		}

		// Written back, the value loads to the same settings.
		vars[e.Name] = got.Value()
		again, err := Load(nil, env(vars), &out)
		require.NoError(t, err, "%s=%q, written back as %q", e.Name, v, got.Value())
		assert.Equal(t, s, again, "%s=%q, written back as %q", e.Name, v, got.Value())
	})
}

// entry is the setting of table named name or, for a name the table does
// not have, one chosen by its bytes: the fuzzer reaches every setting,
// and a seed names its setting whatever the table's order.
func entry(table []Entry, name string) Entry {
	n := 0
	for i, e := range table {
		if e.Name == name {
			return e
		}
		if i < len(name) {
			n += int(name[i])
		}
	}
	return table[n%len(table)]
}

// scheme turns the fuzzer's string into a URL scheme (letters, digits, +
// - .), of any case.
func scheme(raw string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '+', r == '-', r == '.':
			return r
		}
		return -1
	}, raw)
}
