#!/usr/bin/env bash
# The dashboard's performance figures of the README: builds in release mode (as `make run` does), then
# runs the browser performance tests against that build with a ten-minute memory soak, and prints the
# WebAssembly bundle's size. The ingest and history figures come from `signalboard bench` (README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --release --test
export PATH="$HOME/.cargo/bin:$PWD/target/tools/node_modules/.bin:$PATH"
cargo leptos build --release
wasm=target/site/pkg/signalboard.wasm
echo "WebAssembly: $(stat -c %s "$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) bytes gzipped"
bin="$PWD/target/release/signalboard"
(cd end2end && SIGNALBOARD_BIN="$bin" PERF_SOAK_SECONDS="${PERF_SOAK_SECONDS:-600}" \
  npx playwright test tests/perf.spec.ts)
