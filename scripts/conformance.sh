#!/usr/bin/env bash
# Runs the third-party SCIM conformance suites kept in ../shared/conformance
# against a fresh scim-host (new database, loopback, random port):
#   - Okta's "SCIM 2.0 SPEC Test" with the runner beside it (Node 18+);
#   - Microsoft's reference Postman collection with newman 6.2.2 (installed
#     from npm under target/conformance on first use).
# Exits non-zero if either suite fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared="$root/../shared/conformance"
work="$root/target/conformance"
mkdir -p "$work"

command -v node >/dev/null || { echo "conformance: node (18+) is required" >&2; exit 1; }
if [ ! -x "$work/node_modules/.bin/newman" ]; then
  npm install --prefix "$work" --no-audit --no-fund --loglevel=error newman@6.2.2
fi

cargo build -p scim-host
bin="$root/target/debug/scim-host"
token="conformance-$RANDOM$RANDOM"
servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true' EXIT

# Starts a fresh scim-host with an empty database; sets $base and $port.
serve() {
  local name=$1 db="$work/$1.db"
  rm -f "$db" "$db-wal" "$db-shm" "$work/$name.out"
  "$bin" serve --listen 127.0.0.1:0 --db "$db" --token "$token" --cache-dir "$work/cache" \
    >"$work/$name.out" 2>"$work/$name.log" &
  local pid=$!
  servers+=("$pid")
  for _ in $(seq 1 300); do
    grep -q '^listening on ' "$work/$name.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  base=$(sed -n 's/^listening on //p' "$work/$name.out" | head -n1)
  [ -n "$base" ] || { echo "conformance: scim-host did not start" >&2; exit 1; }
  port=$(echo "$base" | sed -E 's#^http://[^:]+:([0-9]+)/.*#\1#')
  echo "conformance: $name suite against a fresh scim-host at $base"
}

serve okta
# Okta's test expects at least one user with a name and a work email.
curl -fsS -o /dev/null -X POST "$base/Users" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/scim+json' \
  -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"seed.user@example.com",
       "name":{"givenName":"Seed","familyName":"User"},"active":true,
       "emails":[{"value":"seed.user@example.com","type":"work","primary":true}]}'

status=0
echo "== Okta SCIM 2.0 SPEC Test"
(cd "$shared/okta" && node ../runscope-runner.mjs Okta-SCIM-20-SPEC-Test.json \
  --init Initial_Script_Spec.txt --var "SCIMBaseURL=$base" --var "auth=Bearer $token") || status=1

echo "== Microsoft SCIM reference Postman collection (newman)"
serve microsoft
# The collection minus its "Get Token" folder (an endpoint of Microsoft's
# sample server) and the requests that test that server's own extensions
# rather than RFC 7644; scripts/conformance-skips.txt lists them with the
# reason for each.
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
"$work/node_modules/.bin/newman" run "$work/collection.json" --color off \
  --env-var Protocol=http --env-var Server=127.0.0.1 --env-var "Port=:$port" \
  --env-var Api=scim/v2 --env-var "token=$token" || status=1

exit $status
