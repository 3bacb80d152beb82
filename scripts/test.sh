#!/usr/bin/env bash
# Every test: formatting and lints, unit and integration tests (real SQLite files, real HTTP), then the
# dashboard in a real browser (Playwright on Debian's Chromium). `make test` and `.ci/run` run this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
# A clean checkout compiles everything once: incremental state would only cost time and disk there.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> clippy (ssr, hydrate)"
cargo clippy --all-targets --features ssr -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --features hydrate -- -D warnings

echo "==> unit and integration tests"
cargo test --features ssr

echo "==> browser tests"
cargo leptos build
(cd end2end && npx playwright test)
