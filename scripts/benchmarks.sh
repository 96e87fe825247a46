#!/usr/bin/env bash
# Reproduces every figure the README reports, and writes them with the
# machine and the commands to host-harness/BENCHMARKS.md (the README's
# figures come from that file).
#
#   scripts/benchmarks.sh [--quick] [--only a,b] [--out FILE]
#
#   --quick   10,000 users where a bench takes sizes, and shorter runs
#             (about 40 minutes on 2 cores once built); without it the
#             sizes are 10k, 100k and 1M users (several hours: building
#             the 1M-user databases dominates, and they are kept under
#             target/ for the next run)
#   --only    run only these benches (names below), e.g. --only traffic,load
#   --out     where to write (default host-harness/BENCHMARKS.md)
#
# Benches, in order: size (the component), instantiate (the sandbox's cost
# per request, and the engine natively against inside wasmtime), rules
# (the engine's rules per user, native), query, writes, load, traffic
# (Entra-style sync and incremental traffic, 32 clients, memory over time,
# tenants at 25 requests/s), remap, plugins, neighbours, backends (SQLite
# and PostgreSQL; needs PostgreSQL's server binaries), hosts (the Python
# and Node hosts; needs Python 3 and Node 20).
#
# Each bench prints Markdown; the file keeps each one's output under the
# command that produced it. A bench that fails is recorded as failed and
# the others go on; the script exits non-zero if any failed. Progress goes
# to the terminal (stderr); set NO_PROGRESS=1 to silence it.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
invocation="scripts/benchmarks.sh $*"

quick=0
only=""
out="$root/host-harness/BENCHMARKS.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only="$2"; shift ;;
    --out) out="$2"; shift ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown option $1; see $0 --help" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  sizes=10000
  export SCIM_LOAD_SECONDS=${SCIM_LOAD_SECONDS:-5}
  export SCIM_BENCH_SECONDS=${SCIM_BENCH_SECONDS:-10}
  export SCIM_REMAP_USERS=${SCIM_REMAP_USERS:-100000}
else
  sizes=10000,100000,1000000
fi

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true

wanted() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
say() { [ -n "${NO_PROGRESS:-}" ] || echo "[$(date +%H:%M:%S)] $*" >&2; }

body=$(mktemp)
load=$(cut -d" " -f1-3 /proc/loadavg)
failed=()
# run NAME DESCRIPTION COMMAND...: runs the command, keeps its stdout.
run() {
  local name=$1 what=$2
  shift 2
  wanted "$name" || return 0
  say "$name: $*"
  local log started
  log=$(mktemp)
  started=$(date +%s)
  if env "$@" >"$log" 2>"$log.err"; then
    status="ok"
  else
    status="FAILED (exit $?; last lines of its stderr below)"
    failed+=("$name")
  fi
  {
    echo "## $name"
    echo
    echo "$what"
    echo
    echo '```'
    echo "$*"
    echo '```'
    echo
    echo "Took $(($(date +%s) - started)) s; $status."
    echo
    if grep -q '^|' "$log"; then
      cat "$log"
    else
      echo '```'
      cat "$log"
      echo '```'
    fi
    if [ "$status" != ok ]; then
      echo '```'
      tail -20 "$log.err"
      echo '```'
    fi
    echo
  } >>"$body"
  rm -f "$log" "$log.err"
  say "$name: $status"
}

criterion() {
  # Criterion's report as a table: each measurement's name and median.
  echo "| measurement | median |"
  echo "|---|---:|"
  "$@" 2>/dev/null | awk '
    /time:/ {
      name = ($0 ~ /^ /) ? prev : $1
      match($0, /\[[^]]*\]/)
      split(substr($0, RSTART + 1, RLENGTH - 2), t, " ")
      print "| " name " | " t[3] " " t[4] " |"
      next
    }
    NF && $0 !~ /^ / && $1 != "Found" && $1 != "Benchmarking" { prev = $0 }'
}
export -f criterion

run size "The engine component: its size, built in release with LTO and stripped." \
  cargo run -q -p scim-engine-build -- --json
run instantiate "The sandbox's cost per request, and the same requests handled by the engine compiled natively (the cost of the wasm boundary); criterion medians." \
  bash -c "criterion cargo bench -q -p scim-host --bench instantiate"
run rules "The engine's rules per user, natively (criterion medians)." \
  bash -c "criterion cargo bench -q -p scim-engine --bench rules"
run query "Query latency over HTTP, p50 and max." \
  SCIM_BENCH_SIZES=$sizes cargo bench -q -p scim-host --bench query
run writes "Membership PATCH on a 100,000-member group, filling a group, Bulk creation." \
  cargo bench -q -p scim-host --bench writes
run load "Concurrent load at 1 and 8 connections, 10,000 users." \
  cargo bench -q -p scim-host --bench load
run traffic "Identity-provider traffic: an Entra-style initial sync of 10,000 users and 500 groups, then incremental traffic from 32 clients with a rules install half-way, then 32 tenants at once; resident memory and write-ahead log over time." \
  cargo bench -q -p scim-host --bench traffic
run remap "Background re-mapping of a 100,000-member group, rules and plugins." \
  cargo bench -q -p scim-host --bench remap
run plugins "Per-user cost and install time of the example mapping plugins." \
  cargo bench -q -p scim-host --bench plugins
run neighbours "One tenant's load against another tenant's GET latency." \
  cargo bench -q -p scim-host --bench neighbours
run backends "SQLite and PostgreSQL side by side; mixed traffic on one and two replicas." \
  SCIM_BENCH_SIZES=$sizes cargo bench -q -p scim-host --bench backends
run hosts "The same requests through scim-host, the Python host and the Node host." \
  cargo bench -q -p scim-host --bench hosts

{
  echo "# Benchmarks"
  echo
  echo "Written by \`${invocation% }\`; do not edit by hand."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
  echo "- machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r)"
  echo "- toolchain: $(rustc --version)"
  echo "- load average when it started: $load"
  echo "- sizes: $sizes users where a bench takes sizes"
  echo
  cat "$body"
} >"$out"
rm -f "$body"
say "wrote $out"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]} (see $out)" >&2
  exit 1
fi
