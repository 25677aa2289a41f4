package sandbox

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox/internal/dataset"
)

// datasetJSON is the committed dataset, written by go generate.
//
//go:embed data/images.json
var datasetJSON []byte

// The edge cases the embedded dataset is guaranteed to hold, for tests of
// this package and of its consumers.
const (
	// EdgeEmptyCoverImageID is a version whose Cover is empty.
	EdgeEmptyCoverImageID = dataset.EmptyCoverImageID
	// EdgeReviewingImageID is a version under review (Status Reviewing) with
	// PubTime 0, in a group that also has Available versions. Every
	// Reviewing version has PubTime 0, and only those, a rule changes keep.
	// It is the version the first Tick publishes.
	EdgeReviewingImageID = dataset.ReviewingImageID
	// EdgeRenamedImageID is a version whose Name differs from its group's
	// ImageName; only its Name contains EdgeRenamedImageWord, so a Name
	// search for that word finds its group through the version alone.
	EdgeRenamedImageID = dataset.RenamedImageID
	// EdgeRenamedImageWord is the word only EdgeRenamedImageID's Name holds.
	EdgeRenamedImageWord = dataset.RenamedImageWord
	// EdgeUnavailableGroupID is a group with no Available version, so its
	// Status is UnAvailable.
	EdgeUnavailableGroupID = dataset.UnavailableGroupID
	// EdgeUnsortedGroupID is a group of four versions stored in an order
	// that is neither ascending nor descending by PubTime.
	EdgeUnsortedGroupID = dataset.UnsortedGroupID
	// EdgePartialTagGroupID is a group of three versions of which only the
	// two newest carry EdgePartialTag, so a Tag filter trims it.
	EdgePartialTagGroupID = dataset.PartialTagGroupID
	// EdgePartialTag is the tag only some versions of EdgePartialTagGroupID carry.
	EdgePartialTag = dataset.PartialTag
	// EdgePopularTag is carried by every version of 10 to 30 groups.
	EdgePopularTag = dataset.PopularTag
	// EdgeMultiGroupAuthor is an author with versions in at least three groups.
	EdgeMultiGroupAuthor = dataset.MultiGroupAuthor
)

// embedded parses datasetJSON once per process.
var embedded = sync.OnceValues(func() (*index, error) {
	var groups []upstream.ImageGroup
	if err := json.Unmarshal(datasetJSON, &groups); err != nil {
		return nil, fmt.Errorf("sandbox: embedded dataset: %w", err)
	}
	return newIndex(groups), nil
})

// index is a read-only dataset with the lower-cased strings the fuzzy
// filters compare, computed once. It is never changed once built: a change
// builds a new index with withGroup, which shares everything but the
// changed group with the old one.
type index struct {
	groups []upstream.ImageGroup
	// groupName[i] is groups[i].ImageName lower-cased.
	groupName []string
	// versionName[i][j] and author[i][j] are groups[i].Data[j]'s Name and
	// Author lower-cased.
	versionName [][]string
	author      [][]string
	// groupAt and versionAt locate the first group and version with an id.
	// A change never moves a group or a version, so every index built from
	// this one by withGroup shares them.
	groupAt   map[string]int
	versionAt map[string]position
}

// position is where a version is stored: groups[g].Data[v].
type position struct{ g, v int }

func newIndex(groups []upstream.ImageGroup) *index {
	idx := &index{
		groups:      groups,
		groupName:   make([]string, len(groups)),
		versionName: make([][]string, len(groups)),
		author:      make([][]string, len(groups)),
		groupAt:     make(map[string]int, len(groups)),
		versionAt:   make(map[string]position),
	}
	for i := range groups {
		idx.lowerCase(i)
		if _, dup := idx.groupAt[groups[i].GroupId]; !dup {
			idx.groupAt[groups[i].GroupId] = i
		}
		for j, img := range groups[i].Data {
			if _, dup := idx.versionAt[img.CompShareImageId]; !dup {
				idx.versionAt[img.CompShareImageId] = position{i, j}
			}
		}
	}
	return idx
}

// lowerCase fills the lower-cased strings of group i.
func (idx *index) lowerCase(i int) {
	g := &idx.groups[i]
	idx.groupName[i] = strings.ToLower(g.ImageName)
	idx.versionName[i] = make([]string, len(g.Data))
	idx.author[i] = make([]string, len(g.Data))
	for j, img := range g.Data {
		idx.versionName[i][j] = strings.ToLower(img.Name)
		idx.author[i][j] = strings.ToLower(img.Author)
	}
}

// withGroup returns a new index whose group i is g, sharing every other
// group and string with idx, which it leaves unchanged. g must hold the
// same versions (by id, in the same order) as the group it replaces, in a
// Data slice of its own.
func (idx *index) withGroup(i int, g upstream.ImageGroup) *index {
	out := &index{
		groups:      slices.Clone(idx.groups),
		groupName:   slices.Clone(idx.groupName),
		versionName: slices.Clone(idx.versionName),
		author:      slices.Clone(idx.author),
		groupAt:     idx.groupAt,
		versionAt:   idx.versionAt,
	}
	out.groups[i] = g
	out.lowerCase(i)
	return out
}

func copyGroups(in []upstream.ImageGroup) []upstream.ImageGroup {
	out := make([]upstream.ImageGroup, len(in))
	for i := range in {
		out[i] = copyGroup(&in[i], nil)
	}
	return out
}

// copyGroup deep-copies g, keeping only the versions at the indexes in keep,
// or all of them when keep is nil.
func copyGroup(g *upstream.ImageGroup, keep []int) upstream.ImageGroup {
	out := *g
	if keep == nil {
		out.Data = make([]upstream.Image, len(g.Data))
		for j := range g.Data {
			out.Data[j] = copyImage(&g.Data[j])
		}
		return out
	}
	out.Data = make([]upstream.Image, len(keep))
	for k, j := range keep {
		out.Data[k] = copyImage(&g.Data[j])
	}
	return out
}

func copyImage(img *upstream.Image) upstream.Image {
	out := *img
	out.Tags = cloneNonNil(img.Tags)
	out.SupportedGpuTypes = cloneNonNil(img.SupportedGpuTypes)
	out.SoftwarePorts = cloneNonNil(img.SoftwarePorts)
	return out
}

// cloneNonNil copies s, returning an empty slice rather than nil so that it
// encodes as [].
func cloneNonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return slices.Clone(s)
}
