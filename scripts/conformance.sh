#!/usr/bin/env bash
# Runs the third-party SCIM conformance suites kept in ../shared/conformance
# against each host that loads the engine component, each suite against a
# fresh server (new database, loopback, random port):
#   - Okta's "SCIM 2.0 SPEC Test" with the runner beside it (Node 18+);
#   - Microsoft's reference Postman collection with newman 6.2.2 (installed
#     from npm under target/conformance on first use).
#
#   scripts/conformance.sh [scim-host|scim-host-postgres|python|node|all]
#                                                         (default: all)
#
# scim-host is built with cargo; scim-host-postgres is the same binary on
# PostgreSQL: a throwaway cluster under target/conformance/pg, on a free
# loopback port, that this script starts and stops (it needs PostgreSQL's
# server binaries: apt-get install postgresql-15); the Python and Node hosts are started with
# host-harness/python/serve and host-harness/node/serve (whose first start
# installs their packages, which may take minutes). Prints the result of
# each host and suite, and exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared="$root/../shared/conformance"
work="$root/target/conformance"
mkdir -p "$work"

case "${1:-all}" in
  all) hosts=(scim-host scim-host-postgres python node) ;;
  scim-host | scim-host-postgres | python | node) hosts=("$1") ;;
  *)
    echo "usage: $0 [scim-host|scim-host-postgres|python|node|all]" >&2
    exit 2
    ;;
esac

command -v node >/dev/null || { echo "conformance: node (18+) is required" >&2; exit 1; }
if [ ! -x "$work/node_modules/.bin/newman" ]; then
  npm install --prefix "$work" --no-audit --no-fund --loglevel=error newman@6.2.2
fi

# The Microsoft collection minus its "Get Token" folder (an endpoint of
# Microsoft's sample server) and the requests that test that server's own
# extensions rather than RFC 7644; scripts/conformance-skips.txt lists them
# with the reason for each.
python3 - "$shared/microsoft/PostmanCollection.pr89-16b6694.json" scripts/conformance-skips.txt \
  "$work/collection.json" <<'PY'
import json, sys
src, skips, out = sys.argv[1:4]
# Lines: "folder | request name | n | action | reason"; n picks the n-th
# request of that name in the folder (names repeat); action "skip" leaves it
# out, "unchecked" sends it but drops its assertions (later requests depend
# on its effect).
skip, unchecked = set(), set()
for line in open(skips):
    if line.strip() and not line.startswith("#"):
        folder, name, n, action = (p.strip() for p in line.split("|")[:4])
        (skip if action == "skip" else unchecked).add((folder, name, int(n)))
c = json.load(open(src))
c["item"] = [f for f in c["item"] if f.get("name") != "Get Token"]
for folder in c["item"]:
    if "item" in folder:
        seen, kept = {}, []
        for i in folder["item"]:
            seen[i["name"]] = seen.get(i["name"], 0) + 1
            key = (folder["name"], i["name"], seen[i["name"]])
            if key in unchecked:
                i["event"] = [e for e in i.get("event", []) if e.get("listen") != "test"]
            if key not in skip:
                kept.append(i)
        folder["item"] = kept
json.dump(c, open(out, "w"))
PY

for host in "${hosts[@]}"; do
  if [ "$host" = scim-host ] || [ "$host" = scim-host-postgres ]; then
    # The same build as `cargo test --workspace` (which .ci/run has just
    # run): `cargo build -p scim-host` resolves features differently and
    # would compile wasmtime again.
    cargo test --workspace --no-run --quiet
  fi
done

token="conformance-$RANDOM$RANDOM"
# Each server runs in a process group of its own (job control), so that
# stopping it also stops what a serve script started.
set -m
servers=()
pgdir="$work/pg"
pgport=
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
trap 'for p in "${servers[@]}"; do kill -- "-$p" 2>/dev/null || true; done
      [ -n "$pgport" ] && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true' EXIT

# A throwaway PostgreSQL cluster for scim-host-postgres; sets $pgport.
pg_start() {
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$pgbin" ] || pgbin=$(pg_config --bindir 2>/dev/null || true)
  if [ ! -x "$pgbin/initdb" ]; then
    echo "conformance: PostgreSQL's server binaries are missing; apt-get install postgresql-15" >&2
    return 1
  fi
  rm -rf "$pgdir" && mkdir -p "$pgdir"
  [ "$(id -u)" = 0 ] && chown postgres "$pgdir"
  "${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
    -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  pgport=$port
}

# Starts a fresh server of host $1 for suite $2 with an empty database;
# sets $base, $port and $pid, or returns non-zero.
serve() {
  local host=$1 suite=$2
  local name="$host-$suite" db="$work/$1-$2.db"
  rm -f "$db" "$db-wal" "$db-shm" "$work/$name.out"
  local cmd
  case "$host" in
    scim-host) cmd=("$root/target/debug/scim-host" serve --cache-dir "$work/cache") ;;
    scim-host-postgres)
      cmd=("$root/target/debug/scim-host" serve --cache-dir "$work/cache")
      if [ -z "$pgport" ]; then pg_start || return 1; fi
      local dbname="${name//-/_}"
      "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U postgres "$dbname" || return 1
      db="postgres://postgres@127.0.0.1:$pgport/$dbname"
      ;;
    python) cmd=("$root/host-harness/python/serve") ;;
    node) cmd=("$root/host-harness/node/serve") ;;
  esac
  if [ ! -x "${cmd[0]}" ]; then
    echo "conformance: $host: ${cmd[0]} is not there or not executable" >&2
    return 1
  fi
  "${cmd[@]}" --listen 127.0.0.1:0 --db "$db" --token "$token" \
    >"$work/$name.out" 2>"$work/$name.log" &
  pid=$!
  servers+=("$pid")
  # Up to 10 minutes: a first start may install packages.
  for _ in $(seq 1 6000); do
    grep -q '^listening on ' "$work/$name.out" 2>/dev/null && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "conformance: $host exited before listening; its log ($work/$name.log):" >&2
      tail -n 40 "$work/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  base=$(sed -n 's/^listening on //p' "$work/$name.out" | head -n1)
  if [ -z "$base" ]; then
    echo "conformance: $host did not start within 10 minutes; log: $work/$name.log" >&2
    return 1
  fi
  port=$(echo "$base" | sed -E 's#^http://[^:]+:([0-9]+)/.*#\1#')
  echo "conformance: $suite suite against a fresh $host at $base"
}

stop() {
  kill -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

okta() {
  local host=$1
  serve "$host" okta || return 1
  # Okta's test expects at least one user with a name and a work email.
  local ok=0
  curl -fsS -o /dev/null -X POST "$base/Users" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/scim+json' \
    -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"seed.user@example.com",
         "name":{"givenName":"Seed","familyName":"User"},"active":true,
         "emails":[{"value":"seed.user@example.com","type":"work","primary":true}]}' || ok=1
  if [ $ok -eq 0 ]; then
    (cd "$shared/okta" && node ../runscope-runner.mjs Okta-SCIM-20-SPEC-Test.json \
      --init Initial_Script_Spec.txt --var "SCIMBaseURL=$base" --var "auth=Bearer $token") || ok=1
  fi
  stop
  return $ok
}

microsoft() {
  local host=$1
  serve "$host" microsoft || return 1
  local ok=0
  "$work/node_modules/.bin/newman" run "$work/collection.json" --color off \
    --env-var Protocol=http --env-var Server=127.0.0.1 --env-var "Port=:$port" \
    --env-var Api=scim/v2 --env-var "token=$token" || ok=1
  stop
  return $ok
}

status=0
results=()
for host in "${hosts[@]}"; do
  echo "== $host: Okta SCIM 2.0 SPEC Test"
  if okta "$host"; then results+=("$host okta passed"); else results+=("$host okta FAILED"); status=1; fi
  echo "== $host: Microsoft SCIM reference Postman collection (newman)"
  if microsoft "$host"; then
    results+=("$host microsoft passed")
  else
    results+=("$host microsoft FAILED")
    status=1
  fi
done

echo "== conformance results"
for r in "${results[@]}"; do
  echo "   $r"
done
exit $status
