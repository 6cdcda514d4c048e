#!/usr/bin/env bash
# Runs every fuzz target briefly, so they cannot rot; long runs are recorded
# in docs/robustness.md.
set -euo pipefail
t="${FUZZTIME:-5s}"
run() { echo "-- $1 ($2)"; go test -run '^$' -fuzz "^$1\$" -fuzztime "$t" "$2"; }
run FuzzReaderSplit ./internal/wire
run FuzzArgs ./internal/wire
run FuzzSession .
