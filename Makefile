# The two commands for a fresh machine are `make run` and `make test`.

GO       ?= go
BIN      ?= kes
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/kesbridge/kes/edge.Version=$(VERSION) -X github.com/kesbridge/kes/edge.Commit=$(COMMIT)
FUZZTIME ?= 10s
PREFIX   ?= /usr/local
DESTDIR  ?=

.PHONY: all build install run test deps vet staticcheck unit bench load compare fuzz image clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kes

# Installs the binary as $(DESTDIR)$(PREFIX)/bin/kes (default
# /usr/local/bin/kes; may need sudo). 'make install PREFIX=$HOME/.local'
# installs it for one user (then put $HOME/.local/bin on PATH).
install: build
	install -d "$(DESTDIR)$(PREFIX)/bin"
	install -m 0755 $(BIN) "$(DESTDIR)$(PREFIX)/bin/kes"

# A development server on 127.0.0.1:7373 with the embedded fs keystore in
# ./.data. It prints the admin API key and how to use it.
run: build
	./$(BIN) server --dev --addr 127.0.0.1:7373 --data .data

# Every check CI runs: system packages the tests need, vet (with and
# without cgo), staticcheck, and all tests with the race detector.
test: deps vet staticcheck unit

deps:
	@scripts/deps.sh

vet:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	CGO_ENABLED=0 $(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# Go benchmarks: the HTTP API (generate/decrypt), the KMIP bridge (Get,
# Create) and each keystore driver, cold and warm. BenchmarkHTTPEfficiency
# puts the server beside a bare net/http handler in the same run and
# reports efficiency = bare CPU/op ÷ ours (and audit on ÷ off);
# BenchmarkManyKeys reports generate over 100,000 cached keys against one
# key, and the resident memory with mlock: true.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

# The load tool against a development server on a free loopback port:
# HTTP generate and decrypt throughput and latency (LOAD_DURATION each).
load:
	@scripts/load.sh

# minio/kes v0.24.0 (built from the Go module proxy in a temporary
# module by scripts/build-minio-kes.sh, which the rollback test of
# `make test`, cmd/kes/rollback_test.go, uses too) against this server on identical configs: medians of
# COMPARE_PAIRS alternating kes-load runs. Needs the module proxy; not
# part of `make test`.
compare:
	@scripts/compare.sh

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

# The container image (Containerfile): the static binary on scratch, built
# with podman or buildah (podman is installed with apt-get if neither is).
IMAGE ?= kes:latest
image:
	LDFLAGS="$(LDFLAGS)" GO="$(GO)" scripts/image.sh $(IMAGE)

clean:
	rm -f $(BIN)
