package graph

import (
	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/upstream"
)

// The States CallEstimator gives objects: where their data came from, which
// decides whether reading a field of theirs calls the upstream.
const (
	// Query's fields see the zero State.
	_ limits.State = iota
	// stateConnection: an imageGroups connection (and its edges) whose
	// request had no version-level filter: its groups are complete.
	stateConnection
	// stateFilteredConnection: one whose request had one: its groups may
	// hold only the versions that matched.
	stateFilteredConnection
	// stateFilteredFullConnection: a stateFilteredConnection whose groups'
	// full versions the resolver fetched (the selection reads them under
	// edges.node or nodes), so that the loaders hold every group of the page.
	stateFilteredFullConnection
	// stateGroup: a group handed to the selection; its versions and
	// latestVersion are complete (its resolver fetched them if needed).
	stateGroup
	// stateVersion: versions (or a connection of them) of a complete group.
	stateVersion
	// stateTrimmedVersion: versions whose group may be trimmed (from a
	// version-filtered response, or looked up by imageId): reading the
	// versions of their group fetches it.
	stateTrimmedVersion
)

// CallEstimator estimates the upstream calls of an operation's fields for
// the limits package, mirroring what the resolvers and loaders do: every
// call a field may make, without the savings of the loaders' memo (an
// upper bound).
type CallEstimator struct {
	// MaxPageSize bounds first and last, as the resolvers do.
	MaxPageSize int
}

var _ limits.CallEstimator = CallEstimator{}

// Estimate is the upstream calls one instance of f makes.
func (c CallEstimator) Estimate(f limits.Field, parent limits.State) limits.Estimate {
	if f.Parent == "Subscription" {
		// A subscription runs as the query of the same fields, each poll.
		f.Parent = "Query"
	}
	switch f.Parent + "." + f.Name {
	case "Query.imageGroups":
		return c.imageGroups(f)
	case "Query.node":
		return limits.Estimate{Calls: 1, Child: stateTrimmedVersion}
	case "Query.nodes":
		n := len(asList(f.Args["ids"]))
		return limits.Estimate{Calls: float64(n), Child: stateTrimmedVersion, Size: n}
	case "Query._entities":
		n := len(asList(f.Args["representations"]))
		return limits.Estimate{Calls: float64(n), Child: stateTrimmedVersion, Size: n}
	case "Query.imageGroup":
		return limits.Estimate{Calls: 1, Child: stateGroup}
	case "Query.imageVersion":
		return limits.Estimate{Calls: 1, Child: stateTrimmedVersion}
	case "ImageGroupConnection.edges":
		return limits.Estimate{Child: parent}
	case "ImageGroupConnection.nodes", "ImageGroupEdge.node":
		return limits.Estimate{Child: stateGroup}
	case "ImageGroupEdge.matchedVersions":
		// The versions of one group: reading the versions of their group
		// fetches that one group once (the loader keeps it), unless the
		// page's groups were fetched in full already.
		if parent == stateFilteredConnection &&
			(f.Selection.Has("group", "versions") || f.Selection.Has("group", "latestVersion")) {
			return limits.Estimate{Calls: 1, Child: stateVersion}
		}
		return limits.Estimate{Child: stateVersion}
	case "ImageGroup.versions", "ImageGroup.latestVersion":
		return limits.Estimate{Child: stateVersion}
	case "ImageVersionConnection.edges", "ImageVersionConnection.nodes", "ImageVersionEdge.node":
		return limits.Estimate{Child: parent}
	case "ImageVersion.group":
		// versionGroup: the group the version came with, unless it may be
		// trimmed and the selection reads its versions.
		if parent == stateTrimmedVersion && (f.Selection.Has("versions") || f.Selection.Has("latestVersion")) {
			return limits.Estimate{Calls: 1, Child: stateGroup}
		}
		return limits.Estimate{Child: stateGroup}
	}
	return limits.Estimate{Child: parent}
}

// imageGroups mirrors Resolver.imageGroups: a Limit=1 call for the counts
// when the selection has no items, the window is empty or `last` counts
// back from the end; a call per upstream.MaxLimit of the window; and, for a
// version-filtered request whose groups' versions are read, one call per
// group for its full versions.
func (c CallEstimator) imageGroups(f limits.Field) limits.Estimate {
	filter, _ := f.Args["filter"].(map[string]any)
	filtered := versionFiltered(filter)
	est := limits.Estimate{Child: stateConnection}
	if filtered {
		est.Child = stateFilteredConnection
	}
	maxPage := c.MaxPageSize
	if maxPage <= 0 {
		maxPage = DefaultMaxPageSize
	}
	args, err := model.ParsePageArgs(intArg(f.Args["first"]), stringArg(f.Args["after"]),
		intArg(f.Args["last"]), stringArg(f.Args["before"]), maxPage)
	if err != nil {
		return est // refused before any call
	}
	sel := f.Selection
	items := sel.Has("edges") || sel.Has("nodes")
	w := args.Window(-1)
	if !items || w.Size() == 0 || args.NeedsTotal() {
		est.Calls++
		if !items || w.Size() == 0 {
			return est
		}
	}
	est.Calls += float64((w.Size() + upstream.MaxLimit - 1) / upstream.MaxLimit)
	if filtered && (sel.Has("nodes", "versions") || sel.Has("nodes", "latestVersion") ||
		sel.Has("edges", "node", "versions") || sel.Has("edges", "node", "latestVersion")) {
		est.Calls += float64(w.Size())
		est.Child = stateFilteredFullConnection
	}
	return est
}

// versionFiltered reports whether an ImageFilter argument filters on a
// version-level field, as the upstream request it becomes would.
func versionFiltered(filter map[string]any) bool {
	if filter == nil {
		return false
	}
	str := func(k string) string { s, _ := filter[k].(string); return s }
	flag := func(k string) bool { b, _ := filter[k].(bool); return b }
	q := PageKey{
		Author: str("author"), Search: str("search"), ImageID: str("imageId"),
		Free: flag("freeOnly"), Official: flag("officialOnly"), AutoStart: flag("autoStartOnly"),
	}
	if len(asList(filter["tags"])) > 0 {
		q.Tags = "tagged"
	}
	return q.Request().HasVersionFilter()
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func intArg(v any) *int {
	n, ok := limits.IntArg(v)
	if !ok {
		return nil
	}
	return &n
}

func stringArg(v any) *string {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	return &s
}
