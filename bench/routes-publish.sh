#!/usr/bin/env bash
# What publishing a route change costs (bench/routes_publish.c): the
# control plane's build of the table from SQLite, its digest, and the
# gateway's publish (index + swap), for several numbers of deployments.
# Usage: bench/routes-publish.sh [RUNS] [N...]   (default: 50 runs; 100 1000 5000)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-50}
shift || true
sizes=${*:-100 1000 5000}
make -s build/aimaas
PKGS="libevent_core libevent_pthreads jansson libsodium sqlite3"
objs=$(find build/rel/src -name '*.o' ! -path 'build/rel/src/main.o')
cc -std=c11 -D_GNU_SOURCE -O2 -Isrc $(pkg-config --cflags $PKGS) -o build/routes_publish bench/routes_publish.c $objs \
	$(pkg-config --libs $PKGS) -ldl -lpthread -lm
for n in $sizes; do build/routes_publish "$n" "$runs"; done
