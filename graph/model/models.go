// Package model holds the GraphQL API's models: hand-written ones in this
// file, generated enums and inputs in models_gen.go, and the mapping from the
// upstream's types in mapping.go. It knows nothing of HTTP.
package model

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// ImageGroup is one version group. Every field binds to a struct field or a
// method without a context, so gqlgen reads them inline: no resolver, no
// goroutine. That holds for versions and latestVersion too, because a group
// handed to gqlgen whose selection reads them already holds every version
// (Complete), or the error fetching them: the resolvers that produce groups
// from a version-filtered response fetch the full groups first when the
// selection needs them.
type ImageGroup struct {
	GroupID        string
	Name           string
	Description    string
	CreatedCount   int
	FavoritesCount int
	RecommendCount int
	UseTime        int
	IsFavorite     bool
	Status         ImageGroupStatus

	// KnownVersions are the versions that came with the group in the
	// response that produced it, in the API's version order.
	KnownVersions []*ImageVersion
	// Complete reports whether KnownVersions is every version of the group:
	// true only when the producing request had no version-level filter.
	Complete bool

	// sorted is KnownVersions in the API's version order, set by the Mapper
	// for a complete group (computed on demand for one built otherwise).
	sorted []*ImageVersion
	// versionsErr is why every version could not be fetched.
	versionsErr error
	// maxPage bounds versions' first and last (DefaultMaxPageSize if 0).
	maxPage int
}

// ErrVersionsNotLoaded is what versions and latestVersion answer for a group
// that does not hold every version: a resolver handed it to a selection that
// reads them without fetching the full group first. It is a bug, so clients
// see it as an internal error, never as a short list.
var ErrVersionsNotLoaded = errors.New("model: versions of an incomplete group were read without fetching the full group")

// Versions is ImageGroup.versions: every version in the API's version order,
// filtered by status and paged.
func (g *ImageGroup) Versions(first *int, after *string, last *int, before *string, status []ImageVersionStatus) (*ImageVersionConnection, error) {
	maxPage := g.maxPage
	if maxPage <= 0 {
		maxPage = DefaultMaxPageSize
	}
	args, err := ParsePageArgs(first, after, last, before, maxPage)
	if err != nil {
		return nil, err
	}
	all, err := g.allVersions()
	if err != nil {
		return nil, err
	}
	if status != nil {
		all = slices.DeleteFunc(slices.Clone(all), func(v *ImageVersion) bool { return !slices.Contains(status, v.Status) })
	}
	return newVersionConnection(all, args), nil
}

// LatestVersion is ImageGroup.latestVersion: the newest AVAILABLE version by
// publishedAt, or nil.
func (g *ImageGroup) LatestVersion() (*ImageVersion, error) {
	all, err := g.allVersions()
	if err != nil {
		return nil, err
	}
	return LatestAvailable(all), nil
}

// allVersions returns every version in the API's version order.
func (g *ImageGroup) allVersions() ([]*ImageVersion, error) {
	switch {
	case g.versionsErr != nil:
		return nil, g.versionsErr
	case !g.Complete:
		return nil, ErrVersionsNotLoaded
	case g.sorted != nil || len(g.KnownVersions) == 0:
		return g.sorted, nil
	default:
		return SortVersions(g.KnownVersions), nil
	}
}

// WithVersionsError returns a copy of g whose versions and latestVersion
// answer err: the group's other fields stay when fetching its full version
// list failed. g itself is not changed, since other parts of a response may
// share it.
func (g *ImageGroup) WithVersionsError(err error) *ImageGroup {
	cp := *g
	cp.versionsErr = err
	return &cp
}

// AsComplete returns a copy of g that takes KnownVersions for every version:
// the best answer for a group the upstream no longer returns by its id.
func (g *ImageGroup) AsComplete() *ImageGroup {
	cp := *g
	cp.Complete = true
	cp.sorted = SortVersions(g.KnownVersions)
	return &cp
}

// IsNode marks ImageGroup as a Node.
func (ImageGroup) IsNode() {}

// ID is the group's opaque global ID, made when a query reads it.
func (g *ImageGroup) ID() string { return GlobalID(TypeImageGroup, g.GroupID) }

// GetID returns the global ID.
func (g ImageGroup) GetID() string { return g.ID() }

// IsEntity marks ImageGroup as a federation entity.
func (ImageGroup) IsEntity() {}

// ImageVersion is one version of a group. Its scalar fields bind directly.
type ImageVersion struct {
	ImageID            string
	Name               string
	VersionName        string
	VersionDescription string
	Description        string
	Author             string
	AuthorType         AuthorType
	Status             ImageVersionStatus
	Price              float64
	IsFree             bool
	Tags               []string
	SupportedGpuTypes  []string
	CoverURL           *string
	IsContainer        bool
	AutoStart          bool
	CreatedAt          time.Time
	UpdatedAt          time.Time
	PublishedAt        *time.Time
	SizeMB             int
	Readme             string
	QrCodeURL          *string
	SoftwarePorts      []*SoftwarePort

	// GroupID is the upstream id of the version's group.
	GroupID string
	// Parent is the group this version came with, if it came with one.
	Parent *ImageGroup
}

// IsNode marks ImageVersion as a Node.
func (ImageVersion) IsNode() {}

// ID is the version's opaque global ID, made when a query reads it.
func (v *ImageVersion) ID() string { return GlobalID(TypeImageVersion, v.ImageID) }

// GetID returns the global ID.
func (v ImageVersion) GetID() string { return v.ID() }

// IsEntity marks ImageVersion as a federation entity.
func (ImageVersion) IsEntity() {}

// ImageVersionConnection is one page of a group's versions. Its edges and
// page info are made when a query reads them.
type ImageVersionConnection struct {
	// Nodes are the versions of this page.
	Nodes []*ImageVersion
	// TotalCount is the number of versions in the whole list (after the
	// status filter).
	TotalCount int
	// window is where Nodes sit in the whole list.
	window Window
}

// Edges are the versions of this page, each with its cursor.
func (c *ImageVersionConnection) Edges() []*ImageVersionEdge {
	edges := make([]*ImageVersionEdge, len(c.Nodes))
	for i, v := range c.Nodes {
		edges[i] = &ImageVersionEdge{Cursor: EncodeCursor(c.window.Start + i), Node: v}
	}
	return edges
}

// PageInfo is where this page sits in the whole list.
func (c *ImageVersionConnection) PageInfo() *PageInfo {
	return NewPageInfo(c.window, len(c.Nodes), c.TotalCount)
}

// SoftwarePort is a piece of software an image serves and its port.
type SoftwarePort struct {
	Software string
	Port     int
}

// MarshalDateTime writes t as an RFC 3339 string in UTC, seconds precision.
func MarshalDateTime(t time.Time) graphql.Marshaler {
	return graphql.MarshalString(t.UTC().Format(time.RFC3339))
}

// UnmarshalDateTime reads an RFC 3339 string.
func UnmarshalDateTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("DateTime must be an RFC 3339 string, got %T", v)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("DateTime must be an RFC 3339 string: %w", err)
	}
	return t.UTC(), nil
}
