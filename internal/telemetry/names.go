package telemetry

import (
	"strings"
	"sync"
	"sync/atomic"
)

// otherOperation is the label of an operation name beyond the bound.
const otherOperation = "other"

// anonymousOperation is the label of an operation without a name;
// unknownOperation that of a request whose operation was never found (a
// document that does not parse, say).
const (
	anonymousOperation = "anonymous"
	unknownOperation   = "unknown"
)

// DefaultMaxOperationNames bounds the operation names, beyond the
// safelist's, that get a label of their own.
const DefaultMaxOperationNames = 200

// maxNameLen bounds the length of a name that gets a label of its own.
const maxNameLen = 100

// operationNames bounds the operation label: a client chooses its
// operations' names, and each distinct label value is a time series a
// Prometheus server keeps. The safelist's names always count as
// themselves; of the others, the first max seen do, and the rest count as
// "other". Safe for concurrent use.
type operationNames struct {
	set  sync.Map // name → struct{}
	seen atomic.Int64
	max  int64
	mu   sync.Mutex
}

func newOperationNames(maxNames int) *operationNames {
	return &operationNames{max: int64(max(maxNames, 0))}
}

// know gives each of names a label of its own, whatever the bound.
func (n *operationNames) know(names []string) {
	for _, name := range names {
		n.set.Store(name, struct{}{})
	}
}

// label returns the operation label of name.
func (n *operationNames) label(name string) string {
	if name == "" {
		return anonymousOperation
	}
	if _, ok := n.set.Load(name); ok {
		return name
	}
	if len(name) > maxNameLen || name == otherOperation || n.seen.Load() >= n.max {
		return otherOperation
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.set.Load(name); ok {
		return name
	}
	if n.seen.Load() >= n.max {
		return otherOperation
	}
	n.seen.Add(1)
	// A name is a slice of its document's text, which may be a megabyte of
	// comments: the label keeps a copy of its own, not the document.
	name = strings.Clone(name)
	n.set.Store(name, struct{}{})
	return name
}

// known returns the label of name when it has one already, and "other"
// otherwise: it admits no new name.
func (n *operationNames) known(name string) string {
	if _, ok := n.set.Load(name); ok {
		return name
	}
	return otherOperation
}
