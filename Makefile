# make test: every test, on a fresh Debian machine too (installs Dovecot, Cyrus, Courier and mox when
# missing; needs root for that). .ci/run calls it.
# make bench: regenerate docs/benchmarks.md.  make demo: the main job, zero setup.

.PHONY: test deps check race benchsmoke fuzzsmoke bench demo

test: deps check race benchsmoke fuzzsmoke

deps:
	@bash scripts/deps.sh

check:
	@echo "== gofmt"; out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l . lists:"; echo "$$out"; exit 1; fi
	@echo "== go vet"; go vet ./...

# One package at a time: the lease tests run on short TTLs, and sharing two
# cores with another package's tests under the race detector makes renewals
# miss them. The multi-node serve test (three NATS servers and three serve
# nodes, child processes, and a Dovecot with 1,000 accounts) runs after, on
# its own and without -race, which would only slow its NATS taps.
race:
	@echo "== go test -race"
	go test -race -count=1 -p 1 ./...
	@echo "== go test -run TestServeCluster (multi-node serve, without -race)"
	go test -count=1 -run '^TestServeCluster$$' -v ./cmd/imapkit

benchsmoke:
	@echo "== benchmarks (smoke, one iteration each)"
	go test -run '^$$' -bench . -benchtime 1x ./...
	@echo "== benchmark suite (smoke: go run ./bench -quick, report to a temporary directory)"
	@d="$$(mktemp -d)"; go run ./bench -quick -strict -out "$$d/benchmarks.md" && rm -rf "$$d"

fuzzsmoke:
	@echo "== fuzz targets (smoke)"
	@bash scripts/fuzzsmoke.sh

bench:
	go run ./bench

demo:
	go run ./cmd/imapkit demo
