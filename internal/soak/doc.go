// Package soak is the pure part of the fleet's chaos soak (make soak, run by
// internal/fleet/soak_test.go behind the soak build tag): the plan of its
// fault windows, the workload's operations with the answers the sandbox's
// own dataset says they must get, the check of every answer and of every
// subscriber's events, what it records over time, and the summary
// (markdown and JSON) and the chart (PNG) it writes.
//
// The processes, the traffic and the faults themselves are the soak test's:
// everything here is a function of what it is given, so that make test
// keeps it honest without running a soak. It knows the GraphQL schema's
// shape and the sandbox's dataset, not the server's code: the expected
// answers are worked out from the sandbox's Describe and the documented
// semantics of the API, never by the server's own mapping.
//
// Only the soak test imports it.
package soak
