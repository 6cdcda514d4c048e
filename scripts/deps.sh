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
# Every Dovecot imap process of every test server runs as the dovecot user,
# and each idling session takes an inotify instance: past the default 128
# per user, Dovecot stops pushing at once and polls (30 s). Tests run
# packages in parallel, so raise the limit when we may.
if [ "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 1024)" -lt 1024 ] && [ "$(id -u)" = 0 ]; then
	sysctl -qw fs.inotify.max_user_instances=1024 || echo "note: could not raise fs.inotify.max_user_instances" >&2
fi
go version
dovecot --version
bash scripts/deps-courier.sh
bash scripts/deps-cyrus.sh
bash scripts/deps-mox.sh
