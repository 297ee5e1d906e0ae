#!/usr/bin/env bash
# Builds the Python login-conflict resolver into a WebAssembly component.
# Usage: plugins/login-conflict-py/build.sh OUT.wasm
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT.wasm" >&2
    exit 64
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

if ! command -v componentize-py >/dev/null 2>&1; then
    echo "error: componentize-py is not installed; install it with: pip install 'componentize-py==0.25.*' (PyPI package componentize-py)" >&2
    exit 69
fi

version="$(componentize-py --version 2>/dev/null || true)"
case "$version" in
    "componentize-py 0.25."*) ;;
    *) echo "warning: built and tested with componentize-py 0.25.x; found '${version}'" >&2 ;;
esac

mkdir -p "$(dirname "$out")"
cd "$here"
# componentize-py generates the `wit_world` bindings itself from the WIT
# (0.2.0: the resolver and the event handler); --stub-wasi replaces every WASI
# import with a trapping stub, so the component imports only hookbox's own
# interfaces.
componentize-py \
    --wit-path ../../wit/0.2.0 \
    --world import-and-event-hook \
    componentize app \
    --python-path src \
    --stub-wasi \
    --output "$out"
echo "built $out ($(wc -c <"$out") bytes)"
