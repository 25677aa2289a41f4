// Package model holds the GraphQL API's models: hand-written ones in this
// file, generated enums and inputs in models_gen.go, and the mapping from the
// upstream's types in mapping.go. It knows nothing of HTTP.
package model

import (
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// ImageGroup is one version group. Its scalar fields bind directly, so gqlgen
// reads them without a resolver.
type ImageGroup struct {
	ID             string
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
}

// IsNode marks ImageGroup as a Node.
func (ImageGroup) IsNode() {}

// GetID returns the global ID.
func (g ImageGroup) GetID() string { return g.ID }

// IsEntity marks ImageGroup as a federation entity.
func (ImageGroup) IsEntity() {}

// ImageVersion is one version of a group. Its scalar fields bind directly.
type ImageVersion struct {
	ID                 string
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

// GetID returns the global ID.
func (v ImageVersion) GetID() string { return v.ID }

// IsEntity marks ImageVersion as a federation entity.
func (ImageVersion) IsEntity() {}

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
