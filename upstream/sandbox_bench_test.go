package upstream_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// BenchmarkDescribeSandbox is a full call against the sandbox over loopback:
// signing, the HTTP round trip, the sandbox's signature check and query,
// and decoding a 20-group page.
func BenchmarkDescribeSandbox(b *testing.B) {
	sb, err := sandbox.New()
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	b.Cleanup(srv.Close)
	c, err := upstream.NewClient(
		upstream.WithBaseURL(srv.URL),
		upstream.WithCredentials(sandbox.DefaultPublicKey, sandbox.DefaultPrivateKey),
		upstream.WithRateLimit(1e9, 1e6),
	)
	if err != nil {
		b.Fatal(err)
	}
	req := &upstream.DescribeCommunityImagesRequest{Offset: upstream.Int(0), Limit: upstream.Int(20)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.DescribeCommunityImages(ctx, req)
		if err != nil || len(resp.CompshareImageGroup) != 20 {
			b.Fatal(err)
		}
	}
}
