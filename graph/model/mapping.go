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
func (m Mapper) Groups(resp *upstream.DescribeCommunityImagesResponse, complete bool) []*ImageGroup {
	out := make([]*ImageGroup, len(resp.CompshareImageGroup))
	for i := range resp.CompshareImageGroup {
		out[i] = m.Group(&resp.CompshareImageGroup[i], complete)
	}
	return out
}

// Group maps one group and its versions. KnownVersions keeps the upstream's
// order; a complete group also keeps them in the API's version order for
// versions and latestVersion.
func (m Mapper) Group(g *upstream.ImageGroup, complete bool) *ImageGroup {
	group := &ImageGroup{
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
	group.KnownVersions = make([]*ImageVersion, len(g.Data))
	for i := range g.Data {
		v := m.Version(&g.Data[i])
		v.GroupID = g.GroupId
		v.Parent = group
		group.KnownVersions[i] = v
	}
	if complete {
		group.sorted = SortVersions(group.KnownVersions)
	}
	return group
}

// Version maps one version. Its GroupID and Parent are left to the caller.
func (m Mapper) Version(img *upstream.Image) *ImageVersion {
	v := &ImageVersion{
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
		CoverURL:           optional(img.Cover),
		IsContainer:        img.Container == upstream.ContainerTrue,
		AutoStart:          img.AutoStart,
		CreatedAt:          unix(img.CreateTime),
		UpdatedAt:          unix(img.UpdateTime),
		SizeMB:             int(img.Size),
		Readme:             img.Readme,
		QrCodeURL:          optional(img.QrCodeUrl),
		SoftwarePorts:      make([]*SoftwarePort, len(img.SoftwarePorts)),
	}
	if img.PubTime != 0 {
		t := unix(img.PubTime)
		v.PublishedAt = &t
	}
	for i, p := range img.SoftwarePorts {
		v.SoftwarePorts[i] = &SoftwarePort{Software: p.Software, Port: p.Port}
	}
	if img.Container != upstream.ContainerTrue && img.Container != upstream.ContainerFalse {
		m.warn("Container", img.Container, img.CompShareImageId)
	}
	return v
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

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
