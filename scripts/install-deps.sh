#!/usr/bin/env bash
# Installs what aimaas needs to build and test, when it is missing, on
# Debian/Ubuntu. Idempotent and quick when everything is there.
set -eu
cd "$(dirname "$0")/.."
# libcurl and libyaml: the Kubernetes client (HTTPS to the API server, kubeconfig files);
# liburing-dev: the gateway workers batch their sockets' reads and writes (am_sock_batch);
# libssl-dev (libcrypto): SHA-256 of downloads at the CPU's SHA instructions' speed;
# openssl: the fake kube-apiserver makes its throwaway certificates with it;
# jq: the README's examples (tests/integration/readme.test.mjs runs them);
# sqlite3: the kill test reads the database (PRAGMA integrity_check) beside aimaas;
# chromium and a CJK font: the console's browser tests (playwright-core drives
# Debian's chromium; the screenshots show the Chinese pages legibly)
pkgs=(build-essential pkg-config libevent-dev libjansson-dev libsodium-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev libyaml-dev liburing-dev sqlite3 curl jq openssl chromium fonts-wqy-microhei)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from another repository (NodeSource ships npm inside its
# nodejs package): ask Debian only for what is really absent.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
	echo "install-deps: installing ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Node packages used by the tests (the openai client, playwright-core).
# (again when the lock file changed since the last install)
if [ -f tests/package.json ] && { [ ! -d tests/node_modules ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; }; then
	echo "install-deps: npm ci in tests/"
	(cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi
exit 0
