package model

import (
	"cmp"
	"log/slog"
	"slices"
	"time"

	"github.com/compshare/imagegraph/upstream"
)

// Mapper turns upstream types into models. Values outside an enum map to
// UNKNOWN and are logged as a warning; they never fail a query.
type Mapper struct {
	// Log receives the warnings; nil discards them.
	Log *slog.Logger
	// MaxPageSize bounds the first and last of each group's versions
	// (DefaultMaxPageSize if 0).
	MaxPageSize int
}

// Groups maps the groups of one response. complete says whether the request
// had no version-level filter, so that each group's Data is all its versions.
// The groups, their versions and the values those point at are allocated
// together, a few arrays for the whole page.
func (m Mapper) Groups(resp *upstream.DescribeCommunityImagesResponse, complete bool) []*ImageGroup {
	return m.groups(resp.CompshareImageGroup, complete)
}

// Group maps one group and its versions. KnownVersions keeps the upstream's
// order; a complete group also keeps them in the API's version order for
// versions and latestVersion.
func (m Mapper) Group(g *upstream.ImageGroup, complete bool) *ImageGroup {
	return m.groups([]upstream.ImageGroup{*g}, complete)[0]
}

func (m Mapper) groups(in []upstream.ImageGroup, complete bool) []*ImageGroup {
	groups := make([]ImageGroup, len(in))
	out := make([]*ImageGroup, len(in))
	slab := newVersionSlab(in, complete)
	for i := range in {
		g, group := &in[i], &groups[i]
		*group = ImageGroup{
			GroupID:        g.GroupId,
			Name:           g.ImageName,
			Description:    g.ImageDesc,
			CreatedCount:   g.CreatedCount,
			FavoritesCount: g.FavoritesCount,
			RecommendCount: g.RecommendCount,
			UseTime:        g.ImageUseTime,
			IsFavorite:     g.IsFavorite,
			Status:         m.groupStatus(g),
			Complete:       complete,
			maxPage:        m.MaxPageSize,
		}
		group.KnownVersions = slab.refs(len(g.Data))
		for j := range g.Data {
			v := slab.version()
			m.fillVersion(v, &g.Data[j], slab)
			v.GroupID = g.GroupId
			v.Parent = group
			group.KnownVersions[j] = v
		}
		if complete {
			group.sorted = slab.refs(len(g.Data))
			copy(group.sorted, group.KnownVersions)
			slices.SortStableFunc(group.sorted, compareVersions)
		}
		out[i] = group
	}
	return out
}

// Version maps one version. Its GroupID and Parent are left to the caller.
func (m Mapper) Version(img *upstream.Image) *ImageVersion {
	v := &ImageVersion{}
	m.fillVersion(v, img, nil)
	return v
}

// fillVersion maps img into v, taking the values v's pointers point at
// from slab when there is one.
func (m Mapper) fillVersion(v *ImageVersion, img *upstream.Image, slab *versionSlab) {
	*v = ImageVersion{
		ImageID:            img.CompShareImageId,
		Name:               img.Name,
		VersionName:        img.VersionName,
		VersionDescription: img.VersionDesc,
		Description:        img.Description,
		Author:             img.Author,
		AuthorType:         m.authorType(img),
		Status:             m.versionStatus(img),
		Price:              img.Price,
		IsFree:             img.Price == 0,
		Tags:               nonNil(img.Tags),
		SupportedGpuTypes:  nonNil(img.SupportedGpuTypes),
		CoverURL:           slab.optional(img.Cover),
		IsContainer:        img.Container == upstream.ContainerTrue,
		AutoStart:          img.AutoStart,
		CreatedAt:          unix(img.CreateTime),
		UpdatedAt:          unix(img.UpdateTime),
		SizeMB:             int(img.Size),
		Readme:             img.Readme,
		QrCodeURL:          slab.optional(img.QrCodeUrl),
		SoftwarePorts:      slab.ports(img.SoftwarePorts),
	}
	if img.PubTime != 0 {
		v.PublishedAt = slab.time(unix(img.PubTime))
	}
	if img.Container != upstream.ContainerTrue && img.Container != upstream.ContainerFalse {
		m.warn("Container", img.Container, img.CompShareImageId)
	}
}

// versionSlab holds the versions of one page and the values their pointer
// fields point at, each kind in one array, so that mapping a page costs a
// handful of allocations instead of several per version. Its slices are
// made at their final length or capacity and never grow, so pointers into
// them stay valid. A nil *versionSlab allocates each value on its own.
type versionSlab struct {
	versions []ImageVersion // the versions not handed out yet
	// refList holds the groups' KnownVersions and, for complete groups,
	// their sorted versions: the part not handed out yet.
	refList  []*ImageVersion
	times    []time.Time
	strs     []string
	portVals []SoftwarePort
	portRefs []*SoftwarePort
}

func newVersionSlab(groups []upstream.ImageGroup, complete bool) *versionSlab {
	nVersions, nPorts := 0, 0
	for i := range groups {
		nVersions += len(groups[i].Data)
		for j := range groups[i].Data {
			nPorts += len(groups[i].Data[j].SoftwarePorts)
		}
	}
	nRefs := nVersions
	if complete {
		nRefs *= 2
	}
	return &versionSlab{
		versions: make([]ImageVersion, nVersions),
		refList:  make([]*ImageVersion, nRefs),
		times:    make([]time.Time, 0, nVersions),
		strs:     make([]string, 0, 2*nVersions),
		portVals: make([]SoftwarePort, 0, nPorts),
		portRefs: make([]*SoftwarePort, 0, nPorts),
	}
}

// version hands out the next version.
func (s *versionSlab) version() *ImageVersion {
	v := &s.versions[0]
	s.versions = s.versions[1:]
	return v
}

// refs hands out the next n version pointers, capped so that appending to
// them cannot reach the next group's.
func (s *versionSlab) refs(n int) []*ImageVersion {
	r := s.refList[:n:n]
	s.refList = s.refList[n:]
	return r
}

// optional returns a pointer to s, or nil for an empty s.
func (s *versionSlab) optional(str string) *string {
	if str == "" {
		return nil
	}
	if s == nil {
		return ptr(str)
	}
	s.strs = append(s.strs, str)
	return &s.strs[len(s.strs)-1]
}

func (s *versionSlab) time(t time.Time) *time.Time {
	if s == nil {
		return ptr(t)
	}
	s.times = append(s.times, t)
	return &s.times[len(s.times)-1]
}

// ptr returns a pointer to a fresh copy of v. It is apart from the slab's
// methods so that only this path moves its argument to the heap.
func ptr[T any](v T) *T { return &v }

// ports maps a version's software ports; never nil.
func (s *versionSlab) ports(in []upstream.SoftwarePort) []*SoftwarePort {
	if s == nil {
		out := make([]*SoftwarePort, len(in))
		for i, p := range in {
			out[i] = &SoftwarePort{Software: p.Software, Port: p.Port}
		}
		return out
	}
	start := len(s.portRefs)
	for _, p := range in {
		s.portVals = append(s.portVals, SoftwarePort{Software: p.Software, Port: p.Port})
		s.portRefs = append(s.portRefs, &s.portVals[len(s.portVals)-1])
	}
	return s.portRefs[start:len(s.portRefs):len(s.portRefs)]
}

func (m Mapper) groupStatus(g *upstream.ImageGroup) ImageGroupStatus {
	switch g.Status {
	case upstream.GroupStatusAvailable:
		return ImageGroupStatusAvailable
	case upstream.GroupStatusUnAvailable:
		return ImageGroupStatusUnavailable
	}
	m.warn("CompshareImageGroup.Status", g.Status, g.GroupId)
	return ImageGroupStatusUnknown
}

func (m Mapper) versionStatus(img *upstream.Image) ImageVersionStatus {
	switch img.Status {
	case upstream.ImageStatusAvailable:
		return ImageVersionStatusAvailable
	case upstream.ImageStatusOffline:
		return ImageVersionStatusOffline
	case upstream.ImageStatusReviewing:
		return ImageVersionStatusReviewing
	}
	m.warn("CompShareImage.Status", img.Status, img.CompShareImageId)
	return ImageVersionStatusUnknown
}

func (m Mapper) authorType(img *upstream.Image) AuthorType {
	switch img.AuthInfo {
	case upstream.AuthCreator:
		return AuthorTypeCreator
	case upstream.AuthOfficial:
		return AuthorTypeOfficial
	case upstream.AuthVerified:
		return AuthorTypeVerified
	}
	m.warn("CompShareImage.AuthInfo", img.AuthInfo, img.CompShareImageId)
	return AuthorTypeUnknown
}

func (m Mapper) warn(field string, value any, id string) {
	if m.Log != nil {
		m.Log.Warn("upstream value outside the schema's enum; mapped to UNKNOWN",
			"field", field, "value", value, "id", id)
	}
}

// SortVersions returns vs in the API's version order: publishedAt newest
// first (unpublished last), then createdAt newest first, then imageId
// ascending. vs is not modified.
func SortVersions(vs []*ImageVersion) []*ImageVersion {
	out := slices.Clone(vs)
	slices.SortStableFunc(out, compareVersions)
	return out
}

func compareVersions(a, b *ImageVersion) int {
	switch {
	case a.PublishedAt != nil && b.PublishedAt == nil:
		return -1
	case a.PublishedAt == nil && b.PublishedAt != nil:
		return 1
	case a.PublishedAt != nil && !a.PublishedAt.Equal(*b.PublishedAt):
		return b.PublishedAt.Compare(*a.PublishedAt)
	}
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ImageID, b.ImageID)
}

// LatestAvailable returns the newest AVAILABLE version by publishedAt, or nil.
func LatestAvailable(vs []*ImageVersion) *ImageVersion {
	var best *ImageVersion
	for _, v := range vs {
		if v.Status != ImageVersionStatusAvailable {
			continue
		}
		if best == nil || compareVersions(v, best) < 0 {
			best = v
		}
	}
	return best
}

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
