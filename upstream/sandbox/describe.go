package sandbox

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/compshare/imagegraph/upstream"
)

// Describe answers req from the dataset as it is when called: the query
// logic behind the handler, and the oracle tests compare answers against.
// It returns a deep copy, so the caller may change it. A request the real
// upstream would refuse yields an *upstream.APIError of Kind KindRetCode
// with the RetCode it would send (160 for a missing Region, 230 for a bad
// Limit, Offset, SortCondition.Field or empty Tag).
//
// Semantics:
//   - GroupId is exact on the group. Name is a case-insensitive substring of
//     the group's ImageName or of any of its versions' Name (a version may be
//     named apart from its group). Both keep the group's full Data.
//   - CompShareImageId (exact), Author (exact), FuzzySearch (case-insensitive
//     substring of the group's ImageName, the version's Name or its Author),
//     Tag (the version carries every tag), IsFree (Price 0), IsOfficial
//     (AuthInfo 1) and IfAutoStart (AutoStart) filter versions: a group's
//     Data is trimmed to the matching versions, and a group left with none
//     is dropped. A false IsFree, IsOfficial or IfAutoStart filters nothing.
//   - Without SortCondition groups come in stored order. With it they are
//     sorted stably by PubTime (the newest PubTime among the group's returned
//     versions), Favor or FavoritesCount (the group's FavoritesCount) or
//     ImageUseTime, ascending when ASC is true; ties go by GroupId ascending
//     whatever the direction.
//   - TotalCount counts the matching groups, AvailableTotalCount those of
//     them whose Status is Available. Offset and Limit then page the groups;
//     Limit 0 or absent means 20, an Offset past the end an empty page.
//   - Versions keep their stored order inside Data, which is not sorted.
func (s *Server) Describe(req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
	if req.Region == "" {
		return nil, missingParam("Region")
	}
	if err := validate(req); err != nil {
		return nil, err
	}
	idx := s.data.Load() // one snapshot for the whole answer

	type match struct {
		g    int
		keep []int // nil: every version
		key  int64
	}
	versionFilter := req.HasVersionFilter()
	name := strings.ToLower(req.Name)
	fuzzy := strings.ToLower(req.FuzzySearch)
	var matches []match
	for i := range idx.groups {
		g := &idx.groups[i]
		if req.GroupId != "" && g.GroupId != req.GroupId {
			continue
		}
		if name != "" && !strings.Contains(idx.groupName[i], name) &&
			!slices.ContainsFunc(idx.versionName[i], func(v string) bool { return strings.Contains(v, name) }) {
			continue
		}
		m := match{g: i}
		if versionFilter {
			m.keep = []int{}
			for j := range g.Data {
				if versionMatches(req, &g.Data[j], idx.groupName[i], idx.versionName[i][j], idx.author[i][j], fuzzy) {
					m.keep = append(m.keep, j)
				}
			}
			if len(m.keep) == 0 {
				continue
			}
		}
		matches = append(matches, m)
	}

	resp := &upstream.DescribeCommunityImagesResponse{
		Action:              upstream.ActionDescribeCommunityImages + "Response",
		TotalCount:          len(matches),
		CompshareImageGroup: []upstream.ImageGroup{},
	}
	for _, m := range matches {
		if idx.groups[m.g].Status == upstream.GroupStatusAvailable {
			resp.AvailableTotalCount++
		}
	}

	if sc := req.SortCondition; sc != nil {
		for k := range matches {
			g := &idx.groups[matches[k].g]
			switch sc.Field {
			case upstream.SortPubTime:
				matches[k].key = newestPubTime(g, matches[k].keep)
			case upstream.SortFavor, upstream.SortFavoritesCount:
				matches[k].key = int64(g.FavoritesCount)
			case upstream.SortImageUseTime:
				matches[k].key = int64(g.ImageUseTime)
			}
		}
		slices.SortStableFunc(matches, func(a, b match) int {
			c := cmp.Compare(a.key, b.key)
			if !sc.ASC {
				c = -c
			}
			if c != 0 {
				return c
			}
			return strings.Compare(idx.groups[a.g].GroupId, idx.groups[b.g].GroupId)
		})
	}

	offset, limit := 0, upstream.DefaultLimit
	if req.Offset != nil {
		offset = *req.Offset
	}
	if req.Limit != nil && *req.Limit > 0 {
		limit = *req.Limit
	}
	if offset < len(matches) {
		page := matches[offset:min(offset+limit, len(matches))]
		resp.CompshareImageGroup = make([]upstream.ImageGroup, len(page))
		for k, m := range page {
			resp.CompshareImageGroup[k] = copyGroup(&idx.groups[m.g], m.keep)
		}
	}
	return resp, nil
}

// validate refuses what the real upstream answers with RetCode 230.
func validate(req *upstream.DescribeCommunityImagesRequest) *upstream.APIError {
	if req.Offset != nil && *req.Offset < 0 {
		return paramUnavailable("Offset")
	}
	if req.Limit != nil && (*req.Limit < 0 || *req.Limit > upstream.MaxLimit) {
		return paramUnavailable("Limit")
	}
	if req.SortCondition != nil && !req.SortCondition.Field.Valid() {
		return paramUnavailable("SortCondition.Field")
	}
	for i, t := range req.Tag {
		if t == "" {
			return paramUnavailable(fmt.Sprintf("Tag.%d", i))
		}
	}
	return nil
}

func versionMatches(req *upstream.DescribeCommunityImagesRequest, img *upstream.Image, groupName, versionName, author, fuzzy string) bool {
	if req.CompShareImageId != "" && img.CompShareImageId != req.CompShareImageId {
		return false
	}
	if req.Author != "" && img.Author != req.Author {
		return false
	}
	if fuzzy != "" && !strings.Contains(groupName, fuzzy) && !strings.Contains(versionName, fuzzy) && !strings.Contains(author, fuzzy) {
		return false
	}
	for _, t := range req.Tag {
		if !slices.Contains(img.Tags, t) {
			return false
		}
	}
	if isTrue(req.IsFree) && img.Price != 0 {
		return false
	}
	if isTrue(req.IsOfficial) && img.AuthInfo != upstream.AuthOfficial {
		return false
	}
	if isTrue(req.IfAutoStart) && !img.AutoStart {
		return false
	}
	return true
}

func isTrue(b *bool) bool { return b != nil && *b }

// newestPubTime is the largest PubTime among g's versions at keep (all of
// them when keep is nil).
func newestPubTime(g *upstream.ImageGroup, keep []int) int64 {
	var newest int64
	if keep == nil {
		for _, img := range g.Data {
			newest = max(newest, img.PubTime)
		}
		return newest
	}
	for _, j := range keep {
		newest = max(newest, g.Data[j].PubTime)
	}
	return newest
}

func missingParam(name string) *upstream.APIError {
	return retCodeError(upstream.RetCodeMissingParam, fmt.Sprintf("Missing params [%s]", name))
}

func paramUnavailable(name string) *upstream.APIError {
	return retCodeError(upstream.RetCodeParamUnavailable, fmt.Sprintf("Params [%s] not available", name))
}

func retCodeError(code int, msg string) *upstream.APIError {
	return &upstream.APIError{
		Action:  upstream.ActionDescribeCommunityImages,
		Kind:    upstream.KindRetCode,
		RetCode: code,
		Message: msg,
	}
}
