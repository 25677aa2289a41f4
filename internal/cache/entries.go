package cache

import (
	"strings"
	"unsafe"

	"github.com/compshare/imagegraph/upstream"
)

// lookupKey returns the key under which a complete page primes the answer
// of req when req looks up one group by GroupId or one version by
// CompShareImageId and nothing else (offset 0, any positive limit, any
// order); "" for any other request.
func lookupKey(req *upstream.DescribeCommunityImagesRequest) string {
	if req.Name != "" || req.Author != "" || req.FuzzySearch != "" || len(req.Tag) > 0 ||
		req.IsFree != nil || req.IsOfficial != nil || req.IfAutoStart != nil ||
		(req.Offset != nil && *req.Offset != 0) || (req.Limit != nil && *req.Limit == 0) {
		return ""
	}
	switch {
	case req.GroupId != "" && req.CompShareImageId == "":
		return groupKey(req.Region, req.GroupId)
	case req.CompShareImageId != "" && req.GroupId == "":
		return imageKey(req.Region, req.CompShareImageId)
	}
	return ""
}

// The keys of primed lookups never collide with canonical keys, which are
// form-encoded and hold no NUL.
func groupKey(region, id string) string { return "group\x00" + region + "\x00" + id }
func imageKey(region, id string) string { return "image\x00" + region + "\x00" + id }

// groupLookup is the answer to a lookup of g by its GroupId: g with every
// version.
func groupLookup(g *upstream.ImageGroup) *upstream.DescribeCommunityImagesResponse {
	return &upstream.DescribeCommunityImagesResponse{
		Action:              upstream.ActionDescribeCommunityImages + "Response",
		TotalCount:          1,
		AvailableTotalCount: available(g),
		CompshareImageGroup: []upstream.ImageGroup{*g},
	}
}

// imageLookup is the answer to a lookup of version i of g by its
// CompShareImageId: g holding that version alone, as a version-level filter
// may trim it.
func imageLookup(g *upstream.ImageGroup, i int) *upstream.DescribeCommunityImagesResponse {
	trimmed := *g
	// A copy of the one version: a slice of g.Data would keep every
	// version of the group alive.
	trimmed.Data = []upstream.Image{g.Data[i]}
	return &upstream.DescribeCommunityImagesResponse{
		Action:              upstream.ActionDescribeCommunityImages + "Response",
		TotalCount:          1,
		AvailableTotalCount: available(g),
		CompshareImageGroup: []upstream.ImageGroup{trimmed},
	}
}

func available(g *upstream.ImageGroup) int {
	if g.Status == upstream.GroupStatusAvailable {
		return 1
	}
	return 0
}

// cloneResponse copies r with every string copied out of the body it was
// decoded from (whose strings share one buffer): an entry then holds only
// its own bytes, and its weight is what it really keeps alive.
func cloneResponse(r *upstream.DescribeCommunityImagesResponse) *upstream.DescribeCommunityImagesResponse {
	out := &upstream.DescribeCommunityImagesResponse{
		Action:              strings.Clone(r.Action),
		RetCode:             r.RetCode,
		Message:             strings.Clone(r.Message),
		TotalCount:          r.TotalCount,
		AvailableTotalCount: r.AvailableTotalCount,
		RequestID:           strings.Clone(r.RequestID),
		CompshareImageGroup: make([]upstream.ImageGroup, len(r.CompshareImageGroup)),
	}
	for i := range r.CompshareImageGroup {
		g, src := &out.CompshareImageGroup[i], &r.CompshareImageGroup[i]
		*g = *src
		g.GroupId = strings.Clone(src.GroupId)
		g.ImageName = strings.Clone(src.ImageName)
		g.ImageDesc = strings.Clone(src.ImageDesc)
		g.Status = strings.Clone(src.Status)
		g.Data = make([]upstream.Image, len(src.Data))
		for j := range src.Data {
			g.Data[j] = cloneImage(&src.Data[j])
		}
	}
	return out
}

func cloneImage(src *upstream.Image) upstream.Image {
	v := *src
	v.CompShareImageId = strings.Clone(src.CompShareImageId)
	v.Name = strings.Clone(src.Name)
	v.Author = strings.Clone(src.Author)
	v.Status = strings.Clone(src.Status)
	v.VersionName = strings.Clone(src.VersionName)
	v.VersionDesc = strings.Clone(src.VersionDesc)
	v.Description = strings.Clone(src.Description)
	v.Tags = cloneStrings(src.Tags)
	v.SupportedGpuTypes = cloneStrings(src.SupportedGpuTypes)
	v.Cover = strings.Clone(src.Cover)
	v.Container = strings.Clone(src.Container)
	v.Readme = strings.Clone(src.Readme)
	v.QrCodeUrl = strings.Clone(src.QrCodeUrl)
	v.GroupId = strings.Clone(src.GroupId)
	if src.SoftwarePorts != nil {
		v.SoftwarePorts = make([]upstream.SoftwarePort, len(src.SoftwarePorts))
		for k, p := range src.SoftwarePorts {
			v.SoftwarePorts[k] = upstream.SoftwarePort{Software: strings.Clone(p.Software), Port: p.Port}
		}
	}
	return v
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.Clone(v)
	}
	return out
}

// keyOverhead is what one entry costs beyond its key and its response: the
// entry and otter's node for it (about 150 bytes measured; rounded up).
const keyOverhead = 256

// The sizes of the structures a response is made of.
const (
	sizeResponse = int(unsafe.Sizeof(upstream.DescribeCommunityImagesResponse{}))
	sizeGroup    = int(unsafe.Sizeof(upstream.ImageGroup{}))
	sizeImage    = int(unsafe.Sizeof(upstream.Image{}))
	sizePort     = int(unsafe.Sizeof(upstream.SoftwarePort{}))
	sizeString   = int(unsafe.Sizeof(""))
)

// weigh is the number of bytes r holds: its structures, its slices'
// backing arrays and its strings' bytes, each allocation rounded up by
// allocOverhead for the allocator's size classes (each counted where it
// appears, so data two entries share counts in both: the bound is an upper
// bound; TestWeighIsAnUpperBound checks it against the heap).
func weigh(r *upstream.DescribeCommunityImagesResponse) uint32 {
	n := sizeResponse + str(r.Action) + str(r.Message) + str(r.RequestID) + slice(cap(r.CompshareImageGroup)*sizeGroup)
	for i := range r.CompshareImageGroup {
		g := &r.CompshareImageGroup[i]
		n += str(g.GroupId) + str(g.ImageName) + str(g.ImageDesc) + str(g.Status) + slice(cap(g.Data)*sizeImage)
		for j := range g.Data {
			v := &g.Data[j]
			n += str(v.CompShareImageId) + str(v.Name) + str(v.Author) + str(v.Status) + str(v.VersionName) +
				str(v.VersionDesc) + str(v.Description) + str(v.Cover) + str(v.Container) + str(v.Readme) +
				str(v.QrCodeUrl) + str(v.GroupId) +
				stringsSize(v.Tags) + stringsSize(v.SupportedGpuTypes) + slice(cap(v.SoftwarePorts)*sizePort)
			for _, p := range v.SoftwarePorts {
				n += str(p.Software)
			}
		}
	}
	return uint32(min(n, 1<<31))
}

// allocOverhead is what the allocator adds to one allocation, on average,
// rounding it up to its size class.
const allocOverhead = 16

func str(s string) int {
	if s == "" {
		return 0
	}
	return len(s) + allocOverhead
}

func slice(bytes int) int {
	if bytes == 0 {
		return 0
	}
	return bytes + allocOverhead
}

func stringsSize(s []string) int {
	n := slice(cap(s) * sizeString)
	for _, v := range s {
		n += str(v)
	}
	return n
}
