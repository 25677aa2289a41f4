package access_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/access"
)

// identify runs a request from remoteAddr with the X-Forwarded-For headers
// xff through Identify and returns the Client the handler saw.
func identify(t *testing.T, trusted []netip.Prefix, remoteAddr string, xff ...string) *access.Client {
	t.Helper()
	var got *access.Client
	h := access.Identify(trusted, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = access.ClientFrom(r.Context())
	}))
	req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	req.RemoteAddr = remoteAddr
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	h.ServeHTTP(httptest.NewRecorder(), req)
	require.NotNil(t, got)
	return got
}

func TestIdentify(t *testing.T) {
	t.Parallel()
	trusted, err := access.ParseTrustedProxies("10.0.0.0/8, 2001:db8::/32, 192.168.1.1")
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"no proxies trusted: XFF ignored", nil, "203.0.113.7:5555", []string{"198.51.100.1"}, "203.0.113.7"},
		{"spoofed XFF from untrusted peer ignored", trusted, "203.0.113.7:5555", []string{"198.51.100.1, 10.0.0.2"}, "203.0.113.7"},
		{"trusted peer without XFF", trusted, "10.0.0.1:80", nil, "10.0.0.1"},
		{"trusted peer names the client", trusted, "10.0.0.1:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"single trusted address", trusted, "192.168.1.1:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"neighbour of a single trusted address is not trusted", trusted, "192.168.1.2:80", []string{"198.51.100.1"}, "192.168.1.2"},
		{"chain of trusted proxies; client's own spoof on the left ignored", trusted, "10.0.0.1:80", []string{"1.1.1.1, 198.51.100.1, 10.0.0.3,10.0.0.2"}, "198.51.100.1"},
		{"several headers read as one list", trusted, "10.0.0.1:80", []string{"1.1.1.1", "198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"every entry trusted: leftmost", trusted, "10.0.0.1:80", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbage rightmost: the peer", trusted, "10.0.0.1:80", []string{"198.51.100.1, garbage"}, "10.0.0.1"},
		{"garbage in the middle: the hop right of it", trusted, "10.0.0.1:80", []string{"198.51.100.1, garbage, 10.0.0.2"}, "10.0.0.2"},
		{"garbage left of the client does not matter", trusted, "10.0.0.1:80", []string{"<script>, 198.51.100.1"}, "198.51.100.1"},
		{"empty entry is garbage", trusted, "10.0.0.1:80", []string{"198.51.100.1,"}, "10.0.0.1"},
		{"entry with a port", trusted, "10.0.0.1:80", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"IPv6 peer untrusted", trusted, "[2600:1f18::1]:443", []string{"198.51.100.1"}, "2600:1f18::1"},
		{"IPv6 chain", trusted, "[2001:db8::1]:443", []string{"2600:1f18::7, 2001:db8:ffff::5"}, "2600:1f18::7"},
		{"IPv6 entry in brackets", trusted, "[2001:db8::1]:443", []string{"[2600:1f18::7]"}, "2600:1f18::7"},
		{"IPv6 entry in brackets with a port", trusted, "[2001:db8::1]:443", []string{"[2600:1f18::7]:8080"}, "2600:1f18::7"},
		{"IPv4-mapped peer matches an IPv4 prefix", trusted, "[::ffff:10.0.0.1]:80", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
		{"IPv4-mapped untrusted peer reported as IPv4", trusted, "[::ffff:203.0.113.7]:80", nil, "203.0.113.7"},
		{"IPv4-mapped entry is trusted as IPv4", trusted, "10.0.0.1:80", []string{"198.51.100.1, ::ffff:10.0.0.9"}, "198.51.100.1"},
		{"zone dropped", nil, "[fe80::1%eth0]:80", nil, "fe80::1"},
		{"bare IP RemoteAddr", trusted, "10.0.0.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"not an IP (Unix socket)", trusted, "@", []string{"198.51.100.1"}, "@"},
		{"empty RemoteAddr", trusted, "", []string{"198.51.100.1"}, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := identify(t, tc.trusted, tc.remote, tc.xff...)
			assert.Equal(t, tc.want, c.Addr)
			assert.Empty(t, c.Name)
			assert.Equal(t, "addr:"+tc.want, c.Key())
		})
	}
}

func TestClientFromWithoutIdentify(t *testing.T) {
	t.Parallel()
	assert.Nil(t, access.ClientFrom(context.Background()))
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		client access.Client
		want   string
	}{
		{access.Client{Addr: "198.51.100.1"}, "addr:198.51.100.1"},
		{access.Client{Addr: "198.51.100.1", Name: "ci"}, "key:ci"},
		{access.Client{Name: "ci"}, "key:ci"},
		{access.Client{Addr: "2001:db8::1"}, "addr:2001:db8::1"},
	} {
		assert.Equal(t, tc.want, tc.client.Key())
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}},
		{" 10.0.0.0/8 , ,::1", []string{"10.0.0.0/8", "::1/128"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"192.168.1.1", []string{"192.168.1.1/32"}},
		{"2001:db8::/32,fd00::1", []string{"2001:db8::/32", "fd00::1/128"}},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{"::ffff:192.168.1.1", []string{"192.168.1.1/32"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := access.ParseTrustedProxies(tc.in)
			require.NoError(t, err)
			if tc.want == nil {
				assert.Nil(t, got)
				return
			}
			var strs []string
			for _, p := range got {
				strs = append(strs, p.String())
			}
			assert.Equal(t, tc.want, strs)
		})
	}
}

func TestParseTrustedProxiesErrors(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"banana", "10.0.0.0/33", "10.0.0.1/x", "10.0.0", "fe80::1%eth0", "::ffff:0.0.0.0/95", "10.0.0.0/8 10.1.0.0/16", "example.com"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			got, err := access.ParseTrustedProxies("10.0.0.0/8," + bad)
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Contains(t, err.Error(), bad, "the error names the bad entry")
		})
	}
}
