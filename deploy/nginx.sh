#!/usr/bin/env bash
# nginx (Debian's) in front of several Signalboard servers, run in the foreground from a folder of its
# own: no system service, no root-owned paths. HTTP requests go to the server with the fewest open
# connections; WebSocket upgrades (`/api/live`) pass through and stay open.
#   deploy/nginx.sh DIR PORT BACKEND...     e.g. deploy/nginx.sh /tmp/lb 3000 127.0.0.1:3001 127.0.0.1:3002
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 DIR PORT BACKEND..." >&2
  exit 2
fi
dir=$(realpath -m "$1") port=$2
shift 2
mkdir -p "$dir/tmp"
backends=""
for backend in "$@"; do backends+="    server $backend max_fails=1 fail_timeout=2s;"$'\n'; done

cat > "$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }

http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  # The servers refuse bodies past their own limit (max-body-bytes, 8 MiB by default) with a
  # JSON error: let them, rather than nginx answering in HTML first.
  client_max_body_size 64m;

  upstream signalboard {
    least_conn;
$backends    keepalive 64;
  }

  map \$http_upgrade \$connection_upgrade {
    default upgrade;
    ''      '';
  }

  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://signalboard;
      proxy_http_version 1.1;
      # The servers compare a browser's Origin with Host: keep the address the browser used.
      proxy_set_header Host \$http_host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      # Request bodies go to the server as they arrive, answers come back as they are made.
      proxy_request_buffering off;
      proxy_buffering off;
      # A live socket is quiet when no point is posted: keep it for an hour of silence.
      proxy_read_timeout 1h;
      # A server that is down (refused, or no answer to connect) is skipped; a request it already
      # received is never sent to another, so no write is applied twice.
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
    }
  }
}
CONF
exec "$(command -v nginx || echo /usr/sbin/nginx)" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
