#!/usr/bin/env bash
# Runs every fuzz target briefly (FUZZTIME, default 5s), so none can rot;
# the long runs are recorded in docs/robustness.md.
set -euo pipefail
t="${FUZZTIME:-5s}"
run() { echo "-- $1 ($2)"; go test -run '^$' -fuzz "^$1\$" -fuzztime "$t" "$2"; }
for target in FuzzSession FuzzUntaggedLine FuzzParseFetch FuzzParse FuzzInternaldate FuzzQuote FuzzDecodeMailbox; do
	run "$target" .
done
run FuzzReaderSplit ./internal/wire
run FuzzArgs ./internal/wire
