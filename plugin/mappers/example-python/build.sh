#!/usr/bin/env bash
# Builds the example mapping plugin as a WebAssembly component: mapper.wasm.
#
#   ./build.sh                 # mapper.wasm, no WASI imports (--stub-wasi)
#   STUB_WASI= ./build.sh      # keep WASI imports (print() works; the host
#                              # refuses the filesystem and socket imports)
#   OUT=/tmp/m.wasm ./build.sh
#
# Installs componentize-py (pinned) into a virtual environment under the
# workspace's target/ on first use; VENV=... picks another one.
set -euo pipefail
cd "$(dirname "$0")"

COMPONENTIZE_PY=0.25.1
WIT=../../../wit/mapper
VENV=${VENV:-../../../target/mappers/py-venv}
OUT=${OUT:-mapper.wasm}
STUB_WASI=${STUB_WASI---stub-wasi}

if [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY"
fi

# The policy's own tests first: a broken policy is not worth packaging.
python3 -m unittest --quiet

# `app` is the module defining `class WitWorld(wit_world.WitWorld)`.
# --stub-wasi replaces every WASI import with a trapping stub, so the
# component imports nothing but lms:mapping/types; it also bakes the build's
# random seed into the component (this policy uses no randomness).
"$VENV/bin/componentize-py" -d "$WIT" -w mapper componentize $STUB_WASI app -o "$OUT"
ls -l "$OUT"
