package graph

import (
	"runtime"
	"sync"
	"weak"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/upstream"
)

// pageMemo maps each upstream response once, for every request that reads
// it: the upstream's responses are shared and read-only (a response cache
// hands one response to every hit, the client one to every caller of a
// coalesced call), and so are the models mapped from them (a model that
// must change is copied: ImageGroup.WithVersionsError, AsComplete). An entry
// lives as long as its response: it is keyed by a weak pointer and dropped
// by a cleanup once the response is collected. Without it, every cache hit
// mapped its whole page again: a fifth of the CPU of an executed cache hit
// (docs/performance.md, "Mechanisms that exist for speed").
type pageMemo struct {
	mapper model.Mapper

	mu sync.Mutex
	m  map[pageKey]*Page
}

type pageKey struct {
	resp     weak.Pointer[upstream.DescribeCommunityImagesResponse]
	complete bool
}

func newPageMemo(mapper model.Mapper) *pageMemo {
	return &pageMemo{mapper: mapper, m: map[pageKey]*Page{}}
}

// page returns resp mapped; complete says whether its request had no
// version-level filter, so that each group holds every version.
func (pm *pageMemo) page(resp *upstream.DescribeCommunityImagesResponse, complete bool) *Page {
	key := pageKey{resp: weak.Make(resp), complete: complete}
	pm.mu.Lock()
	p, ok := pm.m[key]
	pm.mu.Unlock()
	if ok {
		return p
	}
	p = newPage(pm.mapper.Groups(resp, complete), resp, complete)
	pm.mu.Lock()
	if q, ok := pm.m[key]; ok {
		p = q // mapped meanwhile by another request
	} else {
		pm.m[key] = p
		runtime.AddCleanup(resp, pm.forget, key)
	}
	pm.mu.Unlock()
	return p
}

func (pm *pageMemo) forget(key pageKey) {
	pm.mu.Lock()
	delete(pm.m, key)
	pm.mu.Unlock()
}

// len is the number of pages the memo holds, for tests.
func (pm *pageMemo) len() int {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	return len(pm.m)
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
