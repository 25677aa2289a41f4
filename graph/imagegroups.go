package graph

import (
	"context"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/upstream"
)

// basePageKey turns the filter and order of imageGroups into a PageKey without
// paging, refusing what the upstream would refuse.
func basePageKey(filter *model.ImageFilter, order *model.ImageOrder) (PageKey, error) {
	var q PageKey
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
	base, err := basePageKey(filter, order)
	if err != nil {
		return nil, err
	}
	args, err := model.ParsePageArgs(first, after, last, before, r.MaxPageSize)
	if err != nil {
		return nil, err
	}
	loaders := For(ctx)
	sel := groupConnectionSelection(ctx)
	total := -1
	w := args.Window(total)
	if !sel.items || w.Size() == 0 || args.NeedsTotal() {
		// The counts alone, or the length of the list to count back from:
		// one call with Limit=1 (the upstream reads Limit=0 as 20).
		countQ := base
		countQ.Offset, countQ.Limit = 0, 1
		count, err := loaders.Page(ctx, countQ)
		if err != nil {
			return nil, err
		}
		total = count.TotalCount
		w = args.Window(total)
		if !sel.items || w.Size() == 0 {
			// Page info still describes the window the items would fill.
			return groupConnection(w, w.Size(), nil, nil, count), nil
		}
	}
	pages, err := loaders.Pages(ctx, chunks(base, w))
	if err != nil {
		return nil, err
	}
	if total < 0 {
		// The window was fetched before the total was known; the pages
		// tell it. It only clips the window's end, unless a `before`
		// cursor lies past the end of a list that shrank: then `last`
		// counts back from the end, a window fetched now.
		total = pages[0].TotalCount
		fetched := w
		w = args.Window(total)
		if w.Start != fetched.Start && w.Size() > 0 {
			if pages, err = loaders.Pages(ctx, chunks(base, w)); err != nil {
				return nil, err
			}
		}
	}
	var groups []*model.ImageGroup
	for _, p := range pages {
		groups = append(groups, p.Groups...)
	}
	if len(groups) > w.Size() {
		groups = groups[:w.Size()]
	}
	nodes := groups
	if sel.fullVersions {
		nodes = fullGroups(ctx, groups)
	}
	return groupConnection(w, len(groups), groups, nodes, pages[0]), nil
}

// chunks splits window w of base into requests of at most upstream.MaxLimit.
func chunks(base PageKey, w model.Window) []PageKey {
	var qs []PageKey
	for off := w.Start; off < w.End; off += upstream.MaxLimit {
		q := base
		q.Offset, q.Limit = off, min(upstream.MaxLimit, w.End-off)
		qs = append(qs, q)
	}
	return qs
}

// groupConnection builds the connection of window w: groups as the pages
// returned them (their versions are each edge's matchedVersions) and nodes,
// the groups the edges and nodes show (groups, or their full versions when
// the selection reads them). n is the number of items the page info
// describes (the window's size when the selection asked for counts only and
// groups is nil).
func groupConnection(w model.Window, n int, groups, nodes []*model.ImageGroup, counts *Page) *model.ImageGroupConnection {
	conn := &model.ImageGroupConnection{
		Edges:               make([]*model.ImageGroupEdge, len(groups)),
		Nodes:               nodes,
		PageInfo:            model.NewPageInfo(w, n, counts.TotalCount),
		TotalCount:          counts.TotalCount,
		AvailableTotalCount: counts.AvailableTotalCount,
	}
	if conn.Nodes == nil {
		conn.Nodes = []*model.ImageGroup{}
	}
	edges := make([]model.ImageGroupEdge, len(groups))
	for i, g := range groups {
		edges[i] = model.ImageGroupEdge{
			Cursor:          model.EncodeCursor(w.Start + i),
			Node:            nodes[i],
			MatchedVersions: g.KnownVersions,
		}
		conn.Edges[i] = &edges[i]
	}
	return conn
}

// fullGroups returns groups with each incomplete group (one from a
// version-filtered response, whose versions the upstream may have trimmed)
// replaced by the same group with every version, fetched through the group
// loader: one call per distinct group, all concurrent. A group whose fetch
// fails stays, answering the error for its versions; one the upstream no
// longer returns by id keeps the versions it came with.
func fullGroups(ctx context.Context, groups []*model.ImageGroup) []*model.ImageGroup {
	out := slices.Clone(groups)
	var missing []int
	for i, g := range groups {
		if !g.Complete {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return out
	}
	ids := make([]string, len(missing))
	for j, i := range missing {
		ids[j] = groups[i].GroupID
	}
	thunks := For(ctx).GroupThunks(ctx, ids)
	for j, i := range missing {
		full, err := thunks[j]()
		out[i] = completeGroup(groups[i], full, err)
	}
	return out
}

// completeGroup returns what should stand for g given the outcome of
// loading its full version: the full group, or g carrying the error.
func completeGroup(g *model.ImageGroup, full *model.ImageGroup, err error) *model.ImageGroup {
	switch {
	case err != nil:
		return g.WithVersionsError(err)
	case full == nil:
		return g.AsComplete()
	default:
		return full
	}
}

// versionGroup resolves ImageVersion.group: the group the version came
// with, or, when that group may be trimmed and the selection reads its
// versions, the full group.
func versionGroup(ctx context.Context, v *model.ImageVersion) (*model.ImageGroup, error) {
	loaders := For(ctx)
	if v.Parent == nil {
		return loaders.Group(ctx, v.GroupID)
	}
	if v.Parent.Complete || !readsVersions(graphql.GetOperationContext(ctx), graphql.GetFieldContext(ctx).Field.Selections) {
		return v.Parent, nil
	}
	full, err := loaders.Group(ctx, v.GroupID)
	return completeGroup(v.Parent, full, err), nil
}

// readsVersions reports whether a selection on an ImageGroup reads fields
// that need every version of the group (imageGroupImplementors, from
// generated.go, are the type conditions its fragments may name).
func readsVersions(oc *graphql.OperationContext, sel ast.SelectionSet) bool {
	for _, f := range graphql.CollectFields(oc, sel, imageGroupImplementors) {
		if f.Name == "versions" || f.Name == "latestVersion" {
			return true
		}
	}
	return false
}

// connectionSelection is what an ImageGroupConnection's selection asks for.
type connectionSelection struct {
	// items: edges or nodes; without them only counts and page info are
	// needed.
	items bool
	// fullVersions: the groups' versions or latestVersion, under edges.node
	// or nodes.
	fullVersions bool
}

// groupConnectionSelection reads the selection of the imageGroups field
// being resolved, fragments and @skip/@include applied.
func groupConnectionSelection(ctx context.Context) connectionSelection {
	var s connectionSelection
	oc := graphql.GetOperationContext(ctx)
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		switch f.Name {
		case "nodes":
			s.items = true
			s.fullVersions = s.fullVersions || readsVersions(oc, f.Selections)
		case "edges":
			s.items = true
			for _, e := range graphql.CollectFields(oc, f.Selections, imageGroupEdgeImplementors) {
				if e.Name == "node" {
					s.fullVersions = s.fullVersions || readsVersions(oc, e.Selections)
				}
			}
		}
	}
	return s
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
