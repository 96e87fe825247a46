#!/usr/bin/env bash
# Installs the browser tests' pinned packages (playwright-core, axe-core)
# with `npm ci` when node_modules is missing or package-lock.json changed
# since the last install; concurrent runs install once (flock). No browser
# is downloaded: the tests drive Debian's Chromium. Output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")"
(
  flock 9
  lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ ! -d node_modules ] || [ "$(cat node_modules/.lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
    echo "console: installing the browser tests' packages (npm ci)" >&2
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2
    echo "$lock_sum" > node_modules/.lock-sha256
  fi
) 9>.install.lock
