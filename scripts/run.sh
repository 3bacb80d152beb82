#!/usr/bin/env bash
# Installs what is missing, builds in release mode, and starts the dashboard on http://127.0.0.1:3000
# with the SQLite database in ./data and the demo producer. Extra arguments go to `signalboard serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --release
export PATH="$HOME/.cargo/bin:$PWD/target/tools/node_modules/.bin:$PATH"
cargo leptos build --release
exec target/release/signalboard serve --demo "$@"
