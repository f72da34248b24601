#!/usr/bin/env bash
# Fuzzing (not in CI): runs each cargo-fuzz target in fuzz/ for a set time (or a set number
# of executions), growing its corpus in fuzz/corpus/<target>/, then minimises the corpus and
# prints a table (executions, executions per second, coverage, corpus size, crashes) for
# BENCHMARKS.md. A crash leaves its input in fuzz/artifacts/<target>/: make it a regression
# test (fuzz/regressions/<target>/ and a named test in the crate) before fixing it.
#
#   scripts/fuzz.sh                       every target, 300 s each
#   scripts/fuzz.sh 600 session token     these targets, 600 s each
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 0  every target until 10 million executions
#   FUZZ_JOBS=2 scripts/fuzz.sh ...       two targets at a time
#   FUZZ_SANITIZER=address ...            with AddressSanitizer (needs RUSTC_BOOTSTRAP=1 on a
#                                         stable toolchain; the default is none: safe Rust)
#
# cargo-fuzz is installed from crates.io into ~/.cache/videocall-tools on first use; the
# instrumented builds go to ~/.cache/videocall-fuzz-target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
shift || true
targets=("$@")
tools="$HOME/.cache/videocall-tools/cargo-fuzz"
target_dir="$HOME/.cache/videocall-fuzz-target"
sanitizer="${FUZZ_SANITIZER:-none}"
runs="${FUZZ_RUNS:-0}"
jobs="${FUZZ_JOBS:-1}"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  cargo install cargo-fuzz --locked --root "$tools"
fi
export PATH="$tools/bin:$PATH"
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
if [ "$sanitizer" != none ]; then
  export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
fi
fuzz() {
  cargo fuzz "$1" --fuzz-dir fuzz --sanitizer "$sanitizer" --target-dir "$target_dir" "${@:2}"
}
echo "== building ${targets[*]}"
for target in "${targets[@]}"; do
  fuzz build "$target" 2>&1 | tail -1
done
logs=$(mktemp -d)
run_one() {
  local target=$1
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  local args=(-print_final_stats=1 -max_len=4096 -rss_limit_mb=2048)
  [ "$seconds" -gt 0 ] && args+=(-max_total_time="$seconds")
  [ "$runs" -gt 0 ] && args+=(-runs="$runs")
  # Inputs that once broke something are replayed first.
  local seeds=()
  [ -d "fuzz/regressions/$target" ] && seeds+=("fuzz/regressions/$target")
  local started=$SECONDS status=0
  fuzz run "$target" "fuzz/corpus/$target" "${seeds[@]}" -- "${args[@]}" >"$logs/$target.log" 2>&1 || status=$?
  echo "$((SECONDS - started)) $status" >"$logs/$target.done"
}
running=0
for target in "${targets[@]}"; do
  echo "== fuzzing $target"
  run_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
printf '%-15s %8s %14s %10s %7s %8s %8s %8s\n' target seconds executions "exec/s" cov features corpus crashes
failed=0
for target in "${targets[@]}"; do
  read -r took status <"$logs/$target.done"
  log="$logs/$target.log"
  stat() { grep -o "$1 *[0-9]*" "$log" | tail -1 | awk '{print $NF}'; }
  execs=$(stat 'stat::number_of_executed_units:')
  rate=$(stat 'stat::average_exec_per_sec:')
  cov=$(stat 'cov:')
  ft=$(stat 'ft:')
  crashes=$(find "fuzz/artifacts/$target" -type f | wc -l)
  # Keep the corpus small: only inputs that add coverage.
  fuzz cmin "$target" "fuzz/corpus/$target" -- -rss_limit_mb=2048 >/dev/null 2>&1 || true
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  printf '%-15s %8s %14s %10s %7s %8s %8s %8s\n' "$target" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$crashes"
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    echo "   $target: exit $status; the log: $log" >&2
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -5 >&2 || true
  fi
done
exit "$failed"
