package soak

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

// Operation is one document of the workload.
type Operation struct {
	// Name is the operation's name.
	Name string
	// Document is its text, exactly as the persisted-operations manifest
	// holds it.
	Document string
}

// Hash is the SHA-256 hex of the document: its APQ hash, and its id in the
// manifest.
func (o *Operation) Hash() string {
	sum := sha256.Sum256([]byte(o.Document))
	return hex.EncodeToString(sum[:])
}

// The workload's operations. Nothing but Watched and Watch selects
// versionDescription (or updatedAt, which a change of it moves): the soak
// changes only that field, of its watched versions, so every other answer
// is the embedded dataset's, whatever the caches hold.
var (
	OpPage = &Operation{Name: "Page", Document: `query Page($first: Int, $after: String, $filter: ImageFilter, $orderBy: ImageOrder) { ` +
		`imageGroups(first: $first, after: $after, filter: $filter, orderBy: $orderBy) { totalCount availableTotalCount ` +
		`pageInfo { hasNextPage hasPreviousPage startCursor endCursor } ` +
		`edges { cursor matchedVersions { imageId } node { id groupId name favoritesCount useTime status ` +
		`latestVersion { imageId versionName publishedAt price isFree } } } } }`}
	OpGroup = &Operation{Name: "Group", Document: `query Group($groupId: ID!) { imageGroup(groupId: $groupId) { id groupId name description status ` +
		`versions(first: 3) { totalCount nodes { id imageId versionName status publishedAt } } } }`}
	OpVersion = &Operation{Name: "Version", Document: `query Version($imageId: ID!) { imageVersion(imageId: $imageId) { id imageId name versionName ` +
		`status price isFree tags author authorType createdAt publishedAt group { groupId name } } }`}
	OpNode = &Operation{Name: "Node", Document: `query Node($id: ID!) { node(id: $id) { id ... on ImageGroup { groupId name } ... on ImageVersion { imageId versionName } } }`}
	// OpWatched reads a watched version's changing field: its answer may
	// be as old as the caches allow, which Changes.ValidWithin judges.
	OpWatched = &Operation{Name: "Watched", Document: `query Watched($imageId: ID!) { imageVersion(imageId: $imageId) { imageId versionDescription } }`}
	// OpWatch is the subscription to a watched version's changing field.
	OpWatch = &Operation{Name: "Watch", Document: `subscription Watch($imageId: ID!) { imageVersion(imageId: $imageId) { imageId versionDescription } }`}
)

// Manifest returns the persisted-operations manifest of the workload's
// queries, in Apollo's persisted query list format, ids being the SHA-256
// hex of each body.
func Manifest() []byte {
	type op struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
		Body string `json:"body"`
	}
	m := struct {
		Format     string `json:"format"`
		Version    int    `json:"version"`
		Operations []op   `json:"operations"`
	}{Format: "apollo-persisted-query-manifest", Version: 1}
	for _, o := range []*Operation{OpPage, OpGroup, OpVersion, OpNode, OpWatched} {
		m.Operations = append(m.Operations, op{ID: o.Hash(), Name: o.Name, Type: "query", Body: o.Document})
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return b
}

// Query is one request of the workload: an operation, its variables, and
// the data it must answer.
type Query struct {
	// Op is the operation.
	Op *Operation
	// Variables are its variables.
	Variables map[string]any
	// Want is the data the answer must hold (JSON-decoded), unless Watched
	// is set.
	Want any
	// Watched, when set, is the watched version a Watched query reads: its
	// answer is judged against the version's history, not Want.
	Watched string
	// Missing marks a lookup of an id the dataset does not hold.
	Missing bool
}

// Kind is the query's operation name, in lower case: page, group,
// version, node or watched.
func (q *Query) Kind() string { return strings.ToLower(q.Op.Name) }

// Label is the query's kind, and "of no such id" for a lookup of one: what
// the summary counts outcomes by.
func (q *Query) Label() string {
	if q.Missing {
		return q.Kind() + " of no such id"
	}
	return q.Kind()
}

// Oracle works out the answers the workload must get from the sandbox's
// embedded dataset: it holds a sandbox of its own, which nothing changes,
// and asks its Describe, the query logic the sandbox process answers with.
type Oracle struct {
	sb     *sandbox.Server
	groups []upstream.ImageGroup
	byID   map[string]*upstream.ImageGroup
	// versionAt finds a version's group.
	versionAt map[string]*upstream.ImageGroup
}

// NewOracle returns an oracle over the embedded dataset.
func NewOracle() (*Oracle, error) {
	sb, err := sandbox.New()
	if err != nil {
		return nil, err
	}
	o := &Oracle{sb: sb, groups: sb.Groups(), byID: map[string]*upstream.ImageGroup{}, versionAt: map[string]*upstream.ImageGroup{}}
	for i := range o.groups {
		g := &o.groups[i]
		o.byID[g.GroupId] = g
		for _, v := range g.Data {
			o.versionAt[v.CompShareImageId] = g
		}
	}
	return o, nil
}

// Groups returns the dataset's groups, in stored order (not to be changed).
func (o *Oracle) Groups() []upstream.ImageGroup { return o.groups }

// Version returns a version of the dataset by id.
func (o *Oracle) Version(imageID string) (upstream.Image, bool) {
	g, ok := o.versionAt[imageID]
	if !ok {
		return upstream.Image{}, false
	}
	for _, v := range g.Data {
		if v.CompShareImageId == imageID {
			return v, true
		}
	}
	return upstream.Image{}, false
}

// WatchedVersions returns the n versions the soak changes: spread over the
// dataset, in groups of several versions, so that they sit among the
// versions the other queries read.
func (o *Oracle) WatchedVersions(n int) []string {
	var out []string
	step := max(len(o.groups)/n, 1)
	for i := step / 2; i < len(o.groups) && len(out) < n; i += step {
		g := o.groups[i]
		out = append(out, g.Data[len(g.Data)/2].CompShareImageId)
	}
	return out
}

// The pages' filters and orders, paired: each pair runs with every first
// and after of the catalogue.
type pageShape struct {
	filter  map[string]any
	orderBy map[string]any
}

func order(field, direction string) map[string]any {
	return map[string]any{"field": field, "direction": direction}
}

func pageShapes() []pageShape {
	return []pageShape{
		{},
		{orderBy: order("FAVORITES", "DESC")},
		{orderBy: order("USAGE", "ASC")},
		{orderBy: order("PUBLISHED_AT", "DESC")},
		{filter: map[string]any{"tags": []any{sandbox.EdgePopularTag}}},
		{filter: map[string]any{"tags": []any{sandbox.EdgePopularTag}}, orderBy: order("PUBLISHED_AT", "ASC")},
		{filter: map[string]any{"freeOnly": true}, orderBy: order("FAVORITES", "DESC")},
		{filter: map[string]any{"officialOnly": true}},
		{filter: map[string]any{"autoStartOnly": true}, orderBy: order("USAGE", "DESC")},
		{filter: map[string]any{"author": sandbox.EdgeMultiGroupAuthor}, orderBy: order("PUBLISHED_AT", "DESC")},
		{filter: map[string]any{"name": sandbox.EdgeRenamedImageWord}},
		{filter: map[string]any{"search": "lite"}, orderBy: order("FAVORITES", "ASC")},
		{filter: map[string]any{"tags": []any{sandbox.EdgePartialTag}}},
		{filter: map[string]any{"groupId": sandbox.EdgeUnsortedGroupID}},
	}
}

// Catalogue returns the workload: pages of every shape with several first
// and after, lookups of groups and versions by upstream id and by global
// id (some of ids that do not exist), and Watched queries of the watched
// versions; each with the data it must answer. It is the same for the same
// dataset and watched versions.
func (o *Oracle) Catalogue(watched []string) ([]Query, error) {
	var out []Query
	for _, shape := range pageShapes() {
		for _, first := range []int{5, 10, 20, 40} {
			for _, after := range []int{-1, 4, 19} {
				vars := map[string]any{"first": first}
				if after >= 0 {
					vars["after"] = Cursor(after)
				}
				if shape.filter != nil {
					vars["filter"] = shape.filter
				}
				if shape.orderBy != nil {
					vars["orderBy"] = shape.orderBy
				}
				want, err := o.page(first, after+1, shape)
				if err != nil {
					return nil, err
				}
				out = append(out, Query{Op: OpPage, Variables: vars, Want: want})
			}
		}
	}
	rng := rand.New(rand.NewPCG(20, 26))
	groups := slices.Clone(o.groups)
	rng.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	var versions []upstream.Image
	for _, g := range o.groups {
		versions = append(versions, g.Data...)
	}
	rng.Shuffle(len(versions), func(i, j int) { versions[i], versions[j] = versions[j], versions[i] })

	for _, g := range groups[:min(40, len(groups))] {
		out = append(out, o.groupQuery(g.GroupId))
	}
	out = append(out, o.groupQuery("group-soaknone"))
	for _, v := range versions[:min(60, len(versions))] {
		out = append(out, o.versionQuery(v.CompShareImageId))
	}
	out = append(out, o.versionQuery("compshareImage-soaknone"))
	for i := range 20 {
		g := groups[len(groups)-1-i]
		out = append(out, o.nodeQuery("ImageGroup", g.GroupId))
		v := versions[len(versions)-1-i]
		out = append(out, o.nodeQuery("ImageVersion", v.CompShareImageId))
	}
	out = append(out, o.nodeQuery("ImageGroup", "group-soaknone"))
	for _, id := range watched {
		if _, ok := o.versionAt[id]; !ok {
			return nil, fmt.Errorf("soak: watched version %q is not in the dataset", id)
		}
		out = append(out, Query{Op: OpWatched, Variables: map[string]any{"imageId": id}, Watched: id})
	}
	for i := range out {
		if out[i].Want != nil {
			out[i].Want = normalize(out[i].Want)
		}
	}
	return out, nil
}

// page works out imageGroups(first, after: start−1, shape) from the
// sandbox's Describe: the groups it returns at Offset start, with
// Relay's page info over its total.
func (o *Oracle) page(first, start int, shape pageShape) (any, error) {
	req := &upstream.DescribeCommunityImagesRequest{Region: upstream.DefaultRegion, Offset: upstream.Int(start), Limit: upstream.Int(first)}
	if f := shape.filter; f != nil {
		str := func(k string) string { s, _ := f[k].(string); return s }
		req.Name, req.Author, req.FuzzySearch = str("name"), str("author"), str("search")
		req.GroupId, req.CompShareImageId = str("groupId"), str("imageId")
		if tags, ok := f["tags"].([]any); ok {
			for _, t := range tags {
				req.Tag = append(req.Tag, t.(string))
			}
		}
		for k, dst := range map[string]**bool{"freeOnly": &req.IsFree, "officialOnly": &req.IsOfficial, "autoStartOnly": &req.IfAutoStart} {
			if b, ok := f[k].(bool); ok && b {
				*dst = upstream.Bool(true)
			}
		}
	}
	if ob := shape.orderBy; ob != nil {
		field := map[string]upstream.SortField{"PUBLISHED_AT": upstream.SortPubTime, "FAVORITES": upstream.SortFavor, "USAGE": upstream.SortImageUseTime}[ob["field"].(string)]
		req.SortCondition = &upstream.SortCondition{Field: field, ASC: ob["direction"] == "ASC"}
	}
	resp, err := o.sb.Describe(req)
	if err != nil {
		return nil, fmt.Errorf("soak: the oracle's Describe: %w", err)
	}
	total, n := resp.TotalCount, len(resp.CompshareImageGroup)
	start = min(start, total) // an offset past the end: an empty page at the end
	edges := []any{}
	for i, g := range resp.CompshareImageGroup {
		matched := []any{}
		for _, v := range g.Data {
			matched = append(matched, map[string]any{"imageId": v.CompShareImageId})
		}
		full := o.byID[g.GroupId]
		edges = append(edges, map[string]any{
			"cursor":          Cursor(start + i),
			"matchedVersions": matched,
			"node": map[string]any{
				"id": GlobalID("ImageGroup", full.GroupId), "groupId": full.GroupId, "name": full.ImageName,
				"favoritesCount": full.FavoritesCount, "useTime": full.ImageUseTime, "status": groupStatus(full.Status),
				"latestVersion": latestVersion(full),
			},
		})
	}
	info := map[string]any{"hasNextPage": start+n < total, "hasPreviousPage": start > 0 && total > 0, "startCursor": nil, "endCursor": nil}
	if n > 0 {
		info["startCursor"], info["endCursor"] = Cursor(start), Cursor(start+n-1)
	}
	return map[string]any{"imageGroups": map[string]any{
		"totalCount": total, "availableTotalCount": resp.AvailableTotalCount, "pageInfo": info, "edges": edges,
	}}, nil
}

func (o *Oracle) groupQuery(groupID string) Query {
	q := Query{Op: OpGroup, Variables: map[string]any{"groupId": groupID}}
	g, ok := o.byID[groupID]
	if !ok {
		q.Want, q.Missing = map[string]any{"imageGroup": nil}, true
		return q
	}
	nodes := []any{}
	sorted := sortedVersions(g)
	for _, v := range sorted[:min(3, len(sorted))] {
		nodes = append(nodes, map[string]any{
			"id": GlobalID("ImageVersion", v.CompShareImageId), "imageId": v.CompShareImageId, "versionName": v.VersionName,
			"status": versionStatus(v.Status), "publishedAt": dateTime(v.PubTime),
		})
	}
	q.Want = map[string]any{"imageGroup": map[string]any{
		"id": GlobalID("ImageGroup", g.GroupId), "groupId": g.GroupId, "name": g.ImageName, "description": g.ImageDesc,
		"status": groupStatus(g.Status), "versions": map[string]any{"totalCount": len(g.Data), "nodes": nodes},
	}}
	return q
}

func (o *Oracle) versionQuery(imageID string) Query {
	q := Query{Op: OpVersion, Variables: map[string]any{"imageId": imageID}}
	v, ok := o.Version(imageID)
	if !ok {
		q.Want, q.Missing = map[string]any{"imageVersion": nil}, true
		return q
	}
	g := o.versionAt[imageID]
	tags := []any{}
	for _, t := range v.Tags {
		tags = append(tags, t)
	}
	q.Want = map[string]any{"imageVersion": map[string]any{
		"id": GlobalID("ImageVersion", v.CompShareImageId), "imageId": v.CompShareImageId, "name": v.Name,
		"versionName": v.VersionName, "status": versionStatus(v.Status), "price": v.Price, "isFree": v.Price == 0,
		"tags": tags, "author": v.Author, "authorType": authorType(v.AuthInfo), "createdAt": dateTime(v.CreateTime),
		"publishedAt": dateTime(v.PubTime), "group": map[string]any{"groupId": g.GroupId, "name": g.ImageName},
	}}
	return q
}

func (o *Oracle) nodeQuery(typ, id string) Query {
	gid := GlobalID(typ, id)
	q := Query{Op: OpNode, Variables: map[string]any{"id": gid}, Want: map[string]any{"node": nil}, Missing: true}
	switch typ {
	case "ImageGroup":
		if g, ok := o.byID[id]; ok {
			q.Want, q.Missing = map[string]any{"node": map[string]any{"id": gid, "groupId": g.GroupId, "name": g.ImageName}}, false
		}
	case "ImageVersion":
		if v, ok := o.Version(id); ok {
			q.Want, q.Missing = map[string]any{"node": map[string]any{"id": gid, "imageId": v.CompShareImageId, "versionName": v.VersionName}}, false
		}
	}
	return q
}

// GlobalID is the API's global id of an object: base64url, unpadded, of
// "Type:id" (docs: node and nodes).
func GlobalID(typ, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + id))
}

// Cursor is the API's cursor of position pos of a connection.
func Cursor(pos int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("pos:" + strconv.Itoa(pos)))
}

// dateTime is a DateTime: RFC 3339 UTC, seconds; null for 0 (unpublished).
func dateTime(unix int64) any {
	if unix == 0 {
		return nil
	}
	return time.Unix(unix, 0).UTC().Format(time.RFC3339)
}

func groupStatus(s string) string {
	switch s {
	case upstream.GroupStatusAvailable:
		return "AVAILABLE"
	case upstream.GroupStatusUnAvailable:
		return "UNAVAILABLE"
	}
	return "UNKNOWN"
}

func versionStatus(s string) string {
	switch s {
	case upstream.ImageStatusAvailable, upstream.ImageStatusOffline, upstream.ImageStatusReviewing:
		return strings.ToUpper(s)
	}
	return "UNKNOWN"
}

func authorType(a int) string {
	switch a {
	case upstream.AuthCreator:
		return "CREATOR"
	case upstream.AuthOfficial:
		return "OFFICIAL"
	case upstream.AuthVerified:
		return "VERIFIED"
	}
	return "UNKNOWN"
}

// sortedVersions is the API's version order (ImageGroup.versions): newest
// published first, unpublished last, then newest created, then by id.
func sortedVersions(g *upstream.ImageGroup) []upstream.Image {
	out := slices.Clone(g.Data)
	slices.SortStableFunc(out, compareVersions)
	return out
}

func compareVersions(a, b upstream.Image) int {
	switch {
	case a.PubTime != 0 && b.PubTime == 0:
		return -1
	case a.PubTime == 0 && b.PubTime != 0:
		return 1
	case a.PubTime != b.PubTime:
		return cmp.Compare(b.PubTime, a.PubTime)
	case a.CreateTime != b.CreateTime:
		return cmp.Compare(b.CreateTime, a.CreateTime)
	}
	return cmp.Compare(a.CompShareImageId, b.CompShareImageId)
}

// latestVersion is ImageGroup.latestVersion as the page selects it: the
// first AVAILABLE version in the API's order, or null.
func latestVersion(g *upstream.ImageGroup) any {
	for _, v := range sortedVersions(g) {
		if v.Status == upstream.ImageStatusAvailable {
			return map[string]any{"imageId": v.CompShareImageId, "versionName": v.VersionName,
				"publishedAt": dateTime(v.PubTime), "price": v.Price, "isFree": v.Price == 0}
		}
	}
	return nil
}

// normalize turns v into what decoding its JSON gives (numbers float64),
// so that it compares with decoded answers.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}
