package sandbox

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/compshare/imagegraph/upstream"
)

// ErrNotFound is wrapped by the error of a change to a version or group the
// dataset does not hold.
var ErrNotFound = errors.New("not found")

// VersionChange is a change to one version, for UpdateVersion: each non-nil
// field replaces the version's own, the others are left alone. Its JSON is
// the body of POST /sandbox/versions/{imageId}.
type VersionChange struct {
	// Status is the version's upstream status: Available, Reviewing or
	// Offline (upstream.ImageStatusAvailable and so on), matched
	// case-insensitively. A version that leaves Reviewing gets PubTime now,
	// one that enters it PubTime 0, and its group's Status follows
	// (Available when any of its versions is).
	Status *string `json:"status,omitempty"`
	// Price is the version's price, 0 for free: a finite number, not negative.
	Price *float64 `json:"price,omitempty"`
	// Name is the version's image name; it must not be blank.
	Name *string `json:"name,omitempty"`
	// VersionDesc is what changed in the version (its release note).
	VersionDesc *string `json:"versionDesc,omitempty"`
}

// versionChangeFields names VersionChange's JSON fields, for messages.
const versionChangeFields = "status, price, name, versionDesc"

// GroupChange is a change to one group, for UpdateGroup: each non-nil field
// replaces the group's own. Its JSON is the body of POST
// /sandbox/groups/{groupId}.
type GroupChange struct {
	// FavoritesCount is how many users marked the group a favourite; not negative.
	FavoritesCount *int `json:"favoritesCount,omitempty"`
	// ImageUseTime is how often the group's image was used; not negative.
	ImageUseTime *int `json:"imageUseTime,omitempty"`
}

// groupChangeFields names GroupChange's JSON fields, for messages.
const groupChangeFields = "favoritesCount, imageUseTime"

// UpdateVersion applies change to the version whose CompShareImageId is
// imageID (the first one, should a WithGroups dataset repeat an id) and
// returns the version as it is now, with GroupId set to its group's. The
// change is seen by every Describe that starts after it returns. A change
// that alters a field also sets the version's UpdateTime to now. The error
// wraps ErrNotFound for an unknown imageID; it says what is wrong with a
// change that sets no field or an invalid one, and nothing is changed then.
func (s *Server) UpdateVersion(imageID string, change VersionChange) (upstream.Image, error) {
	if err := change.normalize(); err != nil {
		return upstream.Image{}, err
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	idx := s.data.Load()
	at, ok := idx.versionAt[imageID]
	if !ok {
		return upstream.Image{}, fmt.Errorf("sandbox: no version has CompShareImageId %q: %w", clip(imageID, maxMessageBytes), ErrNotFound)
	}
	idx = idx.changeVersion(at, change, s.now())
	s.data.Store(idx)
	return versionOf(idx, at), nil
}

// UpdateGroup applies change to the group whose GroupId is groupID (the
// first one, should a WithGroups dataset repeat an id) and returns a deep
// copy of the group as it is now, every version included. The change is
// seen by every Describe that starts after it returns. The error wraps
// ErrNotFound for an unknown groupID; it says what is wrong with a change
// that sets no field or an invalid one, and nothing is changed then.
func (s *Server) UpdateGroup(groupID string, change GroupChange) (upstream.ImageGroup, error) {
	if err := change.validate(); err != nil {
		return upstream.ImageGroup{}, err
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	idx := s.data.Load()
	i, ok := idx.groupAt[groupID]
	if !ok {
		return upstream.ImageGroup{}, fmt.Errorf("sandbox: no group has GroupId %q: %w", clip(groupID, maxMessageBytes), ErrNotFound)
	}
	idx = idx.changeGroup(i, change)
	s.data.Store(idx)
	return copyGroup(&idx.groups[i], nil), nil
}

// normalize checks c and spells its Status and Price the one way the
// dataset does.
func (c *VersionChange) normalize() error {
	if c.Status == nil && c.Price == nil && c.Name == nil && c.VersionDesc == nil {
		return fmt.Errorf("sandbox: the change sets no field: set at least one of %s", versionChangeFields)
	}
	if c.Status != nil {
		st, err := versionStatus(*c.Status)
		if err != nil {
			return err
		}
		c.Status = &st
	}
	if c.Price != nil {
		p := *c.Price
		if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
			return fmt.Errorf("sandbox: price must be a finite number not below 0, got %v", p)
		}
		p += 0 // -0 becomes 0, which encodes as 0
		c.Price = &p
	}
	if c.Name != nil && strings.TrimSpace(*c.Name) == "" {
		return errors.New("sandbox: name must not be blank")
	}
	return nil
}

// versionStatus returns the reference's spelling of the version status s.
func versionStatus(s string) (string, error) {
	for _, st := range []string{upstream.ImageStatusAvailable, upstream.ImageStatusReviewing, upstream.ImageStatusOffline} {
		if strings.EqualFold(s, st) {
			return st, nil
		}
	}
	return "", fmt.Errorf("sandbox: status %q is not one of %s, %s, %s", clip(s, maxMessageBytes),
		upstream.ImageStatusAvailable, upstream.ImageStatusReviewing, upstream.ImageStatusOffline)
}

func (c GroupChange) validate() error {
	if c.FavoritesCount == nil && c.ImageUseTime == nil {
		return fmt.Errorf("sandbox: the change sets no field: set at least one of %s", groupChangeFields)
	}
	if c.FavoritesCount != nil && *c.FavoritesCount < 0 {
		return fmt.Errorf("sandbox: favoritesCount must not be negative, got %d", *c.FavoritesCount)
	}
	if c.ImageUseTime != nil && *c.ImageUseTime < 0 {
		return fmt.Errorf("sandbox: imageUseTime must not be negative, got %d", *c.ImageUseTime)
	}
	return nil
}

// changeVersion returns idx with the normalized change c applied to the
// version at at, or idx itself when c alters nothing.
func (idx *index) changeVersion(at position, c VersionChange, now time.Time) *index {
	g := &idx.groups[at.g]
	old := &g.Data[at.v]
	img := *old // shares old's slices, which no change touches
	if c.Status != nil {
		setStatus(&img, *c.Status, now)
	}
	if c.Price != nil {
		img.Price = *c.Price
	}
	if c.Name != nil {
		img.Name = *c.Name
	}
	if c.VersionDesc != nil {
		img.VersionDesc = *c.VersionDesc
	}
	if img.Status == old.Status && img.PubTime == old.PubTime && img.Price == old.Price &&
		img.Name == old.Name && img.VersionDesc == old.VersionDesc {
		return idx
	}
	img.UpdateTime = max(img.UpdateTime, now.Unix())
	out := *g
	out.Data = slices.Clone(g.Data)
	out.Data[at.v] = img
	out.Status = groupStatus(out.Data)
	return idx.withGroup(at.g, out)
}

// changeGroup returns idx with the valid change c applied to group i, or idx
// itself when c alters nothing.
func (idx *index) changeGroup(i int, c GroupChange) *index {
	g := idx.groups[i] // shares Data, which a group change does not touch
	if c.FavoritesCount != nil {
		g.FavoritesCount = *c.FavoritesCount
	}
	if c.ImageUseTime != nil {
		g.ImageUseTime = *c.ImageUseTime
	}
	if g.FavoritesCount == idx.groups[i].FavoritesCount && g.ImageUseTime == idx.groups[i].ImageUseTime {
		return idx
	}
	return idx.withGroup(i, g)
}

// setStatus moves img to status, keeping the dataset's rule that PubTime is
// 0 exactly when a version is under review.
func setStatus(img *upstream.Image, status string, now time.Time) {
	if img.Status == status {
		return
	}
	img.Status = status
	switch {
	case status == upstream.ImageStatusReviewing:
		img.PubTime = 0
	case img.PubTime == 0:
		img.PubTime = now.Unix()
	}
}

// groupStatus is the Status of a group holding versions: Available when one
// of them is.
func groupStatus(versions []upstream.Image) string {
	for _, img := range versions {
		if img.Status == upstream.ImageStatusAvailable {
			return upstream.GroupStatusAvailable
		}
	}
	return upstream.GroupStatusUnAvailable
}

// versionOf returns a deep copy of the version at at, with GroupId set.
func versionOf(idx *index, at position) upstream.Image {
	g := &idx.groups[at.g]
	img := copyImage(&g.Data[at.v])
	img.GroupId = g.GroupId
	return img
}
