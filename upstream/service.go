package upstream

import "context"

// Service is the upstream's one action. The Client implements it, and so
// does everything that decorates it on the way to the GraphQL layer: the
// call meter (internal/limits), the response cache (internal/cache), and
// tests' fakes. It is the one interface every layer names the upstream by.
type Service interface {
	DescribeCommunityImages(ctx context.Context, req *DescribeCommunityImagesRequest) (*DescribeCommunityImagesResponse, error)
}

var _ Service = (*Client)(nil)
