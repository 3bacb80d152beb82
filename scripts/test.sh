#!/usr/bin/env bash
# Every test: formatting and lints, unit and integration tests (real SQLite files, a real PostgreSQL
# cluster started here, real HTTP), then the dashboard in a real browser (Playwright on Debian's
# Chromium). `make test` and `.ci/run` run this.
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

echo "==> a throwaway PostgreSQL cluster for the tests"
# Under /tmp: the cluster runs as the `postgres` user, who may not reach into the checkout.
pg_dir=$(mktemp -d /tmp/signalboard-test-postgres.XXXXXX)
trap 'scripts/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
SIGNALBOARD_TEST_POSTGRES=$(scripts/postgres.sh start "$pg_dir" "${SIGNALBOARD_TEST_POSTGRES_PORT:-54329}")
export SIGNALBOARD_TEST_POSTGRES

echo "==> unit and integration tests"
cargo test --features ssr

echo "==> browser tests"
cargo leptos build
(cd end2end && npx playwright test)
