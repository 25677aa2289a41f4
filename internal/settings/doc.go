package settings

import (
	"fmt"
	"strings"
)

// Markdown renders docs/configuration.md from the table: every setting,
// its default and what it does.
func Markdown() string {
	var b strings.Builder
	b.WriteString(`# Configuration

<!-- Generated from internal/settings/table.go by ` + "`make docs`" + `; do not edit by hand.
     make test fails when this page and the table disagree. -->

Every setting is an environment variable and a flag of the same name in
lower case with dashes (` + "`COMPSHARE_QPS`" + ` is ` + "`-compshare-qps`" + `); a flag wins
over the variable. ` + "`imagegraph -h`" + ` lists them with their defaults. A
variable or flag set to the empty string counts as not set, except where the empty
string turns a setting off (` + "`METRICS_ADDR=`" + `). Each value is checked when it is
read: a setting that cannot work stops the server at start with a message
that names it. Secrets are never logged; the settings, masked, are logged at
` + "`LOG_LEVEL=debug`" + `.

| variable | default | what it does |
| --- | --- | --- |
`)
	d := Defaults()
	for _, e := range d.Table() {
		def := e.Value()
		switch {
		case e.Secret || def == "":
			def = ""
		default:
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", e.Name, def, strings.ReplaceAll(e.Usage, "|", "\\|"))
	}
	b.WriteString(`
Besides these, the OpenTelemetry SDK's standard variables configure tracing
(` + "`OTEL_EXPORTER_OTLP_ENDPOINT`" + `, ` + "`OTEL_EXPORTER_OTLP_PROTOCOL`" + `, ` + "`OTEL_SERVICE_NAME`" + `,
` + "`OTEL_TRACES_SAMPLER`" + `, ...): tracing is off unless an endpoint is set (see
[operations](operations.md)). ` + "`-print-schema`" + ` prints the federation subgraph SDL
and exits.
`)
	return b.String()
}
