# What a person does with this project. `make run` and `make test` are the
# two that matter; the rest are their parts.

GO            ?= go
BIN           := bin/imagegraph
STATICCHECK   := $(GO) run honnef.co/go/tools/cmd/staticcheck
BENCHTIME     ?= 1s
BENCHCOUNT    ?= 6
FUZZTIME      ?= 30s
FUZZFLAGS     ?=
IMAGE         ?= imagegraph:dev
IMAGE_CONTEXT := deploy/.build
SOAK_DURATION ?= 10m
SOAK_OUT      ?= $(CURDIR)/bin/soak

.PHONY: fuzz soak fleet-deps monitoring-deps image image-deps image-test load load-deps subgraph-sdl run build test check fmt-check vet staticcheck generate generate-check lint unit bench e2e e2e-deps playground playground-check schema-check schema-snapshot docs

## run: serve the API on the built-in sandbox (no credentials needed) at :8080
run:
	$(GO) run .

## build: build the server binary into bin/
build:
	$(GO) build -o $(BIN) .

## test: every check and every test (what CI runs)
test: lint generate-check schema-check unit playground-check e2e image-test

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

## docs: regenerate docs/configuration.md and docs/errors.md from the settings table and the list of codes
docs:
	$(GO) test ./internal/settings ./internal/codes -run 'DocIsCurrent' -count=1 -args -update

## schema-snapshot: write the served schema and the subgraph SDL to schema/snapshots/ (after a deliberate change, with a line in CHANGELOG.md)
schema-snapshot:
	$(GO) run ./graph/internal/printschema -served > schema/snapshots/served.graphql.tmp && mv schema/snapshots/served.graphql.tmp schema/snapshots/served.graphql
	$(GO) run ./graph/internal/printschema -subgraph > schema/snapshots/subgraph.graphql.tmp && mv schema/snapshots/subgraph.graphql.tmp schema/snapshots/subgraph.graphql

## schema-check: fail on a breaking change of the served schema or the subgraph SDL against schema/snapshots/ (docs/schema-changes.md), and test the check
schema-check: e2e-deps
	@mkdir -p bin
	$(GO) run ./graph/internal/printschema -served > bin/served.graphql
	$(GO) run ./graph/internal/printschema -subgraph > bin/subgraph.graphql
	node e2e/schema/check.mjs schema/snapshots/served.graphql bin/served.graphql schema/snapshots/subgraph.graphql bin/subgraph.graphql
	node --test e2e/schema/

## subgraph-sdl: write the federation subgraph SDL (what _service { sdl } answers) to bin/subgraph.graphqls
subgraph-sdl:
	@mkdir -p bin && $(GO) run . -print-schema > bin/subgraph.graphqls && echo bin/subgraph.graphqls

## unit: Go tests with the race detector (unit and end-to-end over HTTP, the fleet's and the dashboard's included)
unit: fleet-deps monitoring-deps
	$(GO) test -race -count=1 ./...

## bench: benchmarks with allocation counts
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./...

## fuzz: every fuzz target of the repository for FUZZTIME (30s) each, one after another, stopping at the first crash (go writes it under the package's testdata/fuzz/: commit it); FUZZFLAGS=-parallel=1 to keep to one core (docs/reliability.md)
# Targets are found by their declarations in the test files, tracked or
# new, so that a new one runs without a change here.
fuzz:
	@set -e; for file in $$(grep -l '^func Fuzz' $$(git ls-files --cached --others --exclude-standard '*_test.go')); do \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "fuzz: $$target (./$$(dirname $$file), $(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./$$(dirname $$file); \
		done; \
	done

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

## soak: the fleet under a mixed workload for SOAK_DURATION (10m) while its parts fail in turn; summary and chart into SOAK_OUT (bin/soak/), docs/reliability.md
# -timeout is SOAK_DURATION plus ten minutes: Go reads "2m10m" as 12m.
soak: fleet-deps
	SOAK_DURATION=$(SOAK_DURATION) SOAK_OUT=$(SOAK_OUT) $(GO) test -tags soak -run '^TestSoak$$' -timeout $(SOAK_DURATION)10m -count=1 -v ./internal/fleet

## fleet-deps: Debian's redis-server and haproxy, which the fleet's tests start on loopback ports of their own
fleet-deps:
	command -v redis-server >/dev/null && command -v haproxy >/dev/null || { apt-get update && apt-get install -y redis-server haproxy; }

## monitoring-deps: Debian's prometheus and promtool, which check the alert rules and run the dashboard's queries against a real server (deploy/monitoring_test.go)
monitoring-deps:
	command -v promtool >/dev/null && command -v prometheus >/dev/null || { apt-get update && apt-get install -y --no-install-recommends prometheus; }

## image-deps: Debian's podman and CA bundle, for make image
image-deps:
	command -v podman >/dev/null || { apt-get update && apt-get install -y podman; }
	test -f /etc/ssl/certs/ca-certificates.crt || { apt-get update && apt-get install -y ca-certificates; }

## image: the container image $(IMAGE), FROM scratch: the static binary, the CA bundle, passwd and group (deploy/Containerfile)
# podman needs no settings of its own here: as root, its default storage
# (overlay) works, and the Containerfile has no RUN step, so the build never
# runs a container. The prune drops earlier builds of this image only.
image: image-deps
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w -X github.com/compshare/imagegraph/internal/telemetry.buildVersion=$$(git rev-parse HEAD)" -o $(IMAGE_CONTEXT)/imagegraph .
	cp -R deploy/rootfs/etc $(IMAGE_CONTEXT)/etc
	cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_CONTEXT)/
	podman build -f deploy/Containerfile --build-arg REVISION=$$(git rev-parse HEAD) -t $(IMAGE) $(IMAGE_CONTEXT)
	podman image prune --force --filter label=org.opencontainers.image.title=imagegraph >/dev/null

## image-test: check what the image holds and run the binary taken out of it (deploy/image_test.go)
image-test: image
	IMAGEGRAPH_IMAGE=$(IMAGE) $(GO) test -count=1 -run TestImage ./deploy/
