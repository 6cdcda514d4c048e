#!/usr/bin/env bash
# Builds the mox mail server (github.com/mjl-/mox), pinned below, for the
# tests of internal/mox, into ${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}/mox/mox.
# mox is not a dependency of this module: it is built with the installed Go
# from a throwaway module in a temporary directory. A second run is a fast
# no-op when the binary there already reports the pinned version.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
# The go command keeps its caches under HOME, which a bare CI step may lack.
if [ -z "${HOME:-}" ]; then
	HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"
	export HOME="${HOME:-/root}"
fi
version=v0.0.15
dir="${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}/mox"
bin="$dir/mox"
marker="$dir/VERSION"

# binversion prints the version a mox binary reports, without the suffix
# naming the Go toolchain ("v0.0.15-go1.26.8" -> "v0.0.15").
binversion() {
	local v
	v="$("$1" version 2>/dev/null | head -n1)" || return 1
	echo "${v%%-go*}"
}
# up_to_date: the marker names the pinned version and the binary agrees.
up_to_date() {
	[ -x "$bin" ] && [ "$(cat "$marker" 2>/dev/null)" = "$version" ] &&
		[ "$(binversion "$bin")" = "$version" ]
}
if up_to_date; then
	echo "mox $version: $bin"
	exit 0
fi

mkdir -p "$dir"
# Two runs at once (parallel CI jobs on one machine) build once.
exec 9>"$dir/.lock"
flock 9
if up_to_date; then
	echo "mox $version: $bin"
	exit 0
fi

echo "== building mox $version into $bin"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/imapkit-moxbuild-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# GOTOOLCHAIN=local: build with the installed Go, never fetch another one.
# GOFLAGS=-mod=mod: let the go command record the module sums it fetches.
export GOTOOLCHAIN=local GOFLAGS=-mod=mod GO111MODULE=on CGO_ENABLED=0
go mod init imapkit.invalid/moxbuild
# An explicit version: the module proxy refuses @latest for mox.
go get "github.com/mjl-/mox@$version" </dev/null
go build -trimpath -o "$bin.new" github.com/mjl-/mox </dev/null
got="$(binversion "$bin.new")"
if [ "$got" != "$version" ]; then
	echo "deps-mox.sh: built mox reports version $got, want $version" >&2
	rm -f "$bin.new"
	exit 1
fi
mv -f "$bin.new" "$bin"
echo "$version" >"$marker"
echo "mox $version: $bin"
