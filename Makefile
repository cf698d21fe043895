# rswebhooks — `make help` lists the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
# The commit's time, not the clock's: the same commit builds the same binary.
DATE    ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# The Go in /usr/local/go/bin when it is there (as .ci/run uses), else the one on PATH.
GO      ?= $(shell test -x /usr/local/go/bin/go && echo /usr/local/go/bin/go || echo go)

.PHONY: help build dist test lint bench demo screenshots

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/rswebhooks with the version stamped in
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/rswebhooks ./cmd/rswebhooks

dist: ## release artifacts in dist/: Windows zip, Linux tar.gz and .deb, SBOM, SHA256SUMS (version from the git tag, else a snapshot)
	$(GO) run ./internal/dist/cmd/mkdist -out dist

test: ## run every test (race detector on), including browser, promtool and receiver checks
	bash .ci/test

lint: ## gofmt, go vet and golangci-lint (.golangci.yml; pinned in tools/lint/go.mod)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) tool -modfile=tools/lint/go.mod golangci-lint run ./...

bench: ## run the benchmarks (Go benchmarks and the scripts under bench/)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bash bench/proxy/run.sh

demo: build ## run the demo: simulator, proxy, receiver, a webhook and a few calls; serves until Ctrl-C
	./bin/rswebhooks demo

screenshots: ## refresh docs/screenshots/ from the browser tests (tests write them to a temp dir otherwise)
	RSWEBHOOKS_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestWebhooksPage|TestLongValuesFitTheGrid|TestRetryingDeliveryByKeyboard|TestEventsViewAndReplay' ./e2e/browser/
