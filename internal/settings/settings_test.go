package settings

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestLoad covers defaults, the environment, flags winning over it, -h,
// and values typed when they are read.
func TestLoad(t *testing.T) {
	t.Parallel()
	s, err := Load(nil, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, Defaults(), s)
	assert.True(t, s.Sandbox())
	assert.Equal(t, "sandbox", s.Mode())

	s, err = Load([]string{"-compshare-retries", "5"}, env(map[string]string{
		"PORT": "9000", "COMPSHARE_RETRIES": "1", "COMPSHARE_TIMEOUT": "3s", "INTROSPECTION": "false",
		"TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 ", "CORS_ALLOWED_ORIGINS": "https://App.example:443/, http://localhost:3000",
		"LOG_LEVEL": "debug", "LOG_FORMAT": "JSON", "MAX_DEPTH": "7", "CACHE_TTL": "10s",
	}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 9000, s.Port)
	assert.Equal(t, 5, s.Retries, "flags win over the environment")
	assert.Equal(t, 3*time.Second, s.Timeout)
	assert.False(t, s.Introspection)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}, s.TrustedProxies)
	assert.Equal(t, []string{"https://app.example", "http://localhost:3000"}, s.CORSAllowedOrigins)
	assert.Equal(t, slog.LevelDebug, s.LogLevel)
	assert.Equal(t, LogJSON, s.LogFormat)
	assert.Equal(t, 7, s.Limits.MaxDepth)
	assert.Equal(t, 10*time.Second, s.Cache.TTL)

	// A variable set to "" is not set, except where "" turns a setting off.
	s, err = Load(nil, env(map[string]string{"METRICS_ADDR": "", "PORT": "", "CACHE_TTL": ""}), io.Discard)
	require.NoError(t, err)
	assert.Empty(t, s.MetricsAddr, "METRICS_ADDR= turns metrics off")
	assert.Equal(t, Defaults().Port, s.Port)
	assert.Equal(t, Defaults().Cache.TTL, s.Cache.TTL)
	assert.Equal(t, ":9090", Defaults().MetricsAddr)

	// So is a flag set to "", whatever the variable says, and a boolean
	// flag alone is still true.
	s, err = Load([]string{"-metrics-addr=", "-compshare-base-url=", "-compshare-region", "", "-introspection=false", "-playground"},
		env(map[string]string{"COMPSHARE_REGION": "cn-sh2", "PLAYGROUND": "false"}), io.Discard)
	require.NoError(t, err)
	assert.Empty(t, s.MetricsAddr, "-metrics-addr= turns metrics off")
	assert.Equal(t, Defaults().BaseURL, s.BaseURL)
	assert.Equal(t, "cn-sh2", s.Region, "-compshare-region \"\" leaves the variable's value")
	assert.False(t, s.Introspection)
	assert.True(t, s.Playground)

	var help bytes.Buffer
	_, err = Load([]string{"-h"}, env(map[string]string{"COMPSHARE_PRIVATE_KEY": "secret-from-env"}), &help)
	assert.True(t, errors.Is(err, flag.ErrHelp))
	d := Defaults()
	for _, e := range d.Table() {
		assert.Contains(t, help.String(), e.Name, "-h lists every setting")
		assert.Contains(t, help.String(), "-"+e.Flag())
	}
	assert.Contains(t, help.String(), "default 8080")
	assert.NotContains(t, help.String(), "secret-from-env")
}

// TestLoadRefuses: every setting that cannot work stops the start, naming
// the setting.
func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	for name, m := range map[string]map[string]string{
		"one key without the other": {"COMPSHARE_PUBLIC_KEY": "pub"},
		"private key alone":         {"COMPSHARE_PRIVATE_KEY": "priv"},
		"bad duration":              {"COMPSHARE_TIMEOUT": "soon"},
		"zero timeout":              {"COMPSHARE_TIMEOUT": "0s"},
		"negative retries":          {"COMPSHARE_RETRIES": "-1"},
		"zero in flight":            {"COMPSHARE_MAX_INFLIGHT": "0"},
		"NaN QPS":                   {"COMPSHARE_QPS": "NaN"},
		"infinite QPS":              {"COMPSHARE_QPS": "+Inf"},
		"bad port":                  {"PORT": "70000"},
		"bad bool":                  {"INTROSPECTION": "maybe"},
		"bad level":                 {"LOG_LEVEL": "loud"},
		"bad format":                {"LOG_FORMAT": "xml"},
		"negative depth":            {"MAX_DEPTH": "-1"},
		"negative expanded fields":  {"MAX_EXPANDED_FIELDS": "-1"},
		"negative cost":             {"MAX_COST": "-5"},
		"negative timeout":          {"OPERATION_TIMEOUT": "-1s"},
		"negative in-flight cost":   {"MAX_INFLIGHT_COST": "-1"},
		"negative in-flight wait":   {"INFLIGHT_WAIT": "-1s"},
		"safelist without manifest": {"PERSISTED_OPERATIONS_ONLY": "true"},
		"bad origin":                {"CORS_ALLOWED_ORIGINS": "https://ok.example, not an origin"},
		"star and an origin":        {"CORS_ALLOWED_ORIGINS": "*, https://ok.example"},
		"bad proxy":                 {"TRUSTED_PROXIES": "10.0.0.0/33"},
		"not redis":                 {"REDIS_URL": "http://cache:6379"},
		"bad metrics address":       {"METRICS_ADDR": "9090"},
		"negative client rate":      {"CLIENT_RATE_LIMIT": "-1"},
		"zero APQ store":            {"APQ_MAX_BYTES": "0"},
		"zero document cache":       {"DOCUMENT_CACHE_MAX_BYTES": "0"},
		"negative TTL":              {"CACHE_TTL": "-1s"},
		"zero cache bytes":          {"CACHE_MAX_BYTES": "0"},
		"negative breaker":          {"COMPSHARE_BREAKER_FAILURES": "-1"},
		"zero cooldown":             {"COMPSHARE_BREAKER_COOLDOWN": "0s"},
	} {
		_, err := Load(nil, env(m), io.Discard)
		if assert.Error(t, err, name) {
			named := false
			for k := range m {
				named = named || bytes.Contains([]byte(err.Error()), []byte(k))
			}
			assert.True(t, named, "%s: %q names none of %v", name, err, m)
		}
	}
}

// TestSecretsAreMasked: the private key and the federation secret never
// show, and a Redis URL's password is redacted, in the log line of the
// settings.
func TestSecretsAreMasked(t *testing.T) {
	t.Parallel()
	s, err := Load(nil, env(map[string]string{
		"COMPSHARE_PUBLIC_KEY": "pub", "COMPSHARE_PRIVATE_KEY": "priv-hunter2",
		"FEDERATION_SECRET": "fed-hunter2", "REDIS_URL": "redis://:pw-hunter2@redis:6379/0",
	}), io.Discard)
	require.NoError(t, err)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("settings", "settings", s)
	assert.NotContains(t, buf.String(), "hunter2")
	assert.Contains(t, buf.String(), `"COMPSHARE_PRIVATE_KEY":"****"`)
	assert.Contains(t, buf.String(), "redis://:****@redis:6379/0")
	// An error about a URL does not quote it back.
	_, err = Load(nil, env(map[string]string{"REDIS_URL": "http://:pw-hunter2@redis"}), io.Discard)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}

// TestRateLimitBurst: CLIENT_BURST, else MAX_COST, else the default cost.
func TestRateLimitBurst(t *testing.T) {
	t.Parallel()
	s := Defaults()
	assert.Equal(t, s.Limits.MaxCost, s.RateLimitBurst())
	s.ClientBurst = 7
	assert.Equal(t, 7, s.RateLimitBurst())
	s.ClientBurst, s.Limits.MaxCost = 0, 0
	assert.Equal(t, 50000, s.RateLimitBurst())
}

// TestLogFormat: text or JSON as asked; auto is text only at a terminal.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	assert.True(t, LogText.Text(&buf))
	assert.False(t, LogJSON.Text(&buf))
	assert.False(t, LogAuto.Text(&buf), "a buffer is no terminal")
	f, err := os.CreateTemp(t.TempDir(), "log")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, LogAuto.Text(f), "a file is no terminal")
}

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the table")

// TestConfigurationDocIsCurrent: docs/configuration.md is what Markdown
// renders from the table (make docs rewrites it).
func TestConfigurationDocIsCurrent(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "docs", "configuration.md")
	want := Markdown()
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, want, string(got), "docs/configuration.md is stale: run make docs")
}
