# What a person does with this project. `make run` and `make test` are the
# two that matter; the rest are their parts.

GO            ?= go
BIN           := bin/imagegraph
STATICCHECK   := $(GO) run honnef.co/go/tools/cmd/staticcheck
BENCHTIME     ?= 1s
BENCHCOUNT    ?= 6

.PHONY: fleet-deps load load-deps subgraph-sdl run build test check fmt-check vet staticcheck generate generate-check lint unit bench e2e e2e-deps playground playground-check

## run: serve the API on the built-in sandbox (no credentials needed) at :8080
run:
	$(GO) run .

## build: build the server binary into bin/
build:
	$(GO) build -o $(BIN) .

## test: every check and every test (what CI runs)
test: lint generate-check unit playground-check e2e

## lint: gofmt, go vet and staticcheck
lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# gqlgen's generated federation.go trips SA4004 (a loop that always breaks);
# generated code is not ours to edit, so that one finding there is dropped.
staticcheck:
	@out=$$($(STATICCHECK) ./... 2>&1 | grep -v -e '^graph/federation.go:[0-9:]* .*(SA4004)$$' -e '^exit status 1$$'); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi

## generate: regenerate gqlgen's code from schema/*.graphqls
generate:
	$(GO) generate ./...

## generate-check: fail when generated code is stale
generate-check: generate
	@git diff --exit-code -- graph/ upstream/ || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- graph/ upstream/)" || { git ls-files --others --exclude-standard -- graph/ upstream/; echo "generate made new files: commit them"; exit 1; }

## subgraph-sdl: write the federation subgraph SDL (what _service { sdl } answers) to bin/subgraph.graphqls
subgraph-sdl:
	@mkdir -p bin && $(GO) run . -print-schema > bin/subgraph.graphqls && echo bin/subgraph.graphqls

## unit: Go tests with the race detector (unit and end-to-end over HTTP, the fleet's included)
unit: fleet-deps
	$(GO) test -race -count=1 ./...

## bench: benchmarks with allocation counts
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./...

## e2e-deps: Debian's chromium and CJK fonts, and e2e/'s pinned npm packages
e2e-deps:
	sh e2e/scripts/install-deps.sh

## e2e: the built server under a real browser and the GraphQL-over-HTTP audit
e2e: build e2e-deps
	cd e2e && IMAGEGRAPH_BIN=$(CURDIR)/$(BIN) npm test

## playground: rebuild the embedded GraphiQL bundle from playground/package-lock.json
playground:
	cd playground && npm ci --no-audit --no-fund && npm run build

## playground-check: fail when playground/dist differs from a fresh build
playground-check:
	cd playground && npm run check

## load-deps: Debian's wrk, for make load
load-deps:
	command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }

## load: the reference operation under wrk, 32 clients on loopback, 20 ms upstream (a measurement, not a test)
load: build load-deps
	IMAGEGRAPH_BIN=$(CURDIR)/$(BIN) bash e2e/load/run.sh

## fleet-deps: Debian's redis-server and haproxy, which the fleet's tests start on loopback ports of their own
fleet-deps:
	command -v redis-server >/dev/null && command -v haproxy >/dev/null || { apt-get update && apt-get install -y redis-server haproxy; }
