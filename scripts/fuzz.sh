#!/usr/bin/env bash
# Fuzzes the engine: scripts/fuzz.sh [TARGET] [SECONDS]
#
# Runs each fuzz target of plugin/fuzz (default: all, one after another) for
# SECONDS (default 60) with cargo-fuzz on the nightly toolchain, and prints
# the executions and coverage each reached. New inputs collect in
# target/fuzz/corpus/<target>, crashes in target/fuzz/artifacts/<target>;
# the seed corpus in plugin/fuzz/corpus stays as it is (see
# plugin/fuzz/README.md to minimise new finds into it).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_dir=plugin/fuzz
work=target/fuzz
secs=${2:-60}
if [[ -n "${1:-}" && "${1}" != all ]]; then
  targets=("$1")
else
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")
fi

# No sanitizer: the engine is safe Rust, so AddressSanitizer finds nothing
# there and halves the speed; debug assertions catch overflows.
cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$work" -s none -a "${targets[@]:0:1}" >/dev/null 2>&1 || true
status=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "$work/logs"
  log="$work/logs/$t.log"
  dict=()
  [[ -f "$fuzz_dir/dict/$t.dict" ]] && dict=("-dict=$fuzz_dir/dict/$t.dict")
  echo "== $t: ${secs}s (log: $log)"
  if ! cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" --target-dir "$work" -s none -a "$t" \
      "$work/corpus/$t" "$fuzz_dir/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$t/" "${dict[@]}" >"$log" 2>&1; then
    status=1
    echo "!! $t found a failure; see $log and $work/artifacts/$t/"
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -aE '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  summary+=("$(printf '%-14s execs %-10s cov %-6s ft %s' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}")")
done
echo
printf '%s\n' "${summary[@]}"
exit $status
