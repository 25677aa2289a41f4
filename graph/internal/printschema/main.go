// Command printschema prints the GraphQL schema as clients and federation
// routers see it, for the committed snapshots under schema/snapshots/ and for
// `make schema-check`, which compares the two (e2e/schema/check.mjs).
//
// With -served it prints the whole executable schema (graph.Schema()) in
// gqlparser's formatting: what a client introspects, federation's _entities,
// _service, _Any, _Entity and _Service included, and the built-in directives
// and introspection types left out as the formatter leaves them. With
// -subgraph it prints the federation subgraph SDL (graph.SubgraphSDL()):
// exactly what `_service { sdl }` answers and what a router composes.
//
//	go run ./graph/internal/printschema -served   > schema/snapshots/served.graphql
//	go run ./graph/internal/printschema -subgraph > schema/snapshots/subgraph.graphql
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/compshare/imagegraph/graph"
)

func main() {
	served := flag.Bool("served", false, "print the served schema: the full executable schema clients introspect")
	subgraph := flag.Bool("subgraph", false, "print the federation subgraph SDL: what _service { sdl } answers")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: printschema -served | -subgraph\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *served == *subgraph || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := write(os.Stdout, *served); err != nil {
		fmt.Fprintln(os.Stderr, "printschema:", err)
		os.Exit(1)
	}
}

// write prints the served schema (served) or the subgraph SDL to w, ending
// in exactly one newline.
func write(w io.Writer, served bool) error {
	bw := bufio.NewWriter(w)
	if served {
		formatter.NewFormatter(bw, formatter.WithNonIntrospectionBuiltin()).FormatSchema(graph.Schema())
	} else {
		sdl := strings.TrimRight(graph.SubgraphSDL(), "\n")
		if _, err := bw.WriteString(sdl + "\n"); err != nil {
			return err
		}
	}
	return bw.Flush()
}
