package graph

import (
	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/upstream"
)

// pageMemo maps each upstream response once, for every request that reads
// it: the upstream's responses are shared and read-only (a response cache
// hands one response to every hit, the client one to every caller of a
// coalesced call), and so are the models mapped from them (a model that
// must change is copied: ImageGroup.WithVersionsError, AsComplete). The
// page is kept on the response itself (upstream's View), so it lives
// exactly as long as the response. Without it, every cache hit mapped its
// whole page again: a fifth of the CPU of an executed cache hit
// (docs/performance.md, "Mechanisms that exist for speed").
//
// It once kept the pages in a map keyed by weak pointers to the responses,
// each dropped by a cleanup once its response was collected: every page
// then outlived its response by one collection, so each collection found
// alive every page mapped since the one before. That inflated the live heap
// by about 40% at the default GOGC, and grew it without bound at GOGC=400
// (2 GB in 15 s of distinct pages; TestPageDiesWithItsResponse).
type pageMemo struct {
	mapper model.Mapper
}

func newPageMemo(mapper model.Mapper) *pageMemo {
	return &pageMemo{mapper: mapper}
}

// pageView names a page among a response's views: mapped by which mapper,
// complete or not.
type pageView struct {
	mapper   model.Mapper
	complete bool
}

// page returns resp mapped; complete says whether its request had no
// version-level filter, so that each group holds every version.
func (pm *pageMemo) page(resp *upstream.DescribeCommunityImagesResponse, complete bool) *Page {
	return resp.View(pageView{pm.mapper, complete}, func() any {
		return newPage(pm.mapper.Groups(resp, complete), resp, complete)
	}).(*Page)
}

// newPage indexes the groups (when complete) and the versions of a page,
// so that the loaders find them there instead of priming a cache entry for
// each on every request.
func newPage(groups []*model.ImageGroup, resp *upstream.DescribeCommunityImagesResponse, complete bool) *Page {
	p := &Page{
		Groups:              groups,
		TotalCount:          resp.TotalCount,
		AvailableTotalCount: resp.AvailableTotalCount,
		versions:            map[string]*model.ImageVersion{},
	}
	if complete {
		p.groups = make(map[string]*model.ImageGroup, len(groups))
	}
	for _, g := range groups {
		if complete {
			p.groups[g.GroupID] = g
		}
		for _, v := range g.KnownVersions {
			p.versions[v.ImageID] = v
		}
	}
	return p
}
