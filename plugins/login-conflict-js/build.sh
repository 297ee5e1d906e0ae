#!/usr/bin/env bash
# Builds the JavaScript login-conflict resolver into a WebAssembly component.
# Usage: plugins/login-conflict-js/build.sh OUT.wasm
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT.wasm" >&2
    exit 64
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: node and npm are required (Node.js 20 or later)" >&2
    exit 69
fi

cd "$here"
if [ ! -d node_modules/@bytecodealliance/componentize-js ]; then
    # The versions pinned in package-lock.json.
    npm ci --no-audit --no-fund
fi
node build.mjs "$out"
