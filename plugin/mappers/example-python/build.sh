#!/usr/bin/env bash
# Builds the example mapping plugin as a WebAssembly component: mapper.wasm.
#
#   ./build.sh                 # mapper.wasm, no WASI imports (--stub-wasi)
#   STUB_WASI= ./build.sh      # keep WASI imports (print() works; the host
#                              # refuses the filesystem and socket imports)
#   OUT=/tmp/m.wasm ./build.sh
#   SRC=path/to/plugin ./build.sh   # another plugin's sources (its app.py,
#                                   # and its test_*.py if it has any)
#
# Installs componentize-py (pinned) into a virtual environment under the
# workspace's target/ on first use; VENV=... picks another one. OUT is
# relative to SRC.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
cd "${SRC:-$HERE}"

COMPONENTIZE_PY=0.25.1
WIT=$ROOT/wit/mapper
VENV=${VENV:-$ROOT/target/mappers/py-venv}
OUT=${OUT:-mapper.wasm}
STUB_WASI=${STUB_WASI---stub-wasi}

# Status 3: the toolchain cannot be installed here (no venv module, no
# network, no room), as opposed to a plugin that does not build.
cannot_install() {
    echo "build.sh: could not install componentize-py $COMPONENTIZE_PY into $VENV" >&2
    exit 3
}
# One installer at a time: builds may run side by side (the tests do).
mkdir -p "$(dirname "$VENV")" || cannot_install
exec 9>"$VENV.lock" || cannot_install
if command -v flock >/dev/null; then flock 9; fi
if [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY" ]; then
    python3 -m venv "$VENV" || cannot_install
    "$VENV/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY" || cannot_install
fi
exec 9>&-

# The policy's own tests first: a broken policy is not worth packaging.
if compgen -G "test_*.py" >/dev/null; then
    python3 -m unittest --quiet
fi

# `app` is the module defining `class WitWorld(wit_world.WitWorld)`.
# --stub-wasi replaces every WASI import with a trapping stub, so the
# component imports nothing but lms:mapping/types; it also bakes the build's
# random seed into the component (this policy uses no randomness).
"$VENV/bin/componentize-py" -d "$WIT" -w mapper componentize $STUB_WASI app -o "$OUT"
ls -l "$OUT"
