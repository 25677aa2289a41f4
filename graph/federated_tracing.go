package graph

import "net/http"

// FederatedTraceHeader is the header with which a federation router asks
// for Apollo's federated trace (value "ftv1").
const FederatedTraceHeader = "Apollo-Federation-Include-Trace"

// federatedTracing sends a request that asks for a federated trace (and,
// when a secret is set, carries it) to traced, an executor with gqlgen's
// ftv1 tracer, and every other request to plain. The tracer intercepts
// every field, which turns off the inline reading of plain fields: on an
// executor of its own, only the requests that ask pay for that.
type federatedTracing struct {
	secret        []byte
	traced, plain http.Handler
}

func (f federatedTracing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// With no secret set, any router may ask.
	if r.Header.Get(FederatedTraceHeader) == "ftv1" && (len(f.secret) == 0 || CarriesFederationSecret(r.Header, f.secret)) {
		f.traced.ServeHTTP(w, r)
		return
	}
	f.plain.ServeHTTP(w, r)
}

// WantsTrace reports a request that asks for a federated trace: its answer
// carries the trace of its own execution, so the cache of answers passes it
// by.
func WantsTrace(r *http.Request) bool { return r.Header.Get(FederatedTraceHeader) == "ftv1" }
