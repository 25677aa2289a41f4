package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
)

// ActionDescribeCommunityImages is the one upstream action this package speaks.
const ActionDescribeCommunityImages = "DescribeCommunityImages"

// MaxLimit is the largest Limit the upstream accepts in one call.
const MaxLimit = 100

// DefaultLimit is the page size the upstream uses when Limit is not sent.
const DefaultLimit = 20

// SortField names a field the upstream can sort community images by.
type SortField string

// The sort fields named by the API reference. SortFavor and SortFavoritesCount
// both sort by the number of favourites.
const (
	SortFavor          SortField = "Favor"
	SortPubTime        SortField = "PubTime"
	SortImageUseTime   SortField = "ImageUseTime"
	SortFavoritesCount SortField = "FavoritesCount"
)

// Valid reports whether f is one of the sort fields the reference names.
func (f SortField) Valid() bool {
	switch f {
	case SortFavor, SortPubTime, SortImageUseTime, SortFavoritesCount:
		return true
	}
	return false
}

// SortCondition is the reference's SortCondition object: a field and whether
// the order is ascending.
type SortCondition struct {
	Field SortField
	ASC   bool
}

// DescribeCommunityImagesRequest holds every parameter of DescribeCommunityImages.
// Nil pointers, nil slices and empty strings are not sent.
type DescribeCommunityImagesRequest struct {
	// Region overrides the client's region for this call when not empty.
	Region string
	// CompShareImageId selects one version by its exact id.
	CompShareImageId string
	// GroupId selects one version group.
	GroupId string
	// Name is a fuzzy match on the image name.
	Name string
	// Author is an exact match on the author's nickname.
	Author string
	// FuzzySearch is a fuzzy match on the image name or the author.
	FuzzySearch string
	// Tag selects images that carry every one of these tags.
	Tag []string
	// IsFree, when true, selects free images only.
	IsFree *bool
	// IsOfficial, when true, selects official images only.
	IsOfficial *bool
	// IfAutoStart, when true, selects images that support auto start only.
	IfAutoStart *bool
	// SortCondition orders the groups; nil leaves the upstream's default order.
	SortCondition *SortCondition
	// Offset is the number of groups to skip (upstream default 0).
	Offset *int
	// Limit is the number of groups to return, at most MaxLimit (upstream default 20).
	Limit *int
}

// Bool returns a pointer to v, for the optional fields of a request.
func Bool(v bool) *bool { return &v }

// Int returns a pointer to v, for the optional fields of a request.
func Int(v int) *int { return &v }

// HasVersionFilter reports whether the request filters on a version-level
// field (CompShareImageId, Author, Tag, IsFree, IsOfficial, IfAutoStart,
// FuzzySearch). The upstream may trim a group's Data to the matching versions
// for such a request, so only a response to a request without one is known to
// carry every version of its groups.
func (r *DescribeCommunityImagesRequest) HasVersionFilter() bool {
	return r.CompShareImageId != "" || r.Author != "" || r.FuzzySearch != "" ||
		len(r.Tag) > 0 || isTrue(r.IsFree) || isTrue(r.IsOfficial) || isTrue(r.IfAutoStart)
}

func isTrue(b *bool) bool { return b != nil && *b }

// Validate refuses parameters the upstream would reject, before any I/O.
func (r *DescribeCommunityImagesRequest) Validate() error {
	if r.Offset != nil && *r.Offset < 0 {
		return fmt.Errorf("upstream: Offset must not be negative, got %d", *r.Offset)
	}
	if r.Limit != nil && (*r.Limit < 0 || *r.Limit > MaxLimit) {
		return fmt.Errorf("upstream: Limit must be between 0 and %d, got %d", MaxLimit, *r.Limit)
	}
	if r.SortCondition != nil && !r.SortCondition.Field.Valid() {
		return fmt.Errorf("upstream: unknown SortCondition.Field %q", r.SortCondition.Field)
	}
	for i, t := range r.Tag {
		if t == "" {
			return fmt.Errorf("upstream: Tag.%d must not be empty", i)
		}
	}
	return nil
}

// The group statuses the reference names.
const (
	GroupStatusAvailable   = "Available"
	GroupStatusUnAvailable = "UnAvailable"
)

// The version statuses the reference names.
const (
	ImageStatusAvailable = "Available"
	ImageStatusOffline   = "Offline"
	ImageStatusReviewing = "Reviewing"
)

// The AuthInfo values the reference names.
const (
	AuthCreator  = 0
	AuthOfficial = 1
	AuthVerified = 2
)

// The Container values the reference names.
const (
	ContainerTrue  = "True"
	ContainerFalse = "False"
)

// DescribeCommunityImagesResponse is the decoded answer of DescribeCommunityImages.
type DescribeCommunityImagesResponse struct {
	Action  string
	RetCode RetCode
	Message string `json:",omitempty"`
	// TotalCount is the number of groups matching the filter.
	TotalCount int
	// AvailableTotalCount is the number of those that are published.
	AvailableTotalCount int
	// CompshareImageGroup is the page of groups, each with its versions.
	CompshareImageGroup []ImageGroup
	// ImageSet is the flat version list of an older response shape; the
	// decoder folds it into CompshareImageGroup when that is absent.
	ImageSet []Image `json:",omitempty"`
	// RequestID is the upstream's X-UCLOUD-REQUEST-UUID header, not part of the body.
	RequestID string `json:"-"`

	// views are what readers derived from the response: see View.
	views []view
}

type view struct{ key, value any }

// viewsMu guards every response's views: one lock for all, held for a
// look through a list of one or two, which keeps the response a plain
// value (tests compare and encode it by value).
var viewsMu sync.Mutex

// View returns what build derives from the response under key (a
// comparable value naming what is derived and how), building it once:
// the readers that share a response (the hits of a cache, the callers of a
// coalesced call) share what they derive from it, and it lives exactly as
// long as the response, not a garbage collection longer. build runs
// without the lock, so two first readers may both build; the first value
// stored is the one every reader gets. A response is read-only once read,
// and so are its views.
func (r *DescribeCommunityImagesResponse) View(key any, build func() any) any {
	viewsMu.Lock()
	v, ok := r.view(key)
	viewsMu.Unlock()
	if ok {
		return v
	}
	v = build()
	viewsMu.Lock()
	defer viewsMu.Unlock()
	if stored, ok := r.view(key); ok {
		return stored
	}
	r.views = append(r.views, view{key, v})
	return v
}

func (r *DescribeCommunityImagesResponse) view(key any) (any, bool) {
	for _, v := range r.views {
		if v.key == key {
			return v.value, true
		}
	}
	return nil, false
}

// ImageGroup is the reference's CompshareImageGroup: one version group.
type ImageGroup struct {
	GroupId        string
	ImageName      string
	ImageDesc      string
	CreatedCount   int
	FavoritesCount int
	RecommendCount int
	ImageUseTime   int
	IsFavorite     bool
	Status         string
	Data           []Image
}

// Image is the reference's CompShareImage: one version of a group.
type Image struct {
	CompShareImageId  string
	Name              string
	Author            string
	AuthInfo          int
	Status            string
	Price             float64
	VersionName       string
	VersionDesc       string
	Description       string
	Tags              []string
	SupportedGpuTypes []string
	Cover             string
	Container         string
	AutoStart         bool
	CreateTime        int64
	UpdateTime        int64
	PubTime           int64
	Size              int64
	Readme            string
	QrCodeUrl         string
	SoftwarePorts     []SoftwarePort
	// GroupId is not in the reference's CompShareImage; some responses carry
	// it on flat ImageSet entries, and the decoder uses it when present.
	GroupId string `json:",omitempty"`
}

// SoftwarePort is one entry of a version's SoftwarePorts.
type SoftwarePort struct {
	Software string
	Port     int
}

// RetCode is the upstream's return code. It decodes from a JSON number or a
// string holding one, since some gateways quote it.
type RetCode int

// UnmarshalJSON accepts 171 and "171" alike.
func (c *RetCode) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*c = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return fmt.Errorf("upstream: RetCode %q is not a number", b)
	}
	*c = RetCode(n)
	return nil
}

// Normalize folds the older flat ImageSet shape into CompshareImageGroup when
// the response carried no groups: versions that name a GroupId are gathered
// under it in order of first appearance, and any other version becomes a group
// of its own keyed by its image id.
func (r *DescribeCommunityImagesResponse) Normalize() {
	if len(r.CompshareImageGroup) > 0 || len(r.ImageSet) == 0 {
		r.ImageSet = nil
		return
	}
	index := map[string]int{}
	for _, img := range r.ImageSet {
		key := img.GroupId
		if key == "" {
			key = img.CompShareImageId
		}
		i, ok := index[key]
		if !ok {
			i = len(r.CompshareImageGroup)
			index[key] = i
			r.CompshareImageGroup = append(r.CompshareImageGroup, ImageGroup{
				GroupId:   key,
				ImageName: img.Name,
				ImageDesc: img.Description,
				Status:    GroupStatusUnAvailable,
			})
		}
		g := &r.CompshareImageGroup[i]
		g.Data = append(g.Data, img)
		if img.Status == ImageStatusAvailable {
			g.Status = GroupStatusAvailable
		}
	}
	r.ImageSet = nil
}
