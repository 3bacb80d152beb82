#!/usr/bin/env bash
# Installs what building (and, with --test, testing) Signalboard needs, skipping whatever is already
# there, so it is cheap to run before every build. Versions and sources are the ones that work here; the
# comment by each says why. Usage: scripts/setup.sh [--release] [--test] [--scale]
# (--scale: PostgreSQL and nginx, for deploy/scaled.sh; --test includes it.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/target/tools/node_modules/.bin:$PATH"

CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs a newer rustc than 1.95
BINARYEN_VERSION=132.0.0      # npm's wasm-opt; Debian's (108) silently breaks hydration
release=false test=false scale=false
for arg in "$@"; do
  case "$arg" in
    --release) release=true ;;
    --test) test=true scale=true ;;
    --scale) scale=true ;;
    *) echo "usage: $0 [--release] [--test] [--scale]" >&2; exit 2 ;;
  esac
done

step() { echo "==> $*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  step "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 20 minutes, once)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

# The CLI must match the wasm-bindgen crate in Cargo.lock exactly. Without --locked: its lock file wants a
# webpki-roots version the registry no longer serves.
wasm_bindgen_version=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q "$wasm_bindgen_version"; then
  step "installing wasm-bindgen-cli $wasm_bindgen_version (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version"
fi

if $release && ! wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_VERSION%%.*}"; then
  step "installing wasm-opt from npm's binaryen $BINARYEN_VERSION"
  npm install --silent --no-save --no-package-lock --prefix target/tools "binaryen@$BINARYEN_VERSION"
fi

if $scale; then
  missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing Debian's ${missing[*]} (several servers on one PostgreSQL, behind nginx)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi

if $test; then
  if ! command -v chromium >/dev/null; then
    step "installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
  if ! command -v prometheus >/dev/null || ! command -v prometheus-node-exporter >/dev/null; then
    step "installing Debian's prometheus and node exporter (the remote-write test scrapes one with the other)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-node-exporter
  fi
  if [ ! -d end2end/node_modules/@playwright/test ]; then
    step "installing Playwright (no browser download: the tests use /usr/bin/chromium)"
    (cd end2end && npm ci --silent)
  fi
fi
