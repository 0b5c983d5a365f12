# meshgate: `make run` starts the gateway on its embedded demo config;
# `make test` runs every check and test, installing what it needs.
#
# Tools are installed once into $(TOOLS), keyed by version, so a second run
# builds nothing.

SHELL := /bin/bash
GO ?= go
CACHE ?= $(HOME)/.cache/meshgate
TOOLS := $(CACHE)/tools

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
STATICCHECK_VERSION := v0.7.0
GRPCURL_VERSION := v1.9.4
RNACOS_VERSION := 0.8.8
CARGO ?= $(shell command -v cargo || echo $(HOME)/.cargo/bin/cargo)

BUF := $(TOOLS)/buf-$(BUF_VERSION)/buf
PROTOC_GEN_GO := $(TOOLS)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)/protoc-gen-go-grpc
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
GRPCURL := $(TOOLS)/grpcurl-$(GRPCURL_VERSION)/grpcurl
RNACOS := $(CACHE)/rnacos-$(RNACOS_VERSION)/bin/rnacos

UNIT_PKGS = $(shell $(GO) list ./... | grep -v -e /integration -e /bench)

.PHONY: all run build test test-unit test-deploy test-integration peers bench lint proto fuzz grpcurl image manifests clean

all: build

## run: start the gateway with the embedded demo config and demo backend
run:
	$(GO) run ./cmd/meshgate run

## build: build bin/meshgate (VERSION=v1.2.3 stamps `meshgate version`; the
## commit and Go version are always stamped by the go command)
build:
	$(GO) build -buildvcs=auto $(if $(VERSION),-ldflags "-X github.com/meshgate/meshgate/cmd/meshgate/cli.version=$(VERSION)") -o bin/meshgate ./cmd/meshgate

## test: lint, unit tests (with the race detector), the deployment's tests, then integration tests
test: lint test-unit test-deploy test-integration

test-unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)

## test-deploy: the Helm chart rendered with Helm's Go library and checked
## against the real binary, the Dockerfile read, deploy/kubernetes current
## (deploy/helm/charttest, a module of its own; no helm CLI, no Docker engine)
test-deploy:
	cd deploy/helm/charttest && $(GO) test -count=1 ./...

## manifests: render the chart's defaults into deploy/kubernetes (committed)
manifests:
	cd deploy/helm/charttest && $(GO) run ./cmd/render -chart ../meshgate -out ../../kubernetes/meshgate.yaml

## image: build the container image $(IMAGE) from the Dockerfile with docker
## or podman (CONTAINER_BUILDER to choose; VERSION stamps the binary, default
## git describe); fails, saying so, when no builder answers (`docker info`)
IMAGE ?= meshgate/meshgate:dev
CONTAINER_BUILDER ?=
VERSION ?=
image:
	@builder="$(CONTAINER_BUILDER)"; \
	  if [ -z "$$builder" ]; then \
	    for b in docker podman; do \
	      if command -v $$b >/dev/null 2>&1 && $$b info >/dev/null 2>&1; then builder=$$b; break; fi; \
	    done; \
	  fi; \
	  if [ -z "$$builder" ] || ! $$builder info >/dev/null 2>&1; then \
	    echo "make image: no working container builder: '$${builder:-docker} info' fails (a docker or podman client without a running engine?); the image was not built" >&2; \
	    exit 1; \
	  fi; \
	  version="$(VERSION)"; \
	  [ -n "$$version" ] || version=$$(git describe --tags --always --dirty 2>/dev/null || echo dev); \
	  commit=$$(git rev-parse HEAD 2>/dev/null || true); \
	  echo "$$builder build -t $(IMAGE) (version $$version)"; \
	  $$builder build --build-arg VERSION="$$version" --build-arg COMMIT="$$commit" -t $(IMAGE) .

test-integration: peers
	$(GO) test -race -count=1 -timeout 30m ./integration/...
	# Tests kept out of the race build (see their files: a peer's client library races on its own;
	# grpc-go pings too seldom under it for the PING-flood test).
	$(GO) test -count=1 -timeout 10m -run 'TestRegistryNacos_|TestRegistryZK_ServerRestart|TestSidecar_RegisteredInNacos|TestRules_SteerCallsWhileTrafficFlowsNacos|TestGRPC_LongServerStreamIsNoPingFlood' ./integration/

## peers: install the real servers the integration tests run: ZooKeeper
## (Debian's package, with slf4j-simple for its logs), Java and Maven (for
## the Java Dubbo provider), Chromium and npm (the browser tests), promtool
## (Debian's prometheus package: the metrics lint test), and rnacos (a Nacos 2.x server, from crates.io;
## a cold build takes ~15 minutes, then it is cached by version). The
## dubbo-go and Java Dubbo providers build themselves on first use, cached
## in $(CACHE).
peers: $(RNACOS)
	@missing=""; \
	  [ -f /usr/share/java/zookeeper.jar ] || missing="$$missing zookeeper"; \
	  [ -f /usr/share/java/slf4j-simple.jar ] || missing="$$missing libslf4j-java"; \
	  command -v java >/dev/null || missing="$$missing default-jdk-headless"; \
	  command -v mvn >/dev/null || missing="$$missing maven"; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  command -v promtool >/dev/null || missing="$$missing prometheus"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi

$(RNACOS):
	@[ -x "$(CARGO)" ] || { echo "cargo is needed to build rnacos (a Nacos 2.x server)"; exit 1; }
	$(CARGO) install rnacos --version $(RNACOS_VERSION) --locked --root $(CACHE)/rnacos-$(RNACOS_VERSION)

## bench: Go benchmarks of the hot paths, then the whole-gateway harness,
## which runs the gRPC and HTTP/1.1 paths through meshgate, nginx and HAProxy
## (Debian's packages, installed here when missing) and writes
## bench/RESULTS.md
bench:
	@bash bench/install-proxies.sh
	$(GO) test -run '^$$' -bench . -benchmem ./server/... ./governance/...
	$(GO) run ./bench -out bench/RESULTS.md

## fuzz: run each fuzz target for a while (FUZZTIME, default 20s)
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## lint: gofmt, go vet, staticcheck, buf lint
lint: $(STATICCHECK) $(BUF)
	@bad=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	  if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(BUF) lint

## proto: regenerate the Go code of proto/ (committed)
proto: $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)
	PATH=$(dir $(PROTOC_GEN_GO)):$(dir $(PROTOC_GEN_GO_GRPC)):$$PATH $(BUF) generate

## grpcurl: install grpcurl for the README's examples (bin/grpcurl)
grpcurl: $(GRPCURL)
	@mkdir -p bin && ln -sf $(GRPCURL) bin/grpcurl && echo "bin/grpcurl -> $(GRPCURL)"

$(BUF):
	GOBIN=$(dir $@) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(PROTOC_GEN_GO):
	GOBIN=$(dir $@) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(PROTOC_GEN_GO_GRPC):
	GOBIN=$(dir $@) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(GRPCURL):
	GOBIN=$(dir $@) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

clean:
	rm -rf bin
