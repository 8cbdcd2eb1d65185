#!/usr/bin/env bash
# Builds the Debian package from a staged tree (`make deb` stages it with
# `make install-files DESTDIR=ROOT PREFIX=/usr`): strips the binaries, writes
# DEBIAN/ (control with Depends from dpkg-shlibdeps, conffiles, md5sums,
# the maintainer scripts of deploy/debian) and runs dpkg-deb under fakeroot.
# usage: scripts/deb.sh ROOT VERSION OUTDIR  (prints the .deb's path)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(realpath "$1") version=$2 outdir=$3
arch=$(dpkg --print-architecture)
strip --strip-unneeded "$root/usr/bin/aimaas" "$root/usr/bin/aimaas-sim"
mkdir -p "$root/DEBIAN"

# the libraries the binaries link, as packages with their minimal versions
depends=""
if command -v dpkg-shlibdeps >/dev/null; then
	tmp=$(mktemp -d)
	mkdir "$tmp/debian"
	printf 'Source: aimaas\n\nPackage: aimaas\nArchitecture: any\n' >"$tmp/debian/control"
	depends=$(cd "$tmp" && dpkg-shlibdeps -O -e "$root/usr/bin/aimaas" -e "$root/usr/bin/aimaas-sim" 2>/dev/null |
		sed -n 's/^shlibs:Depends=//p')
	rm -rf "$tmp"
fi
if [ -z "$depends" ]; then # Debian 12 / Ubuntu 22.04's names, without dpkg-dev
	depends="libc6 (>= 2.34), libcurl4, libevent-core-2.1-7, libevent-pthreads-2.1-7, libjansson4, libsodium23, libsqlite3-0, libssl3, libyaml-0-2"
fi
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
	deploy/debian/control.in >"$root/DEBIAN/control"
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs -d '\n' md5sum) >"$root/DEBIAN/md5sums"
for s in postinst prerm postrm; do
	install -m 0755 "deploy/debian/$s" "$root/DEBIAN/$s"
done
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
out="$outdir/aimaas_${version}_${arch}.deb"
fakeroot dpkg-deb -Zxz --build "$root" "$out" >/dev/null
echo "$out"
