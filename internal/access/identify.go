package access

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
)

// Client is who a request comes from.
type Client struct {
	// Addr is the client's IP address: the peer's, or, when the peer is a
	// trusted proxy, the one its X-Forwarded-For names.
	Addr string
	// Name is the name of the API key the request authenticated with; ""
	// when keys are off or not yet checked.
	Name string
}

// Key is the client's rate-limit key: "key:"+Name when Name is set, else
// "addr:"+Addr.
func (c *Client) Key() string {
	if c.Name != "" {
		return "key:" + c.Name
	}
	return "addr:" + c.Addr
}

// clientKey is the context key of the request's *Client.
type clientKey struct{}

// ClientFrom returns the Client of the request ctx belongs to, or nil when
// Identify did not run.
func ClientFrom(ctx context.Context) *Client {
	c, _ := ctx.Value(clientKey{}).(*Client)
	return c
}

// Identify puts a *Client in each request's context, with Addr set, before
// calling next; read it with ClientFrom.
//
// Addr is the peer's IP address, unless the peer is inside one of the trusted
// prefixes and the request carries X-Forwarded-For. Then the entries of every
// X-Forwarded-For header, in order, are read from right to left (nearest hop
// first), skipping the addresses of trusted proxies: the first untrusted
// address is the client; when every entry is trusted, the leftmost is. An
// entry that is not an IP address (an IP:port is accepted) stops the walk, and
// the client is the address to its right: the hop that wrote it. The header of
// an untrusted peer is never believed, so a client cannot choose its own rate
// limit bucket. IPv4-mapped IPv6 addresses are reported as IPv4 and zones are
// dropped. When RemoteAddr is not an IP address at all (a Unix socket), Addr
// is RemoteAddr as it is, or "unknown" when it is empty.
//
// The Client is shared by pointer, so that Authenticate can set Name and an
// outer middleware (logging, say) can read it after next returns. They all run
// on the request's goroutine, one after another, so no locking is needed; a
// handler that hands the Client to other goroutines must not let them write
// it.
func Identify(trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &Client{Addr: clientAddr(r, trusted)}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	})
}

// clientAddr works out the client's address as Identify documents.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseHostPort(r.RemoteAddr)
	if !ok {
		if r.RemoteAddr == "" {
			return "unknown"
		}
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	var entries []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		entries = append(entries, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := parseHostPort(strings.TrimSpace(entries[i]))
		if !ok {
			break // a hop we do not trust wrote garbage: the one right of it is the client
		}
		client = a
		if !isTrusted(a, trusted) {
			break
		}
	}
	return client.String()
}

// parseHostPort parses an IP address, alone, with a port or in brackets, and
// normalises it: IPv4-mapped addresses become IPv4, zones are dropped.
func parseHostPort(s string) (netip.Addr, bool) {
	norm := func(a netip.Addr) (netip.Addr, bool) { return a.Unmap().WithZone(""), true }
	if a, err := netip.ParseAddr(s); err == nil {
		return norm(a)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return norm(ap.Addr())
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		if inner, ok := strings.CutSuffix(inner, "]"); ok {
			if a, err := netip.ParseAddr(inner); err == nil {
				return norm(a)
			}
		}
	}
	return netip.Addr{}, false
}

// isTrusted reports whether a is inside one of the trusted prefixes.
func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// LogAttrs are the attributes of a request's client in its log line: its
// address, and its name once a key or a secret named it.
func LogAttrs(r *http.Request) []slog.Attr {
	c := ClientFrom(r.Context())
	if c == nil {
		return nil
	}
	if c.Name != "" {
		return []slog.Attr{slog.String("client_addr", c.Addr), slog.String("client", c.Name)}
	}
	return []slog.Attr{slog.String("client_addr", c.Addr)}
}

// ParseTrustedProxies parses a comma-separated list of CIDRs or single IP
// addresses (IPv4 or IPv6), the proxies whose X-Forwarded-For Identify
// believes. Spaces around entries and empty entries are ignored; "" gives
// nil, which trusts no proxy. Host bits of a CIDR are cleared, and
// IPv4-mapped IPv6 addresses and prefixes become IPv4 ones, as Identify
// compares IPv4 addresses in that form.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		p, err := parseTrusted(e)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parseTrusted parses one entry of a trusted proxy list.
func parseTrusted(e string) (netip.Prefix, error) {
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("trusted proxy %q is not a valid CIDR (like 10.0.0.0/8 or fd00::/8)", e)
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("trusted proxy %q: an IPv4-mapped prefix needs at least 96 bits", e)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(e)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("trusted proxy %q is not an IP address or CIDR (like 10.0.0.1 or 10.0.0.0/8)", e)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
