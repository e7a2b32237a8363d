# hubmon: `make run` runs the whole system here, `make test` proves it.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION)
# go-sqlite3 needs cgo; CGO_ENABLED=0 silently builds a stub that fails at run time
export CGO_ENABLED := 1

.PHONY: all build dist deb run test deps bench bench-go bench-load bench-accuracy fuzz vet lint clean FORCE

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hubmon-agent ./agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hubmon-collector ./collector

## dist: static release binaries in $(DIST)/, hubmon-<name>-linux-<target>:
## the agent for amd64, arm64, armv7 (Pi 2 and later, 32-bit) and armv6 (Pi
## Zero and 1; also in the armhf package, as it runs on every Pi), the
## collector for amd64 and arm64. Needs Debian's cross compilers:
## gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, gcc-arm-linux-gnueabi.
# Static, so that one binary runs on any Raspberry Pi OS release (a dynamic
# cross build needs the build machine's glibc 2.36 or later at run time):
# osusergo and netgo keep glibc's NSS (getpwnam, getaddrinfo, which want
# shared objects at run time) out, so DNS is Go's own resolver;
# sqlite_omit_load_extension keeps dlopen out.
# armv6: Debian's armhf libc is built for ARMv7 Thumb-2 (its crt1.o alone
# traps on an ARM1176), so the armv6 build links Debian's armel libc (ARMv5TE,
# soft-float calling convention; the C code still uses the VFP), which is all
# inside the static binary and so runs on armhf systems too.
DIST ?= dist
DIST_BINS := $(addprefix $(DIST)/hubmon-agent-linux-,amd64 arm64 armv7 armv6) \
	$(addprefix $(DIST)/hubmon-collector-linux-,amd64 arm64)
STATIC_TAGS := osusergo,netgo,sqlite_omit_load_extension
STATIC_LDFLAGS := -s -w $(LDFLAGS) -linkmode external -extldflags "-static"
GOARCH_amd64 := amd64
GOARCH_arm64 := arm64
GOARCH_armv7 := arm
GOARCH_armv6 := arm
GOARM_armv7 := 7
GOARM_armv6 := 6
CC_amd64 := x86_64-linux-gnu-gcc
CC_arm64 := aarch64-linux-gnu-gcc
CC_armv7 := arm-linux-gnueabihf-gcc
CC_armv6 := arm-linux-gnueabi-gcc
CFLAGS_armv6 := -march=armv6 -mfpu=vfp -mfloat-abi=softfp -marm

dist: $(DIST_BINS)

# hubmon-<name>-linux-<target>; go build decides what is out of date
$(DIST_BINS): $(DIST)/hubmon-%: FORCE
	@mkdir -p $(@D)
	GOOS=linux GOARCH=$(GOARCH_$(lastword $(subst -, ,$*))) GOARM=$(GOARM_$(lastword $(subst -, ,$*))) \
	CC=$(CC_$(lastword $(subst -, ,$*))) CGO_CFLAGS='-O2 $(CFLAGS_$(lastword $(subst -, ,$*)))' \
	$(GO) build -trimpath -tags $(STATIC_TAGS) -ldflags '$(STATIC_LDFLAGS)' -o $@ ./$(firstword $(subst -, ,$*))

FORCE:

## deb: Debian packages in $(DIST)/, made by nfpm (deploy/nfpm/): hubmon-agent
## for amd64, arm64 and armhf (with the armv6 binary, which runs on every Pi),
## hubmon-collector for amd64 and arm64; systemd units in deploy/systemd/
# A Debian version starts with a digit: tag v1.2.3-4-gabc -> 1.2.3+4+gabc;
# untagged -> 0.0.0~git<describe>, below any release
DEB_VERSION ?= $(shell v='$(VERSION)'; v=$${v#v}; case "$$v" in ([0-9]*.[0-9]*) echo "$$v";; (*) echo "0.0.0~git$$v";; esac | tr - +)
# package:nfpm-arch:dist-target (nfpm's arm7 is Debian's armhf)
DEB_PACKAGES := agent:amd64:amd64 agent:arm64:arm64 agent:arm7:armv6 collector:amd64:amd64 collector:arm64:arm64

# nfpm expands variables in arch and version but not in contents: the binary's
# path is written into a copy of the config
deb: dist
	@for p in $(DEB_PACKAGES); do \
	  IFS=: read -r name arch target <<< "$$p"; \
	  conf=$(DIST)/.nfpm-$$name-$$arch.yaml; \
	  sed 's|$${BIN}|$(DIST)/hubmon-'$$name-linux-$$target'|' deploy/nfpm/hubmon-$$name.yaml > $$conf && \
	  DEB_VERSION='$(DEB_VERSION)' DEB_ARCH=$$arch $(GO) tool nfpm package -f $$conf -p deb -t $(DIST)/ && \
	  rm -f $$conf || exit 1; \
	done

## run: the collector (embedded broker, speed-test server) and one local agent; Ctrl-C stops both
run: build
	./deploy/dev/run.sh

## test: vet, every test (unit, real Mosquitto, real binaries end to end, the
## pages in headless Chromium, the release binaries under qemu and the Debian
## packages installed) with the race detector, and a short fuzz
# dist first: the cross builds' slow part (SQLite for each target) lands in the
# Go build cache before the timing-sensitive tests run beside deploy's, which
# then only link. HUBMON_REQUIRE_DIST: deploy's tests fail, not skip, without
# the cross compilers, qemu or dpkg. HUBMON_REQUIRE_CHROMIUM: the browser test
# fails without chromium instead of skipping; HUBMON_ARTIFACTS=dir keeps its
# screenshots there.
test: deps vet build dist
	HUBMON_REQUIRE_DIST=1 HUBMON_REQUIRE_CHROMIUM=1 $(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -run '^$$' -fuzz FuzzDecodeMeasurement -fuzztime 300000x -fuzzminimizetime 10s ./agent/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 100000x -fuzzminimizetime 10s ./agent/internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 100000x -fuzzminimizetime 10s ./collector/internal/config/

## bench: Go benchmarks, then the fleet load benchmark
bench: bench-go bench-load

## bench-go: Go benchmarks (outbox, store, ingest, gaps)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

## bench-load: the fleet load benchmark against a real Mosquitto and the real binaries, one JSON line per figure (bench/README.md); LOADFLAGS=-quick for a smoke run
bench-load: build
	$(GO) run ./bench/load -bin $(CURDIR)/bin -repo $(CURDIR) $(LOADFLAGS)

## bench-accuracy: the speed test against iperf3 on tbf-shaped links between network namespaces (root; needs iperf3, jq)
bench-accuracy: build
	BIN=$(CURDIR)/bin ./bench/accuracy/run.sh

## fuzz: a longer fuzz run of the message decoder and the config loaders
# Counts, not durations, here and in test: with a duration, go1.26's fuzz
# coordinator can fail a clean run with "context deadline exceeded" as the time
# runs out (golang/go#75804, fixed in go1.27); it did so in make test on a
# loaded machine.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeMeasurement -fuzztime 3000000x ./agent/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 600000x ./agent/internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 600000x ./collector/internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSites$$' -fuzztime 600000x ./collector/internal/config/

# the tests run a real Mosquitto, promtool, headless Chromium, the cross
# compilers and qemu; say how to get them
deps:
	@command -v mosquitto >/dev/null && command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v chromium >/dev/null && command -v openssl >/dev/null || { \
	  echo "make test needs mosquitto, prometheus, promtool, chromium and openssl: sudo apt-get install -y mosquitto prometheus chromium fonts-dejavu-core openssl"; exit 1; }
	@for c in $(sort $(CC_arm64) $(CC_armv7) $(CC_armv6)) qemu-aarch64-static qemu-arm-static; do command -v $$c >/dev/null || { \
	  echo "make test needs $$c: sudo apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross gcc-arm-linux-gnueabi libc6-dev-armel-cross qemu-user-static"; exit 1; }; done

vet:
	$(GO) vet ./...
	$(GO) vet -tags pprofdebug ./collector/
	@test -z "$$(gofmt -l agent collector deploy bench)" || { echo "gofmt needed:"; gofmt -l agent collector deploy bench; exit 1; }

lint: vet

clean:
	rm -rf bin dist
