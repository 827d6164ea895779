# Plex: the two commands a newcomer needs are `make run` and `make test`.
# This file only calls go and friends; see README.md.

GO          ?= go
BIN         := bin/plex
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 10s

.PHONY: run test test-go test-java build lint bench fuzz sdk-java soak bench-scale cluster cluster-stop clean

## run: everything in one process (plex dev): NATS, auth, an edge, the API
run:
	$(GO) run ./cmd/plex dev

## test: every Go test with the race detector, then the Java SDK's tests when javac is present
test: test-go test-java

test-go:
	$(GO) test -race ./...

test-java: build
	@if command -v javac >/dev/null 2>&1; then \
		$(MAKE) -C sdk/java test PLEX_BIN=$(abspath $(BIN)) REQUIRE_INTEGRATION=true; \
	else \
		echo "test-java: javac not found, Java SDK tests not run (.ci/run installs it)"; \
	fi

## build: bin/plex
build:
	$(GO) build -o $(BIN) ./cmd/plex

## lint: go vet and staticcheck
lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: the Go micro-benchmarks (codec, push path); see BENCHMARKS.md for plex bench
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./wire/ ./edge/

## fuzz: run each fuzz target for FUZZTIME on top of the committed corpus
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./wire/
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./wire/

## sdk-java: build sdk/java/build/plex-client.jar
sdk-java:
	$(MAKE) -C sdk/java jar

clean:
	rm -rf bin sdk/java/build

## bench-scale: 100,000 connections over several edges, pushes at 10,000/s (see scripts/bench-scale.sh)
bench-scale: build
	scripts/bench-scale.sh

## soak: a few minutes of churn, pushes and a NATS restart (not part of make test)
soak:
	$(GO) test -tags soak -run TestSoak -timeout 20m -v ./test/soak/

## cluster: 3 NATS nodes, 3 edges, auth and the API in the background (logs in .cluster/)
cluster: build
	scripts/cluster.sh start

## cluster-stop: stop what make cluster started
cluster-stop:
	scripts/cluster.sh stop
