#!/usr/bin/env bash
# Prepares what internal/courier needs to run Courier-IMAP (Debian 12's
# 5.0.13) in tests. Run as root; needs no stdin (CI runs it with CI=true).
#
#   - Installs with apt the libraries and helpers Courier needs that do not
#     conflict with dovecot-imapd (which other tests use; this script never
#     removes or reconfigures it): the authentication daemon and its userdb
#     module, gamin (IDLE push), libcourier-unicode, libidn, ...
#   - Downloads the server packages (courier-base, courier-imap; the latter
#     conflicts with dovecot-imapd) and unpacks them with dpkg-deb -x into
#     the cache ${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}/courier, which
#     the courier user and uid 65534 can traverse. The dpkg database does
#     not learn about them.
#
# With the libraries installed and the cache complete (its marker file is
# written last) it is a fast no-op. Safe to rerun after an interruption.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

root="${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}"
cache="$root/courier"
marker="$cache/.complete"

# Installed normally. courier-authlib creates the courier system user;
# courier-authdaemon ships authdaemond, whose init script must not start it
# (see policy-rc.d below).
libs=(courier-authlib courier-authdaemon courier-authlib-userdb
	libcourier-unicode4 libgamin0 gamin libidn12 libltdl7 libgdbm6
	libpcre3 libgnutls30 openssl)
# Unpacked into the cache only.
servers=(courier-base courier-imap)

# One dpkg-query for all: the warm path stays fast.
installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${libs[@]}" 2>/dev/null || true)"
missing=()
for p in "${libs[@]}"; do
	case "$installed" in
	*" $p=installed "*) ;;
	*) missing+=("$p") ;;
	esac
done
if [ ${#missing[@]} -eq 0 ] && [ -f "$marker" ]; then
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps-courier.sh: run as root (to install ${missing[*]:-nothing more} and fill $cache)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -o DPkg::Lock::Timeout=600)

policy=/usr/sbin/policy-rc.d
made_policy=
tmp=
cleanup() {
	if [ -n "$made_policy" ]; then rm -f "$policy"; fi
	if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	# Keep the packages' scripts from starting daemons (authdaemond).
	if [ ! -e "$policy" ]; then
		made_policy=1
		printf '#!/bin/sh\n# Written by deps-courier.sh for the duration of an install.\nexit 101\n' >"$policy"
		chmod 755 "$policy"
	fi
	if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null; then
		"${apt[@]}" update </dev/null
		"${apt[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null
	fi
	if [ -n "$made_policy" ]; then
		rm -f "$policy"
		made_policy=
	fi
fi

mkdir -p "$root"
chmod 755 "$root"
# One filler at a time (CI may run this script twice at once); the second
# finds the marker once it holds the lock.
exec 9>"$root/.courier.lock"
flock 9
if [ ! -f "$marker" ]; then
	echo "== unpacking ${servers[*]} into $cache"
	rm -rf "$root"/.courier-tmp-* # left by a killed run
	tmp="$(mktemp -d "$root/.courier-tmp-XXXXXX")"
	mkdir "$tmp/debs" "$tmp/root"
	# As root: the _apt user cannot write into a fresh mktemp directory.
	download=("${apt[@]}" -o APT::Sandbox::User=root download "${servers[@]}")
	if ! (cd "$tmp/debs" && "${download[@]}" </dev/null); then
		"${apt[@]}" update </dev/null
		(cd "$tmp/debs" && "${download[@]}" </dev/null)
	fi
	for deb in "$tmp"/debs/*.deb; do
		dpkg-deb -x "$deb" "$tmp/root"
		dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$tmp/root/.versions"
	done
	chmod 755 "$tmp/root"
	rm -rf "$cache"
	mv "$tmp/root" "$cache"
	# Courier runs as the courier user and as uid 65534: check they reach
	# the binaries (a cache under /root, mode 700, fails only at login).
	for u in courier nobody; do
		if ! setpriv --reuid="$u" --regid=nogroup --clear-groups test -x "$cache/usr/bin/imapd"; then
			echo "deps-courier.sh: user $u cannot reach $cache/usr/bin/imapd; choose an IMAPKIT_INTEROP_DIR that all users can traverse" >&2
			exit 1
		fi
	done
	"$cache/usr/bin/imapd" --version </dev/null
	date -u +%FT%TZ >"$marker.tmp"
	mv "$marker.tmp" "$marker"
fi
echo "courier: $(paste -sd ',' "$cache/.versions" | sed 's/,/, /g') in $cache"
