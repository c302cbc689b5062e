# orthotriage: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
VERSION ?= 0.1.0-dev
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
STATICCHECK_VERSION := v0.8.2
BIN := bin/orthotriage
MODULE := github.com/orthotriage/orthotriage
# Packages that need cgo to build: the ONNX Runtime adapter (with its test
# helpers) and the binary that links it (cmd/orthotriage passes it to app
# as an app.Runtime). Every other package must build without cgo
# (imaging/codec falls back to no codecs), so that none reaches ONNX
# Runtime by accident.
NOCGO_BUILD_EXCLUDE := inference/onnx inference/onnx/onnxtest cmd/orthotriage
# Packages whose tests need cgo besides: inference/models runs the shipped
# models through inference/onnx, and app's tests serve them with it.
NOCGO_VET_EXCLUDE := $(NOCGO_BUILD_EXCLUDE) inference/models app

.PHONY: all build codecs web setup demo test lint nocgo fmt clean fuzz train-hip train-spine bench bench-hook

all: build

# The binary links the DICOM codec libraries (imaging/codec); `codecs`
# installs their Debian -dev packages when missing. It embeds the SMART
# app (package web); `web` builds it into web/dist when a source changed.
build: codecs web
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/orthotriage

codecs:
	scripts/setup.sh codecs

web:
	scripts/setup.sh web

# Installs what is missing: ONNX Runtime library, redis-server, Node, the
# FHIR test server's packages and the SMART app's build (downloads cached
# in .cache/).
setup:
	scripts/setup.sh

# Runs the service on its embedded defaults and shows it working: discovery
# and a sample hook call. DEMO_EXIT=1 stops it after that.
demo: build
	scripts/setup.sh ort curl orthanc
	scripts/demo.sh

lint: nocgo
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@[ -x .cache/bin/staticcheck ] || GOBIN=$(CURDIR)/.cache/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	.cache/bin/staticcheck ./...
	scripts/check-links.sh

# Builds and vets every package but the exclusions above with CGO_ENABLED=0;
# a new package is checked without being listed.
nocgo:
	@build=$$($(GO) list ./... | grep -vxF $(foreach p,$(NOCGO_BUILD_EXCLUDE),-e $(MODULE)/$(p))) && \
	  vet=$$($(GO) list ./... | grep -vxF $(foreach p,$(NOCGO_VET_EXCLUDE),-e $(MODULE)/$(p))) && \
	  echo "CGO_ENABLED=0 go build ./... but $(NOCGO_BUILD_EXCLUDE); go vet also but $(filter-out $(NOCGO_BUILD_EXCLUDE),$(NOCGO_VET_EXCLUDE))" && \
	  if ! CGO_ENABLED=0 $(GO) build $$build; then \
	    echo "nocgo: these need cgo (ONNX Runtime belongs in inference/onnx):"; \
	    $(GO) list -f '{{.ImportPath}} {{join .Deps " "}}' $$build | grep -E ' ($(MODULE)/inference/onnx|github.com/yalue/onnxruntime_go)( |$$)' | cut -d' ' -f1; \
	    exit 1; \
	  fi && CGO_ENABLED=0 $(GO) vet $$vet

# Every test, against real Redis, the FHIR test server, Orthanc and ONNX
# Runtime; TEST_TIMEOUT (default 30m) bounds each test binary.
test: setup lint
	scripts/test.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Runs each fuzz target for FUZZTIME (not part of `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./cds -run '^$$' -fuzz '^FuzzParseAndValidate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./cds -run '^$$' -fuzz '^FuzzParseFeedback$$' -fuzztime $(FUZZTIME)
	$(GO) test ./cds -run '^$$' -fuzz '^FuzzClean$$' -fuzztime $(FUZZTIME)
	$(GO) test ./cds -run '^$$' -fuzz '^FuzzParseBodies$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging -run '^$$' -fuzz '^FuzzParseMultipart$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging/codec -run '^$$' -fuzz '^FuzzJPEG$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging/codec -run '^$$' -fuzz '^FuzzJPEGLS$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging/codec -run '^$$' -fuzz '^FuzzJPEG2000$$' -fuzztime $(FUZZTIME)
	$(GO) test ./inference/radiomics -run '^$$' -fuzz '^FuzzFeatures$$' -fuzztime $(FUZZTIME)
	$(GO) test ./sandbox -run '^$$' -fuzz '^FuzzCheckAnswer$$' -fuzztime $(FUZZTIME)

# Reproduces the reference hip model (inference/models/hip-000) on varied
# phantoms: the hip localiser, the classifier on crops through it, ONNX
# export, golden files, the temperature fitted on the validation set, then
# eval --perturb on a held-out test set. About an hour on 2 cores; not part
# of `make test`.
train-hip: build
	scripts/train-hip.sh

# Reproduces the reference vertebral model (inference/models/spine-000):
# localiser, per-vertebra network, fusion (LASSO, trees, nomogram), each on
# data the service's own code writes, then the evaluation on a held-out
# seed. About 35 minutes on 2 cores; not part of `make test`.
train-spine: build
	scripts/train-spine.sh

# Benchmarks the hip model (pipeline against raw ONNX Runtime, stage
# breakdown) and prints a table; BENCHTIME=5s per benchmark.
bench:
	scripts/bench.sh

# Hook-path benchmarks against the real binary over loopback: cached
# patient-view against a bare gin handler answering the same bytes (ratio,
# 8 and 32 connections, auth off and ES384, embedded store and Redis), the
# cold hook via Orthanc (median of BENCH_STUDIES, default 10), and the
# open-loop latency at BENCH_RATE calls/s (default 200). BENCH_SECONDS sets
# each run. Not part of `make test`.
bench-hook: setup
	$(GO) test ./cmd/orthotriage -run '^$$' -bench '^(BenchmarkHookVsBare|BenchmarkColdHook|BenchmarkHookLoad)$$' -benchtime 1x -timeout 20m
