package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
)

// BenchmarkSign signs vector C's parameters.
func BenchmarkSign(b *testing.B) {
	p, err := Flatten(map[string]any{
		"Action": "DescribeCommunityImages", "Region": "cn-wlcb", "Limit": 20,
		"Name": "stable diffusion", "Offset": 0, "Tag": "AIGC",
		"SortCondition": map[string]any{"ASC": false, "Field": "PubTime"},
	})
	if err != nil {
		b.Fatal(err)
	}
	p["PublicKey"] = vectorPublicKey
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(p, vectorPrivateKey)
	}
}

func fullRequest() *DescribeCommunityImagesRequest {
	return &DescribeCommunityImagesRequest{
		CompShareImageId: "compshareImage-1", GroupId: "group-1", Name: "stable diffusion",
		Author: "UCloud", FuzzySearch: "PyTorch", Tag: []string{"AIGC", "深度学习", "LLM"},
		IsFree: Bool(true), IsOfficial: Bool(false), IfAutoStart: Bool(true),
		SortCondition: &SortCondition{Field: SortPubTime, ASC: false},
		Offset:        Int(40), Limit: Int(20),
	}
}

// BenchmarkEncode flattens a request with every field and signs its form.
func BenchmarkEncode(b *testing.B) {
	req := fullRequest()
	b.ReportAllocs()
	for b.Loop() {
		p, err := req.Params(DefaultRegion)
		if err != nil {
			b.Fatal(err)
		}
		p["ProjectId"] = "org-bench"
		_ = SignedForm(p, vectorPublicKey, vectorPrivateKey)
	}
}

// cannedPage returns a realistic page: 20 groups of 3 versions each.
func cannedPage() []byte {
	resp := DescribeCommunityImagesResponse{Action: "DescribeCommunityImagesResponse", TotalCount: 500, AvailableTotalCount: 480}
	for g := range 20 {
		group := ImageGroup{
			GroupId: fmt.Sprintf("group-%04d", g), ImageName: fmt.Sprintf("Stable Diffusion WebUI %d", g),
			ImageDesc: "一键部署的 Stable Diffusion 环境,含常用插件与模型。", CreatedCount: 1200 + g,
			FavoritesCount: 340 + g, RecommendCount: 12, ImageUseTime: 98765, Status: GroupStatusAvailable,
		}
		for v := range 3 {
			group.Data = append(group.Data, Image{
				CompShareImageId: fmt.Sprintf("compshareImage-%04d-%d", g, v), Name: group.ImageName,
				Author: "UCloud", AuthInfo: AuthOfficial, Status: ImageStatusAvailable, Price: 0.5,
				VersionName: fmt.Sprintf("v1.%d", v), VersionDesc: "修复若干问题,升级 CUDA 12.4",
				Description: group.ImageDesc, Tags: []string{"AIGC", "深度学习", "绘画"},
				SupportedGpuTypes: []string{"4090", "3090", "A100"}, Cover: "https://example.com/cover.png",
				Container: ContainerTrue, AutoStart: true, CreateTime: 1700000000, UpdateTime: 1700000100,
				PubTime: 1700000200, Size: 40960, Readme: "<h1>使用说明</h1><p>启动后访问 7860 端口。</p>",
				QrCodeUrl:     "https://example.com/qr.png",
				SoftwarePorts: []SoftwarePort{{Software: "WebUI", Port: 7860}, {Software: "JupyterLab", Port: 8888}},
			})
		}
		resp.CompshareImageGroup = append(resp.CompshareImageGroup, group)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		panic(err)
	}
	return b
}

func benchClient(b *testing.B) *Client {
	page := cannedPage()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(RequestIDHeader, "req-bench")
		_, _ = w.Write(page)
	}))
	b.Cleanup(srv.Close)
	c, err := NewClient(WithBaseURL(srv.URL), WithCredentials(vectorPublicKey, vectorPrivateKey),
		WithRateLimit(math.Inf(1), 1))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(page)))
	return c
}

// BenchmarkDescribeHTTP makes full calls, one at a time, against an
// httptest server answering a canned 20-group page.
func BenchmarkDescribeHTTP(b *testing.B) {
	c := benchClient(b)
	req := fullRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.DescribeCommunityImages(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.CompshareImageGroup) != 20 {
			b.Fatalf("got %d groups", len(resp.CompshareImageGroup))
		}
	}
}

// BenchmarkDescribeHTTPParallel makes distinct calls from parallel
// goroutines, so none coalesce and the in-flight bound (8) is exercised.
func BenchmarkDescribeHTTPParallel(b *testing.B) {
	c := benchClient(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			req := fullRequest()
			req.Offset = Int(int(n.Add(1)))
			if _, err := c.DescribeCommunityImages(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// datasetPage returns the first 20 groups of the sandbox's dataset as the
// upstream encodes them: the page the reference operation reads.
func datasetPage(b *testing.B) []byte {
	raw, err := os.ReadFile("sandbox/data/images.json")
	if err != nil {
		b.Fatal(err)
	}
	var groups []ImageGroup
	if err := json.Unmarshal(raw, &groups); err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(DescribeCommunityImagesResponse{
		Action: "DescribeCommunityImagesResponse", TotalCount: len(groups), CompshareImageGroup: groups[:20],
	})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkDecodePage decodes the reference page with the client's decoder
// (decodeBody) and, for comparison, with encoding/json.
func BenchmarkDecodePage(b *testing.B) {
	body := datasetPage(b)
	for _, d := range []struct {
		name   string
		decode func([]byte, *DescribeCommunityImagesResponse) error
	}{
		{"client", decodeBody},
		{"encoding-json", func(b []byte, out *DescribeCommunityImagesResponse) error { return json.Unmarshal(b, out) }},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var out DescribeCommunityImagesResponse
				if err := d.decode(body, &out); err != nil || len(out.CompshareImageGroup) != 20 {
					b.Fatal(err)
				}
			}
		})
	}
}
