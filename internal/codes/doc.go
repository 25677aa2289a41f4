package codes

import (
	"fmt"
	"strings"
)

// Markdown renders docs/errors.md from All.
func Markdown() string {
	var b strings.Builder
	b.WriteString(`# Errors

<!-- Generated from internal/codes/codes.go by ` + "`make docs`" + `; do not edit by hand.
     make test fails when this page and the list disagree. -->

Every error the server sends carries a stable ` + "`extensions.code`" + `: match on
it, never on the message. A **request error** stops the request before
anything runs: the answer has ` + "`errors`" + ` and no ` + "`data`" + `. A **field
error** fails one field: the answer has ` + "`data`" + `, with ` + "`null`" + ` where the
field failed, and the error's ` + "`path`" + ` names it.

The status of a request error follows the GraphQL-over-HTTP specification:
a client that accepts ` + "`application/graphql-response+json`" + ` gets the status
below; one that accepts only ` + "`application/json`" + ` gets 200, except where the
status says "always" (a status that tells when to retry, or a request that
never reached GraphQL). An answer with data is always 200.

| code | status | when | extensions |
| --- | --- | --- | --- |
`)
	for _, c := range All {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", c.Name, statusText(c), c.When, c.Extensions)
	}
	return b.String()
}

func statusText(c Code) string {
	switch {
	case c.Status == 0:
		return "field error (200)"
	case c.Always:
		return fmt.Sprintf("%d, always", c.Status)
	default:
		return fmt.Sprintf("%d", c.Status)
	}
}
