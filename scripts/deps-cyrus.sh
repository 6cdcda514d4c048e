#!/usr/bin/env bash
# Prepares what internal/cyrus needs to run Cyrus IMAP 3.6 (Debian 12) in
# tests, as root, without installing the server: cyrus-imapd conflicts with
# dovecot-imapd (which the other tests use) and would pull in a mail
# transfer agent. It installs the shared libraries and tools Cyrus needs,
# downloads the server packages and unpacks them into a cache,
# ${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}/cyrus, which the tests run
# from with LD_LIBRARY_PATH. The dpkg database is not touched by the server
# packages. Idempotent: a complete cache (marker file written last) with its
# libraries installed makes it a quick no-op.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

base=${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}
cache=$base/cyrus
marker=$cache/.imapkit-complete
# The server packages, unpacked into the cache.
server_pkgs=(cyrus-common cyrus-imapd)
# What the binaries the tests run (master, imapd, idled, ctl_cyrusdb) link
# against, beyond what every Debian system has, and the SASL tools and
# plugins: saslpasswd2 (sasl2-bin) writes the users' sasldb, which imapd
# reads through the sasldb auxprop plugin (libsasl2-modules-db). Only
# notifyd (libzephyr4) and cyr_virusscan (libclamav12) need more; the tests
# run neither.
lib_pkgs=(libical3 libxapian30 libpcre3 libicu72 libjansson4 libpq5
	libldap-2.5-0 libsqlite3-0 libxml2 libwrap0 libssl3 libsasl2-2 libkrb5-3
	libcom-err2 libstdc++6 zlib1g
	sasl2-bin libsasl2-modules libsasl2-modules-db)
apt_opts=(-o DPkg::Lock::Timeout=600)

# missing_libs prints the packages of lib_pkgs that are not installed.
missing_libs() {
	local installed p
	# One dpkg-query for all (unknown packages are simply not listed).
	installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${lib_pkgs[@]}" 2>/dev/null || true)"
	for p in "${lib_pkgs[@]}"; do
		case $installed in
		*" $p=installed "*) ;;
		*) echo "$p" ;;
		esac
	done
}

if [ -f "$marker" ] && [ -z "$(missing_libs)" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps-cyrus.sh: run as root (it installs packages and writes $cache)" >&2
	exit 1
fi

mkdir -p "$base"
chmod a+rx "$base"
# One run at a time (CI may start several setups at once).
exec 9>"$base/.cyrus.lock"
flock 9
if [ -f "$marker" ] && [ -z "$(missing_libs)" ]; then
	exit 0
fi

updated=
apt_update() {
	if [ -z "$updated" ]; then
		echo "== apt-get update"
		apt-get "${apt_opts[@]}" update </dev/null
		updated=1
	fi
}
# Package lists may be missing (fresh container) or stale (a security
# update replaced the version they name): update once, then retry.
if ! apt-cache show "${server_pkgs[0]}" >/dev/null 2>&1; then
	apt_update
fi

mapfile -t need < <(missing_libs)
if [ ${#need[@]} -gt 0 ]; then
	echo "== installing ${need[*]}"
	# sasl2-bin ships saslauthd: keep daemons from starting while
	# installing, unless someone else already decides that.
	policy=/usr/sbin/policy-rc.d
	made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# imapkit deps-cyrus.sh: no daemons during install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	remove_policy() {
		if [ -n "$made_policy" ] && grep -q 'imapkit deps-cyrus.sh' "$policy" 2>/dev/null; then
			rm -f "$policy"
		fi
	}
	trap remove_policy EXIT
	install_libs() {
		apt-get "${apt_opts[@]}" install -y --no-install-recommends "${need[@]}" </dev/null
	}
	if ! install_libs; then
		updated=
		apt_update
		install_libs
	fi
	remove_policy
	trap - EXIT
fi
if [ -f "$marker" ]; then
	exit 0 # only libraries were missing
fi

echo "== downloading and unpacking ${server_pkgs[*]} into $cache"
work=$(mktemp -d "$base/.cyrus-tmp.XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir "$work/debs" "$work/root"
# apt-get download runs its fetcher as _apt, which must write there.
if id _apt >/dev/null 2>&1; then
	chown _apt "$work/debs"
fi
download() {
	(cd "$work/debs" && apt-get "${apt_opts[@]}" download "${server_pkgs[@]}" </dev/null)
}
if ! download; then
	apt_update
	download
fi
for deb in "$work"/debs/*.deb; do
	dpkg-deb -x "$deb" "$work/root"
done
# The package version, for people looking at the cache (the tests ask
# master -V).
dpkg-deb -f "$work"/debs/cyrus-imapd_*.deb Version >"$work/root/.imapkit-version"

# Cyrus drops privileges to nobody: every directory up to the binaries
# must be traversable.
chmod 755 "$work/root"
libdir=$work/root/usr/lib/x86_64-linux-gnu
for b in master imapd idled ctl_cyrusdb; do
	if missing=$(LD_LIBRARY_PATH=$libdir ldd "$work/root/usr/lib/cyrus/bin/$b" | grep 'not found'); then
		echo "deps-cyrus.sh: $b still lacks libraries:" >&2
		echo "$missing" >&2
		exit 1
	fi
done
command -v saslpasswd2 >/dev/null || { echo "deps-cyrus.sh: saslpasswd2 missing" >&2; exit 1; }

rm -rf "$cache"
mv "$work/root" "$cache"
if ! runuser -u nobody -- test -x "$cache/usr/lib/cyrus/bin/imapd"; then
	echo "deps-cyrus.sh: user nobody cannot reach $cache (a parent directory is not traversable); set IMAPKIT_INTEROP_DIR elsewhere" >&2
	exit 1
fi
date -u +%FT%TZ >"$marker"
echo "== Cyrus $(cat "$cache/.imapkit-version") ready in $cache"
