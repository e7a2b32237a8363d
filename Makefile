# hubmon: `make run` runs the whole system here, `make test` proves it.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION)
# go-sqlite3 needs cgo; CGO_ENABLED=0 silently builds a stub that fails at run time
export CGO_ENABLED := 1

.PHONY: all build run test deps bench bench-accuracy fuzz vet lint clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hubmon-agent ./agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hubmon-collector ./collector

## run: the collector (embedded broker, speed-test server) and one local agent; Ctrl-C stops both
run: build
	./deploy/dev/run.sh

## test: vet, every test (unit, real Mosquitto, real binaries end to end, the pages in headless Chromium) with the race detector, and a short fuzz
# HUBMON_REQUIRE_CHROMIUM: the browser test fails without chromium instead of
# skipping; HUBMON_ARTIFACTS=dir keeps its screenshots there
test: deps vet build
	HUBMON_REQUIRE_CHROMIUM=1 $(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -run '^$$' -fuzz FuzzDecodeMeasurement -fuzztime 10s ./agent/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 10s ./agent/internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 10s ./collector/internal/config/

## bench: Go benchmarks (outbox, store)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

## bench-accuracy: the speed test against iperf3 on tbf-shaped links between network namespaces (root; needs iperf3, jq)
bench-accuracy: build
	BIN=$(CURDIR)/bin ./bench/accuracy/run.sh

## fuzz: a longer fuzz run of the message decoder and the config loaders
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeMeasurement -fuzztime 5m ./agent/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 2m ./agent/internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 2m ./collector/internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSites$$' -fuzztime 2m ./collector/internal/config/

# the tests run a real Mosquitto, promtool and headless Chromium; say how to get them
deps:
	@command -v mosquitto >/dev/null && command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v chromium >/dev/null || { \
	  echo "make test needs mosquitto, prometheus, promtool and chromium: sudo apt-get install -y mosquitto prometheus chromium fonts-dejavu-core"; exit 1; }

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l agent collector)" || { echo "gofmt needed:"; gofmt -l agent collector; exit 1; }

lint: vet

clean:
	rm -rf bin dist
