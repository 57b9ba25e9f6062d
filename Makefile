# Courier — the two commands that matter: `make run` and `make test`.
# Everything else is a building block of those two, or an SRE convenience.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
MODULES := $(shell scripts/modules.sh)
BIN := $(CURDIR)/.run/bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help run stop test test-unit test-e2e build vet fmt-check proto proto-check bench capacity helm-lint check-deploy traces traces-build emulators emulators-stop ci js-deps js-test webclient webclient-check

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: build ## the whole system locally on the emulators (Ctrl-C stops it)
	scripts/run.sh

stop: ## stop what `make run` left running
	scripts/run.sh stop

test: proto-check fmt-check vet build helm-lint js-test webclient-check ## every test: unit, emulator-backed, e2e, chart checks, the JavaScript client
	scripts/test.sh

test-unit: ## tests without the emulators (integration tests skip)
	for m in $(MODULES); do (cd $$m && go test -count=1 ./...); done

build: ## build every binary into .run/bin
	mkdir -p $(BIN)
	go build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./services/api-gateway ./services/pipeline-worker ./services/ws-edge ./cmd/courierctl
	for m in $(MODULES); do (cd $$m && GOWORK=off go build ./...) || { echo "module $$m does not build alone (GOWORK=off)"; exit 1; }; done

vet: ## go vet every module
	for m in $(MODULES); do (cd $$m && go vet ./...); done

fmt-check: ## fail when a file is not gofmt-formatted
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

proto: ## regenerate proto/ Go code with the pinned plugins
	scripts/proto.sh

proto-check: ## fail when the committed generated code is stale
	scripts/proto.sh
	@if ! git diff --quiet -- proto/ || [ -n "$$(git ls-files --others --exclude-standard proto/)" ]; then \
	echo "generated code in proto/ is stale: run 'make proto' and commit"; git diff --stat -- proto/; exit 1; fi

js-deps: ## the JavaScript client's pinned dependencies (npm ci from clients/js/package-lock.json) when absent
	scripts/js.sh deps

js-test: ## the JavaScript client: type checks, unit tests and the npm pack check (its integration tests run in tests/e2e TestJSClient)
	scripts/js.sh test

webclient: ## rebuild the demo client bundle (ws-edge's internal/webclient/static/app.js) from clients/js
	scripts/js.sh bundle

webclient-check: ## fail when the committed demo client bundle is stale
	scripts/js.sh bundle-check

emulators: ## start the Pub/Sub and Firestore emulators (ports 8085, 8086)
	scripts/emulators.sh start

emulators-stop: ## stop them
	scripts/emulators.sh stop

ci: ## what .ci/run does
	CI=true .ci/run

test-e2e: build ## only the end-to-end tests on the real binaries (they start private emulators)
	cd tests/e2e && COURIER_REQUIRE_EMULATORS=1 go test -count=1 -timeout 30m -v ./...

helm-lint: ## chart: helm lint --strict + template per values file, kubectl-validate, tests/deploy rules, guards
	scripts/helm-lint.sh

check-deploy: ## helm-lint plus skaffold diagnose/render offline (builds skaffold v2.16.1 once, ~8-15 min)
	scripts/check-deploy.sh

bench-worker: ## worker throughput on the emulators (needs `make emulators`)
	cd services/pipeline-worker && eval "$$(../../scripts/emulators.sh env)" && COURIER_REQUIRE_EMULATORS=1 go test -run '^$$' -bench Pipeline -benchtime 1x .

bench: ## one benchmark report (raw limits, end to end, worker, edge, Go); BENCH_QUICK=1 small, BENCH_BASELINE=<rev> side by side; docs/benchmarks.md
	scripts/bench.sh $(if $(filter-out 0,$(BENCH_QUICK)),--quick,)

capacity: ## pods, cores, memory and monthly cost at 10k/1M/10M users from the bench's per-core figures and GCP prices; docs/capacity.md
	@cd cmd/courier-capacity && go run .

traces-build: ## build the local Jaeger all-in-one once (~10 min the first time, cached after)
	cd tools/jaeger && GOWORK=off go build -o $(CURDIR)/.tools/bin/jaeger github.com/jaegertracing/jaeger/cmd/jaeger

traces: ## run Jaeger in memory (OTLP gRPC :4317, query API :16686; scripts/trace-view.py renders a trace); builds it first when absent
	@[ -x .tools/bin/jaeger ] || $(MAKE) traces-build
	.tools/bin/jaeger
