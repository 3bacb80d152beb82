#!/usr/bin/env bash
# The scaled-out setup on one machine, to try it: a throwaway PostgreSQL cluster, N Signalboard servers
# sharing it (the first also runs the demo producer), and nginx in front of them on
# http://127.0.0.1:3000. Ctrl-C stops everything and deletes the cluster.
#   deploy/scaled.sh [SERVERS]      (default 2; PORT=… moves the whole setup: nginx on PORT, servers after)
set -euo pipefail
cd "$(dirname "$0")/.."
servers=${1:-2} port=${PORT:-3000}
scripts/setup.sh --release --scale
export PATH="$HOME/.cargo/bin:$PWD/target/tools/node_modules/.bin:$PATH"
cargo leptos build --release

# Under /tmp: the cluster runs as the `postgres` user, who may not reach into the checkout.
dir=$(mktemp -d /tmp/signalboard-scaled.XXXXXX)
chmod 711 "$dir"
pids=()
stop() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  scripts/postgres.sh stop "$dir/postgres"
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

cluster=$(scripts/postgres.sh start "$dir/postgres" $((port + 5432)))
psql -q "$cluster" -c "CREATE DATABASE signalboard"
export DATABASE_URL=${cluster%/*}/signalboard

backends=()
for i in $(seq 1 "$servers"); do
  demo=$([ "$i" = 1 ] && echo --demo || true)
  target/release/signalboard serve --addr "127.0.0.1:$((port + i))" $demo &
  pids+=($!)
  backends+=("127.0.0.1:$((port + i))")
done
deploy/nginx.sh "$dir/nginx" "$port" "${backends[@]}" &
pids+=($!)
echo "==> $servers servers on PostgreSQL ($DATABASE_URL) behind nginx: http://127.0.0.1:$port"
wait -n "${pids[@]}"
