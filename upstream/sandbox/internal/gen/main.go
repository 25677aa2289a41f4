// Command gen writes the sandbox's dataset, data/images.json, from the fixed
// seed in package dataset. Run it through go generate in upstream/sandbox.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/compshare/imagegraph/upstream/sandbox/internal/dataset"
)

func main() {
	out := flag.String("o", "data/images.json", "file to write")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	b, err := dataset.Marshal(dataset.Generate())
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
