#!/usr/bin/env bash
# Builds the misbehaving Python fixture (app.py) as a component,
# mapper.wasm, with the Python example's build.sh (the same pinned
# componentize-py and --stub-wasi); its variables (OUT, VENV, STUB_WASI)
# apply here too.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC="$HERE" exec "$HERE/../../../plugin/mappers/example-python/build.sh"
