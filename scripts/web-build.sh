#!/usr/bin/env bash
# Builds the browser client into web/dist (index.html, assets/): cargo for wasm32 (profile
# `web`), the wasm-bindgen CLI at exactly the version in Cargo.lock, and wasm-opt from the npm
# package binaryen. Installs what is missing (rustup target, the CLI into
# ~/.cache/videocall-tools, npm packages into web/node_modules); nothing else is downloaded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="${VIDEOCALL_TOOLS_DIR:-$HOME/.cache/videocall-tools}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
dist="$root/web/dist"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")
[ -n "$version" ] || { echo "wasm-bindgen is not in Cargo.lock" >&2; exit 1; }
bindgen="$tools/wasm-bindgen-$version/bin/wasm-bindgen"
if [ ! -x "$bindgen" ]; then
  # Not --locked: its lock names a webpki-roots release the registry no longer offers.
  cargo install --quiet wasm-bindgen-cli --version "$version" --root "$tools/wasm-bindgen-$version"
fi
# (oidc-provider: the control plane's sign-in tests run it with Node.js.)
if [ ! -x "$root/web/node_modules/.bin/wasm-opt" ] || [ ! -d "$root/web/node_modules/oidc-provider" ]; then
  (cd "$root/web" && npm ci --no-audit --no-fund --silent)
fi

(cd "$root" && cargo build --locked -p videocall-web --target wasm32-unknown-unknown --profile web)
rm -rf "$dist"
mkdir -p "$dist/assets"
"$bindgen" --target web --no-typescript --out-dir "$dist/assets" --out-name videocall-web \
  "$target_dir/wasm32-unknown-unknown/web/videocall-web.wasm"
# The features rustc's wasm32 target uses by default (every current browser has them).
"$root/web/node_modules/.bin/wasm-opt" -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-reference-types --enable-multivalue --enable-mutable-globals \
  "$dist/assets/videocall-web_bg.wasm" -o "$dist/assets/videocall-web_bg.wasm"
cp "$root/web/index.html" "$dist/"
cp "$root/web/assets/"* "$dist/assets/"
wasm="$dist/assets/videocall-web_bg.wasm"
echo "web client: $dist ($(stat -c %s "$wasm") bytes of wasm, $(gzip -9 -c "$wasm" | wc -c) gzipped)"
