#!/usr/bin/env bash
# Installs the Debian package into a fresh Debian 12 root (debootstrap,
# minbase) the way an administrator would (`apt-get install ./aimaas_*.deb`,
# which pulls the declared Depends from the mirror), then checks what the
# postinst made (the aimaas user, /var/lib/aimaas 0700, the conffiles),
# starts the installed binary as that user inside the root and asks it for
# /healthz and the console, then purges the package and checks that the data
# stayed. Needs root and a Debian mirror; not part of `make test` (minutes,
# network). The root is cached in build/debootstrap-bookworm.tgz.
# usage: sudo scripts/check-deb-install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /tmp/aimaas-debroot.XXXXXX)
root=$work/root
cleanup() {
	[ -n "${srv:-}" ] && kill "$srv" 2>/dev/null || true
	for m in proc dev; do umount -l "$root/$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== $*"; }

step "package"
make --no-print-directory all >/dev/null
make --no-print-directory deb-package DEB_OUT="$work" >/dev/null
deb=$(ls "$work"/aimaas_*.deb)
echo "$deb ($(stat -c %s "$deb") bytes)"

step "a fresh Debian 12 root"
cache=build/debootstrap-bookworm.tgz
mkdir -p "$root"
if [ -f "$cache" ]; then
	tar -xzf "$cache" -C "$root"
else
	debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log"; exit 1; }
	tar -czf "$cache" -C "$root" .
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"

step "apt-get install ./$(basename "$deb")"
cp "$deb" "$root/tmp/"
chroot "$root" apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "/tmp/$(basename "$deb")" >"$work/apt.log" 2>&1 ||
	{ tail -30 "$work/apt.log"; exit 1; }
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
check "the aimaas user, no login shell" '[ "$(chroot "$root" getent passwd aimaas | cut -d: -f7)" = /usr/sbin/nologin ] || chroot "$root" getent passwd aimaas | grep -q ":/bin/false$"'
check "/var/lib/aimaas 0700, owned by aimaas" '[ "$(chroot "$root" stat -c "%a %U" /var/lib/aimaas)" = "700 aimaas" ]'
check "/etc/aimaas/aimaas.conf and aimaas.env (0600)" '[ -f "$root/etc/aimaas/aimaas.conf" ] && [ "$(stat -c %a "$root/etc/aimaas/aimaas.env")" = 600 ]'
check "the unit in /lib/systemd/system" '[ -f "$root/lib/systemd/system/aimaas.service" ]'
check "the console in /usr/share/aimaas/ui" '[ -f "$root/usr/share/aimaas/ui/index.html" ]'

step "start it as the service would (its user, its config file)"
port=$((20000 + RANDOM % 20000))
chroot "$root" setpriv --reuid=aimaas --regid=aimaas --init-groups --inh-caps=-all \
	/usr/bin/aimaas serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
srv=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
check "/healthz answers" 'curl -sf "http://127.0.0.1:$port/healthz" >/dev/null'
check "the console is served from /usr/share/aimaas/ui" 'curl -sf "http://127.0.0.1:$port/" | grep -q "<div id=\"app\""'
check "its database in /var/lib/aimaas, 0600" '[ "$(stat -c %a "$root/var/lib/aimaas/aimaas.db")" = 600 ]'
kill "$srv"; wait "$srv" 2>/dev/null || true; srv=

step "purge"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq aimaas >"$work/purge.log" 2>&1 ||
	{ tail -20 "$work/purge.log"; exit 1; }
check "the binaries are gone" '[ ! -e "$root/usr/bin/aimaas" ]'
check "the data stays (models, database, keys)" '[ -f "$root/var/lib/aimaas/aimaas.db" ]'
[ $fail = 0 ] && echo "all good" || { echo "see $work"; trap - EXIT; exit 1; }
