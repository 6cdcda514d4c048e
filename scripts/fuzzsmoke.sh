#!/usr/bin/env bash
# Runs every fuzz target briefly, so none can rot; the long runs are
# recorded in docs/robustness.md. FUZZTIME is an execution count by default:
# a time budget can end with a spurious "context deadline exceeded" when it
# expires while a worker is in the middle of an input.
set -euo pipefail
t="${FUZZTIME:-20000x}"
run() { echo "-- $1 ($2)"; go test -run '^$' -fuzz "^$1\$" -fuzztime "$t" "$2"; }
for target in FuzzSession FuzzFetchEach FuzzUntaggedLine FuzzParseFetch FuzzParse FuzzInternaldate FuzzQuote FuzzDecodeMailbox; do
	run "$target" .
done
run FuzzReaderSplit ./internal/wire
run FuzzArgs ./internal/wire
