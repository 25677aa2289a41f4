package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/graph-gophers/dataloader/v7"

	"github.com/compshare/imagegraph/graph/model"
)

// findEntities resolves a gateway's batch of representations of one type
// through a per-request loader: every representation resolves by its own key
// (key returns the upstream id it names, or "" when it names nothing this
// API knows), start sends all loads out in one batch at once, identical ids
// are one call, and the results come back in representation order. A
// representation that matches nothing is nil; an upstream failure fails
// only its own entries.
func findEntities[V any](ctx context.Context, n int, key func(i int) string,
	start func(context.Context, []string) []dataloader.Thunk[V]) ([]V, error) {
	ids := make([]string, 0, n)
	at := make([]int, 0, n) // at[j] is the representation of ids[j]
	for i := range n {
		if id := key(i); id != "" {
			ids = append(ids, id)
			at = append(at, i)
		}
	}
	out := make([]V, n)
	var errs graphql.BatchErrorList
	for j, th := range start(ctx, ids) {
		v, err := th()
		if err != nil {
			if errs == nil {
				errs = make(graphql.BatchErrorList, n)
			}
			errs[at[j]] = err
			continue
		}
		out[at[j]] = v
	}
	if errs != nil {
		return out, errs
	}
	return out, nil
}

// groupKey returns the GroupId a representation names by either key.
func groupKey(rep *model.ImageGroupRepresentation) string {
	switch {
	case rep == nil:
		return ""
	case rep.MatchedKey == model.ImageGroupMatchedKeyGroupID && rep.GroupID != nil:
		return *rep.GroupID
	case rep.ID != nil:
		if typ, id, err := model.ParseGlobalID(*rep.ID); err == nil && typ == model.TypeImageGroup {
			return id
		}
	}
	return ""
}

// versionKey returns the CompShareImageId a representation names by either key.
func versionKey(rep *model.ImageVersionRepresentation) string {
	switch {
	case rep == nil:
		return ""
	case rep.MatchedKey == model.ImageVersionMatchedKeyImageID && rep.ImageID != nil:
		return *rep.ImageID
	case rep.ID != nil:
		if typ, id, err := model.ParseGlobalID(*rep.ID); err == nil && typ == model.TypeImageVersion {
			return id
		}
	}
	return ""
}
