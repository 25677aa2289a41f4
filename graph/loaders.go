package graph

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/graph-gophers/dataloader/v7"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/internal/gqlhttp"
	"github.com/compshare/imagegraph/upstream"
)

// PageKey is one upstream request in comparable form, so that it can key a
// loader (and not to be confused with GraphQL's Query type): equal PageKeys
// are the same upstream call.
type PageKey struct {
	Name, Author, Search string
	// Tags holds the tags joined by tagSep, in the order given.
	Tags           string
	GroupID        string
	ImageID        string
	Free, Official bool
	AutoStart      bool
	Sort           upstream.SortField
	SortASC        bool
	Offset, Limit  int
}

const tagSep = "\x1f"

// Request returns the upstream request for q. False booleans and empty
// strings send nothing; a zero Sort sends no SortCondition.
func (q PageKey) Request() *upstream.DescribeCommunityImagesRequest {
	r := &upstream.DescribeCommunityImagesRequest{
		Name:             q.Name,
		Author:           q.Author,
		FuzzySearch:      q.Search,
		GroupId:          q.GroupID,
		CompShareImageId: q.ImageID,
		Offset:           upstream.Int(q.Offset),
		Limit:            upstream.Int(q.Limit),
	}
	if q.Tags != "" {
		r.Tag = strings.Split(q.Tags, tagSep)
	}
	if q.Free {
		r.IsFree = upstream.Bool(true)
	}
	if q.Official {
		r.IsOfficial = upstream.Bool(true)
	}
	if q.AutoStart {
		r.IfAutoStart = upstream.Bool(true)
	}
	if q.Sort != "" {
		r.SortCondition = &upstream.SortCondition{Field: q.Sort, ASC: q.SortASC}
	}
	return r
}

// Page is one upstream response, mapped. It is shared and read-only.
type Page struct {
	// Groups are the groups of the page in upstream order.
	Groups []*model.ImageGroup
	// TotalCount and AvailableTotalCount are the upstream's counts.
	TotalCount          int
	AvailableTotalCount int

	// groups (when the page is complete) and versions index the page's
	// groups and versions by their upstream ids.
	groups   map[string]*model.ImageGroup
	versions map[string]*model.ImageVersion
}

// Loaders are the per-request dataloaders. Build them per request with
// NewLoaders (the Middleware does) and reach them with For.
//
// They have no batch window. Every key of a batch is its own upstream call
// (the action takes one GroupId or CompShareImageId), made concurrently, and
// identical keys share one call through the loader's cache whatever the
// window; so a window would gather nothing worth waiting for, and its wait
// would lie on every request's critical path. Each load, or each group of
// loads made together (Pages, GroupThunks, VersionThunks), is flushed as
// soon as it is made.
type Loaders struct {
	svc  upstream.Service
	memo *pageMemo

	// seen are the pages this request has loaded: the groups and versions
	// they hold answer the request's lookups without a load.
	mu   sync.Mutex
	seen []*Page

	// pages loads one upstream request per distinct PageKey.
	pages *dataloader.Loader[PageKey, *Page]
	// groups loads a group with every version by GroupId; nil when none.
	groups *dataloader.Loader[string, *model.ImageGroup]
	// versions loads a version by CompShareImageId; nil when none.
	versions *dataloader.Loader[string, *model.ImageVersion]
}

// LoaderOptions tune the loaders.
type LoaderOptions struct {
	// Log receives mapping warnings.
	Log *slog.Logger
	// MaxPageSize bounds the first and last of a group's versions
	// (model.DefaultMaxPageSize if 0).
	MaxPageSize int
	// memo maps each response once across requests (NewHandler shares one);
	// nil: each request maps its own.
	memo *pageMemo
	// backstop is the dataloaders' own batch window, a timer that fires
	// only when a batch was not flushed by hand (default a second; tests
	// set it past their own deadline, so that a batch left waiting fails).
	backstop time.Duration
}

// NewLoaders returns a fresh set of loaders over svc, for one request.
func NewLoaders(svc upstream.Service, opt LoaderOptions) *Loaders {
	memo := opt.memo
	if memo == nil {
		memo = newPageMemo(model.Mapper{Log: opt.Log, MaxPageSize: opt.MaxPageSize})
	}
	l := &Loaders{svc: svc, memo: memo}
	// Every batch is flushed by hand right after its loads; the loader's
	// own timer is only a backstop.
	wait := cmp.Or(opt.backstop, time.Second)
	l.pages = dataloader.NewBatchedLoader(l.loadPages, dataloader.WithWait[PageKey, *Page](wait))
	l.groups = dataloader.NewBatchedLoader(l.loadGroups, dataloader.WithWait[string, *model.ImageGroup](wait))
	l.versions = dataloader.NewBatchedLoader(l.loadVersions, dataloader.WithWait[string, *model.ImageVersion](wait))
	return l
}

type loadersKey struct{}

// WithLoaders returns ctx carrying l.
func WithLoaders(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, loadersKey{}, l)
}

// For returns the loaders of the request ctx belongs to. It panics when the
// Middleware did not run, which is a wiring bug, not a request error.
func For(ctx context.Context) *Loaders {
	l, ok := ctx.Value(loadersKey{}).(*Loaders)
	if !ok {
		panic("graph: no loaders in context; wrap the handler in graph.Middleware")
	}
	return l
}

// Middleware builds fresh loaders for every request, and the
// upstream.Usage its reads record into.
func Middleware(svc upstream.Service, opt LoaderOptions, next http.Handler) http.Handler {
	if opt.memo == nil {
		opt.memo = newPageMemo(model.Mapper{Log: opt.Log, MaxPageSize: opt.MaxPageSize})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gqlhttp.IsStream(r.Header) {
			// A stream's request lives as long as its connection: its
			// operations get loaders of their own (streamLoaders), and
			// the request holds none.
			next.ServeHTTP(w, r)
			return
		}
		ctx := upstream.WithUsage(r.Context(), &upstream.Usage{})
		next.ServeHTTP(w, r.WithContext(WithLoaders(ctx, NewLoaders(svc, opt))))
	})
}

// Page loads the page of q; identical Queries in one request share one call.
func (l *Loaders) Page(ctx context.Context, q PageKey) (*Page, error) {
	th := l.pages.Load(ctx, q)
	l.pages.Flush()
	return th()
}

// Pages loads several pages at once, so that they go out in one batch, and
// returns them in the order of qs.
func (l *Loaders) Pages(ctx context.Context, qs []PageKey) ([]*Page, error) {
	if len(qs) == 1 {
		p, err := l.Page(ctx, qs[0])
		if err != nil {
			return nil, err
		}
		return []*Page{p}, nil
	}
	thunks := make([]dataloader.Thunk[*Page], len(qs))
	for i, q := range qs {
		thunks[i] = l.pages.Load(ctx, q)
	}
	l.pages.Flush()
	out := make([]*Page, len(qs))
	for i, th := range thunks {
		p, err := th()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// Group loads the group with every version; nil when it does not exist.
func (l *Loaders) Group(ctx context.Context, groupID string) (*model.ImageGroup, error) {
	if g := l.seenGroup(groupID); g != nil {
		return g, nil
	}
	th := l.groups.Load(ctx, groupID)
	l.groups.Flush()
	return th()
}

// GroupThunks starts loading several groups at once, so that they go out in
// one batch, and returns a thunk for each, in the order of ids.
func (l *Loaders) GroupThunks(ctx context.Context, ids []string) []dataloader.Thunk[*model.ImageGroup] {
	thunks := make([]dataloader.Thunk[*model.ImageGroup], len(ids))
	for i, id := range ids {
		thunks[i] = l.groupThunk(ctx, id)
	}
	l.groups.Flush()
	return thunks
}

// VersionThunks starts loading several versions at once, so that they go
// out in one batch, and returns a thunk for each, in the order of ids.
func (l *Loaders) VersionThunks(ctx context.Context, ids []string) []dataloader.Thunk[*model.ImageVersion] {
	thunks := make([]dataloader.Thunk[*model.ImageVersion], len(ids))
	for i, id := range ids {
		thunks[i] = l.versionThunk(ctx, id)
	}
	l.versions.Flush()
	return thunks
}

// groupThunk starts loading one group, answered at once when a page of the
// request holds it.
func (l *Loaders) groupThunk(ctx context.Context, id string) dataloader.Thunk[*model.ImageGroup] {
	if g := l.seenGroup(id); g != nil {
		return func() (*model.ImageGroup, error) { return g, nil }
	}
	return l.groups.Load(ctx, id)
}

// versionThunk starts loading one version, answered at once when a page of
// the request holds it.
func (l *Loaders) versionThunk(ctx context.Context, id string) dataloader.Thunk[*model.ImageVersion] {
	if v := l.seenVersion(id); v != nil {
		return func() (*model.ImageVersion, error) { return v, nil }
	}
	return l.versions.Load(ctx, id)
}

// seenGroup is the group with every version that a page of the request
// holds, or nil.
func (l *Loaders) seenGroup(id string) *model.ImageGroup {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.seen {
		if g := p.groups[id]; g != nil {
			return g
		}
	}
	return nil
}

// seenVersion is the version a page of the request holds, or nil.
func (l *Loaders) seenVersion(id string) *model.ImageVersion {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.seen {
		if v := p.versions[id]; v != nil {
			return v
		}
	}
	return nil
}

// Version loads one version; nil when it does not exist.
func (l *Loaders) Version(ctx context.Context, imageID string) (*model.ImageVersion, error) {
	if v := l.seenVersion(imageID); v != nil {
		return v, nil
	}
	th := l.versions.Load(ctx, imageID)
	l.versions.Flush()
	return th()
}

// call makes one upstream call, maps it (once for every request that reads
// the same response) and keeps the page, so that later lookups of the
// request find what it learned: every version, and every group when the
// request had no version-level filter (so the groups hold all their
// versions).
func (l *Loaders) call(ctx context.Context, req *upstream.DescribeCommunityImagesRequest) (*Page, error) {
	resp, err := l.svc.DescribeCommunityImages(ctx, req)
	if err != nil {
		return nil, err
	}
	p := l.memo.page(resp, !req.HasVersionFilter())
	l.mu.Lock()
	l.seen = append(l.seen, p)
	l.mu.Unlock()
	return p, nil
}

// each runs fn for every index concurrently and waits, turning a panic in
// fn into that index's error; the upstream client bounds how many calls are
// in flight.
func each(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	run := func(i int) {
		defer func() {
			if p := recover(); p != nil {
				errs[i] = &internalError{cause: p, stack: debug.Stack()}
			}
		}()
		errs[i] = fn(i)
	}
	if n == 1 {
		run(0)
		return errs
	}
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		go func() {
			defer wg.Done()
			run(i)
		}()
	}
	wg.Wait()
	return errs
}

// loadEach is a batch function that loads every key with fn, concurrently,
// returning results in key order with one error per key.
func loadEach[K comparable, V any](ctx context.Context, keys []K, fn func(context.Context, K) (V, error)) []*dataloader.Result[V] {
	out := make([]*dataloader.Result[V], len(keys))
	data := make([]V, len(keys))
	errs := each(len(keys), func(i int) (err error) {
		data[i], err = fn(ctx, keys[i])
		return err
	})
	for i := range keys {
		out[i] = &dataloader.Result[V]{Data: data[i], Error: errs[i]}
	}
	return out
}

func (l *Loaders) loadPages(ctx context.Context, qs []PageKey) []*dataloader.Result[*Page] {
	return loadEach(ctx, qs, l.fetchPage)
}

func (l *Loaders) loadGroups(ctx context.Context, ids []string) []*dataloader.Result[*model.ImageGroup] {
	return loadEach(ctx, ids, l.fetchGroup)
}

func (l *Loaders) loadVersions(ctx context.Context, ids []string) []*dataloader.Result[*model.ImageVersion] {
	return loadEach(ctx, ids, l.fetchVersion)
}

// fetchPage makes the upstream call of q.
func (l *Loaders) fetchPage(ctx context.Context, q PageKey) (*Page, error) {
	return l.call(ctx, q.Request())
}

// fetchGroup fetches a group with every version by GroupId.
func (l *Loaders) fetchGroup(ctx context.Context, id string) (*model.ImageGroup, error) {
	p, err := l.call(ctx, PageKey{GroupID: id, Limit: 1}.Request())
	if err != nil {
		return nil, err
	}
	return findGroup(p, id), nil
}

// fetchVersion fetches a version by CompShareImageId.
func (l *Loaders) fetchVersion(ctx context.Context, id string) (*model.ImageVersion, error) {
	p, err := l.call(ctx, PageKey{ImageID: id, Limit: 1}.Request())
	if err != nil {
		return nil, err
	}
	return findVersion(p, id), nil
}

func findGroup(p *Page, id string) *model.ImageGroup {
	for _, g := range p.Groups {
		if g.GroupID == id {
			return g
		}
	}
	return nil
}

func findVersion(p *Page, id string) *model.ImageVersion { return p.versions[id] }

// streamLoaders gives each operation that arrives over a stream (a
// WebSocket, an SSE request) loaders of its own: the Middleware's are the
// connection's, which would keep what they loaded for as long as it lives.
type streamLoaders struct {
	svc  upstream.Service
	opts LoaderOptions
}

func (streamLoaders) ExtensionName() string                   { return "StreamLoaders" }
func (streamLoaders) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation gives the operation fresh loaders and usage when its
// request is a stream, unless it is a subscription: its polls have loaders
// of their own (livePoller), and an idle subscriber holds none.
func (s streamLoaders) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if gqlhttp.IsStream(oc.Headers) && (oc.Operation == nil || oc.Operation.Operation != ast.Subscription) {
		ctx = upstream.WithUsage(ctx, &upstream.Usage{})
		ctx = WithLoaders(ctx, NewLoaders(s.svc, s.opts))
	}
	return next(ctx)
}
