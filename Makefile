# The two commands a newcomer needs are `make demo` and `make test`; each
# installs what it needs first (`make deps`).

SHELL := /bin/bash
GO ?= go
# Every module of the workspace (go.work), for go test/vet.
MODULES := platform proto services/product services/inventory services/order services/channelsim services/payment services/marketing gateway loadtest deploy/local deploy/check
PKGS := $(addsuffix /...,$(addprefix ./,$(MODULES)))
BIN := $(CURDIR)/.bin
PROTOC_GEN_GO_VERSION := v1.36.11
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# actionlint checks .github/workflows; `go run` builds the pinned version,
# so CI needs nothing installed for it.
ACTIONLINT_VERSION := v1.7.12
PROTOS := $(shell find proto -name '*.proto' | sort)

export GOTOOLCHAIN := local

.PHONY: demo test test-split rules actionlint up up-split compose-up config-doc deps test-deps proto proto-check lint bench loadtest static size package-graph shadow-clean

SCENARIO ?= loadtest/scenarios/double11.yaml
TARGET ?= http://127.0.0.1:8080

## demo: start the whole platform on this machine, replay the Double-11 scenario and audit it (prints the big screen's URL; KEEP=1 keeps the platform up afterwards until Ctrl-C); MIXED=1 replays it as real and as pressure-test traffic at once, then the leakage audit and the shadow cleanup (docs/pressure-test.md); SPLIT=1 runs the split platform (up-split) and replays through compose's loadtest service
demo: deps
ifeq ($(SPLIT),)
	$(GO) run ./loadtest/cmd/demo -scenario $(SCENARIO) $(if $(KEEP),-keep) $(if $(MIXED),-mixed) $(ARGS)
else
	$(GO) run ./deploy/local/cmd/split -bin $(BIN)/split -replay $(SCENARIO) $(ARGS)
endif

## loadtest: replay SCENARIO against the running gateway at TARGET (dev tokens on) and audit it
loadtest:
	$(GO) run ./loadtest/cmd/loadtest -scenario $(SCENARIO) -target $(TARGET) $(ARGS)

## test: every unit and integration test, with the race detector, the alert rules' tests and the workflows' lint
test: test-deps rules actionlint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## test-split: the split platform's test: every service built and run as its own process, a small replay through compose's loadtest service, its audit (about a minute; CI runs it after make test)
test-split: deps
	$(GO) vet -tags split ./deploy/local/split/
	$(GO) test -tags split -race -count=1 -timeout 15m -run TestSplit ./deploy/local/split/

## rules: check the Prometheus configuration and alert rules and run their unit tests (promtool, from Debian's prometheus package)
rules:
	@if command -v promtool >/dev/null; then \
		promtool check config deploy/prometheus.yml && \
		promtool check rules deploy/prometheus/alerts.yml && \
		promtool test rules deploy/prometheus/alerts_test.yml; \
	else echo "rules: skipped: promtool not installed (apt-get install prometheus)"; fi

## actionlint: check the GitHub Actions workflows (.github/workflows) with actionlint, built from source at ACTIONLINT_VERSION
actionlint:
	$(GO) run github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION) -no-color

## up: run the platform locally until interrupted (gateway on FLASHSALE_HTTP_ADDR)
up: deps
	$(GO) run ./deploy/local/cmd/up

## compose-up: the platform on Docker (real Kafka, Consul, Grafana ...), then its URLs once every healthcheck passes
compose-up:
	docker compose up --build --detach --wait
	$(GO) run ./deploy/local/cmd/banner

## up-split: docker-compose.yml's platform without containers, each service its own process with compose's environment, found through Consul (docs/operations.md, "The split platform"), until interrupted
up-split: deps
	$(GO) run ./deploy/local/cmd/split -bin $(BIN)/split $(ARGS)

# install-missing runs the checks $(1), which add the apt packages they
# find missing to $$missing, and installs those.
define install-missing
	@missing=""; $(1) \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
		else echo "need root or sudo to install:$$missing (apt-get install$$missing)"; exit 1; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

# What the platform needs to run on this machine (make up, demo, bench).
RUN_NEEDS := \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-benchmark >/dev/null || missing="$$missing redis-tools"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	id postgres >/dev/null 2>&1 || missing="$$missing postgresql";
# What the tests need beyond that: the report test and the big screen's test render HTML in chromium.
TEST_NEEDS := \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing chromium";

## deps: install redis-server, redis-tools and PostgreSQL through apt when missing (what make up, demo and bench run)
deps:
	$(call install-missing,$(RUN_NEEDS))

## test-deps: deps plus chromium, which the report test and the big screen's test need (they render HTML)
test-deps:
	$(call install-missing,$(RUN_NEEDS) $(TEST_NEEDS))

## proto: regenerate the gRPC code from proto/ with pinned generators
proto:
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	cd proto && PATH=$(BIN):$$PATH protoc -I . \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		$(patsubst proto/%,%,$(PROTOS))

## proto-check: fail when the committed generated code is stale
proto-check: proto
	@git diff --exit-code --stat -- proto || { echo "generated code in proto/ is stale: run make proto and commit"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard proto); \
	if [ -n "$$untracked" ]; then echo "untracked generated files: $$untracked"; exit 1; fi

## config-doc: write docs/configuration.md, the table of every FLASHSALE_* variable, from the code
config-doc:
	$(GO) run ./deploy/check/cmd/configdoc

## package-graph: write docs/package-graph.md, the packages as boxes and their imports as arrows, from the code
package-graph:
	$(GO) run ./deploy/check/cmd/pkggraph

## lint: gofmt, go vet, and the walls between services (archlint: one service's code never imports another's)
lint:
	@unformatted=$$(gofmt -l $(MODULES)); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run ./deploy/check/cmd/archlint $(filter-out ./loadtest/... ./deploy/%,$(PKGS))

## bench: inventory strategies against the redis-benchmark ceiling, then the rate limiters under one bursty trace (chart: loadtest/out/ratelimit.html)
bench: deps
	$(GO) run ./loadtest/cmd/bench $(ARGS)

## size: replicas, Redis primaries and Kafka partitions for PLAN's users (docs/sizing.md); REPORT=loadtest/out/report.json takes the capacities from a run
PLAN ?= loadtest/sizing/seed002.yaml
size:
	$(GO) run ./loadtest/cmd/size -plan $(PLAN) $(if $(REPORT),-report $(REPORT)) $(ARGS)

## shadow-clean: the pressure-test leakage audit, then delete the shadow data (shadow schemas, shadow: Redis keys on every primary; the .shadow topics stay); ARGS names the stores (docs/pressure-test.md)
shadow-clean:
	$(GO) run ./loadtest/cmd/shadow -audit -clean $(ARGS)

## static: build every command as the Dockerfile does (CGO_ENABLED=0, static), into .bin/static (testdata trees, which Go does not build, left out)
static:
	@mkdir -p $(BIN)/static
	@for dir in $$(git ls-files --cached --others --exclude-standard '*/cmd/*/main.go' | grep -v '/testdata/' | xargs -n1 dirname | sort -u); do \
		echo "CGO_ENABLED=0 go build ./$$dir"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/static/ ./$$dir || exit 1; \
	done
