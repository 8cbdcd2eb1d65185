#!/usr/bin/env bash
# Serving the console's files: aimaas against nginx on the same build/ui
# folder, in one run. nginx: one worker, sendfile, gzip_static (the .gz the
# build writes), open_file_cache; aimaas: its main loop (the console is served
# there). wrk -t1 -c16 for each of: an app route (index.html), the main
# bundle with gzip, the same bundle without. Prints req/s and aimaas/nginx.
# Usage: bench/console.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-10}
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
command -v wrk >/dev/null || $sudo apt-get install -y -qq wrk >/dev/null
[ -x /usr/sbin/nginx ] || $sudo apt-get install -y -qq nginx-light >/dev/null
make -s build/aimaas ui
ui=$(realpath build/ui)
bundle=$(cd "$ui" && ls assets/index-*.js | head -1)
tmp=$(mktemp -d)
port=18600
trap 'kill $(cat $tmp/nginx.pid 2>/dev/null) 2>/dev/null || true; kill $apid 2>/dev/null || true; sleep 0.3; rm -rf $tmp' EXIT
AIMAAS_ADMIN_PASSWORD=bench-password build/aimaas serve --listen 127.0.0.1:$port --data-dir $tmp/data --ui-dir "$ui" \
	--log-level warn 2>$tmp/aimaas.log &
apid=$!
until curl -sf -o /dev/null http://127.0.0.1:$port/healthz; do sleep 0.05; done
cat >$tmp/nginx.conf <<NGX
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  open_file_cache max=1000;
  keepalive_requests 1000000;
  types { text/html html; text/javascript js; text/css css; }
  server {
    listen 127.0.0.1:$((port + 1));
    root $ui;
    gzip_static on;
    location / { try_files \$uri /index.html; }
  }
}
NGX
/usr/sbin/nginx -c $tmp/nginx.conf -p $tmp
sleep 0.3
rate() { # url, extra header
	wrk -t1 -c16 -d"${secs}s" ${2:+-H "$2"} "$1" 2>/dev/null | awk '/Requests\/sec/ {print $2}'
}
printf '%-34s %12s %12s %8s\n' "request" "nginx req/s" "aimaas req/s" "ratio"
for case in "/deployments|" "/$bundle|Accept-Encoding: gzip" "/$bundle|"; do
	path=${case%%|*}; hdr=${case#*|}
	n=$(rate "http://127.0.0.1:$((port + 1))$path" "$hdr")
	a=$(rate "http://127.0.0.1:$port$path" "$hdr")
	label="$path${hdr:+ (gzip)}"
	printf '%-34s %12.0f %12.0f %8.2f\n' "${label:0:34}" "$n" "$a" "$(echo "$a / $n" | bc -l)"
done
