#!/usr/bin/env bash
# Installs what the tests need when it is missing: Dovecot (the real server
# the tests start on loopback) and a C compiler (the race detector needs cgo).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"
need=()
if ! command -v dovecot >/dev/null || ! command -v doveadm >/dev/null ||
	{ [ ! -x /usr/lib/dovecot/imap ] && [ ! -x /usr/libexec/dovecot/imap ]; }; then
	need+=(dovecot-imapd)
fi
command -v gcc >/dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
	echo "== installing ${need[*]}"
	if [ "$(id -u)" != 0 ]; then
		echo "run as root, or install: apt-get install ${need[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update </dev/null
	apt-get -o DPkg::Lock::Timeout=600 install -y "${need[@]}" </dev/null
fi
go version
dovecot --version
