package graph

import (
	"context"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/upstream"
)

// baseQuery turns the filter and order of imageGroups into a Query without
// paging, refusing what the upstream would refuse.
func baseQuery(filter *model.ImageFilter, order *model.ImageOrder) (Query, error) {
	var q Query
	if filter != nil {
		for _, t := range filter.Tags {
			if strings.TrimSpace(t) == "" {
				return q, badInputf("filter.tags must not hold an empty tag")
			}
			if strings.Contains(t, tagSep) {
				return q, badInputf("filter.tags: %q holds a control character", t)
			}
		}
		q.Name = deref(filter.Name)
		q.Author = deref(filter.Author)
		q.Search = deref(filter.Search)
		q.Tags = strings.Join(filter.Tags, tagSep)
		q.Free = derefBool(filter.FreeOnly)
		q.Official = derefBool(filter.OfficialOnly)
		q.AutoStart = derefBool(filter.AutoStartOnly)
		q.GroupID = deref(filter.GroupID)
		q.ImageID = deref(filter.ImageID)
	}
	if order != nil {
		switch order.Field {
		case model.ImageOrderFieldPublishedAt:
			q.Sort = upstream.SortPubTime
		case model.ImageOrderFieldFavorites:
			q.Sort = upstream.SortFavor
		case model.ImageOrderFieldUsage:
			q.Sort = upstream.SortImageUseTime
		default:
			return q, badInputf("orderBy.field: unknown field %q", order.Field)
		}
		q.SortASC = order.Direction == model.OrderDirectionAsc
	}
	return q, nil
}

// imageGroups resolves Query.imageGroups: one upstream request, split into
// concurrent calls of at most upstream.MaxLimit when the window is larger.
func (r *Resolver) imageGroups(ctx context.Context, filter *model.ImageFilter, order *model.ImageOrder,
	first *int, after *string, last *int, before *string) (*model.ImageGroupConnection, error) {
	base, err := baseQuery(filter, order)
	if err != nil {
		return nil, err
	}
	args, err := parsePageArgs(first, after, last, before, r.MaxPageSize)
	if err != nil {
		return nil, err
	}
	loaders := For(ctx)
	items := wantsItems(ctx)
	total := -1
	w := args.window(total)
	if !items || w.size() == 0 || args.needsTotal() {
		// The counts alone, or the length of the list to count back from:
		// one call with Limit=1 (the upstream reads Limit=0 as 20).
		countQ := base
		countQ.Offset, countQ.Limit = 0, 1
		count, err := loaders.Page(ctx, countQ)
		if err != nil {
			return nil, err
		}
		total = count.TotalCount
		w = args.window(total)
		if !items || w.size() == 0 {
			// Page info still describes the window the items would fill.
			return groupConnection(w, w.size(), nil, count), nil
		}
	}
	pages, err := loaders.Pages(ctx, chunks(base, w))
	if err != nil {
		return nil, err
	}
	if total < 0 {
		// The window did not depend on the total; clip it to the list.
		total = pages[0].TotalCount
		w = args.window(total)
	}
	var groups []*model.ImageGroup
	for _, p := range pages {
		groups = append(groups, p.Groups...)
	}
	if len(groups) > w.size() {
		groups = groups[:w.size()]
	}
	return groupConnection(w, len(groups), groups, pages[0]), nil
}

// chunks splits window w of base into requests of at most upstream.MaxLimit.
func chunks(base Query, w window) []Query {
	var qs []Query
	for off := w.start; off < w.end; off += upstream.MaxLimit {
		q := base
		q.Offset, q.Limit = off, min(upstream.MaxLimit, w.end-off)
		qs = append(qs, q)
	}
	return qs
}

// groupConnection builds the connection of window w holding groups; n is the
// number of items the page info describes (the window's size when the
// selection asked for counts only and groups is nil).
func groupConnection(w window, n int, groups []*model.ImageGroup, counts *Page) *model.ImageGroupConnection {
	conn := &model.ImageGroupConnection{
		Edges:               make([]*model.ImageGroupEdge, len(groups)),
		Nodes:               groups,
		PageInfo:            pageInfo(w, n, counts.TotalCount),
		TotalCount:          counts.TotalCount,
		AvailableTotalCount: counts.AvailableTotalCount,
	}
	if conn.Nodes == nil {
		conn.Nodes = []*model.ImageGroup{}
	}
	for i, g := range groups {
		conn.Edges[i] = &model.ImageGroupEdge{
			Cursor:          encodeCursor(w.start + i),
			Node:            g,
			MatchedVersions: g.KnownVersions,
		}
	}
	return conn
}

// wantsItems reports whether the connection's selection asks for edges or
// nodes; without them only the counts and page info are needed.
func wantsItems(ctx context.Context) bool {
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		if f.Name == "edges" || f.Name == "nodes" {
			return true
		}
	}
	return false
}

// versionsOf returns every version of g in the API's version order, loading
// the group when the response that produced g may have trimmed its versions.
func versionsOf(ctx context.Context, g *model.ImageGroup) ([]*model.ImageVersion, error) {
	if !g.Complete {
		full, err := For(ctx).Group(ctx, g.GroupID)
		if err != nil {
			return nil, err
		}
		if full != nil {
			g = full
		}
	}
	return model.SortVersions(g.KnownVersions), nil
}

// groupVersions resolves ImageGroup.versions.
func (r *Resolver) groupVersions(ctx context.Context, g *model.ImageGroup, first *int, after *string,
	last *int, before *string, status []model.ImageVersionStatus) (*model.ImageVersionConnection, error) {
	args, err := parsePageArgs(first, after, last, before, r.MaxPageSize)
	if err != nil {
		return nil, err
	}
	all, err := versionsOf(ctx, g)
	if err != nil {
		return nil, err
	}
	if status != nil {
		all = slices.DeleteFunc(all, func(v *model.ImageVersion) bool { return !slices.Contains(status, v.Status) })
	}
	return versionConnection(all, args), nil
}

// node resolves one global ID; nil when it names nothing.
func (r *Resolver) node(ctx context.Context, id string) (model.Node, error) {
	typ, upstreamID, err := model.ParseGlobalID(id)
	if err != nil {
		return nil, badInputf("%q is not a valid global ID", id)
	}
	switch typ {
	case model.TypeImageGroup:
		g, err := For(ctx).Group(ctx, upstreamID)
		if g == nil || err != nil {
			return nil, err
		}
		return g, nil
	default:
		v, err := For(ctx).Version(ctx, upstreamID)
		if v == nil || err != nil {
			return nil, err
		}
		return v, nil
	}
}

// nodes resolves several global IDs concurrently, keeping their order; a
// failing entry is null with its error at its own path.
func (r *Resolver) nodes(ctx context.Context, ids []string) ([]model.Node, error) {
	if len(ids) > r.MaxPageSize {
		return nil, badInputf("nodes takes at most %d ids, got %d", r.MaxPageSize, len(ids))
	}
	out := make([]model.Node, len(ids))
	errs := each(len(ids), func(i int) (err error) {
		out[i], err = r.node(ctx, ids[i])
		return err
	})
	for i, err := range errs {
		if err != nil {
			graphql.AddError(graphql.WithPathContext(ctx, graphql.NewPathWithIndex(i)), err)
		}
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefBool(b *bool) bool { return b != nil && *b }
