#!/usr/bin/env bash
# Runs every fuzz harness in DIR for SECONDS each (libFuzzer, ASan + UBSan), one after another:
#   test/fuzz/run.sh DIR SECONDS [SEED]
# With a SEED, libFuzzer's choices are that seed's: a run explores the same inputs in the same order
# (as far as its time takes it), so a gate such as `make fuzz-smoke` fails the same way each time
# and not on what a lucky draw finds. Without, each run draws a new one: the search (`make fuzz`).
# The committed seeds (test/fuzz/corpus/<harness>) are read, never written; what libFuzzer learns
# goes to DIR/corpus/<harness> and is kept between runs. A crash, leak, timeout or failed property
# leaves its input in DIR/crashes/ and fails the run: turn that input into a unit test.
set -u
dir=$1
seconds=$2
seed=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
failed=()
for bin in "$dir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  mkdir -p "$dir/corpus/$name" "$dir/crashes" "$dir/logs"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$dir/crashes/$name-")
  [ -n "$seed" ] && args+=(-seed="$seed")
  # A harness uses test/fuzz/<name>.dict, or the dictionary a comment in its source names.
  dict="$here/$name.dict"
  [ -f "$dict" ] || dict=$(sed -n 's|^// Dictionary: \(.*\)$|\1|p' "$here/$name.cc" | head -1)
  if [ -n "$dict" ]; then
    case $dict in /*) ;; *) dict="$here/$(basename "$dict")" ;; esac
    [ -f "$dict" ] && args+=(-dict="$dict")
  fi
  echo "fuzz: $name for ${seconds}s"
  if "$bin" "${args[@]}" "$dir/corpus/$name" "$here/corpus/$name" >"$dir/logs/$name.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done ' "$dir/logs/$name.log" | tr '\n' ' '
    echo
  else
    echo "fuzz: $name FAILED; the log is $dir/logs/$name.log, the input in $dir/crashes/:"
    grep -E 'ERROR|runtime error|property failed|Test unit written' "$dir/logs/$name.log" | head -5
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: every harness ran ${seconds}s without a finding"
