#!/usr/bin/env bash
# Whole-process figures for `hr-batch stats` over N generated alerts (default 10 M): wall seconds
# and peak RSS of each of RUNS runs (default 5), then their min / median / max, and where the last
# run spent its time (--verbose).
#
#   crates/hr-batch/benches/stats_10m.sh [N] [RUNS] [parquet|jsonl]
#
# The alerts are generated once into $HR_BATCH_BENCH_DIR (default /tmp/hr-batch-bench) and reused
# by later calls. Uses a release build and /usr/bin/time (GNU time) for peak RSS.
set -euo pipefail
crate=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-10000000}
runs=${2:-5}
format=${3:-parquet}
dir=${HR_BATCH_BENCH_DIR:-/tmp/hr-batch-bench}

cargo build --release -q --manifest-path "$crate/Cargo.toml" --bin hr-batch
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$crate/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target/release/hr-batch

input=$dir/alerts-$n-$format
if [ ! -d "$input" ]; then
    flag=$([ "$format" = parquet ] && echo --parquet || true)
    echo "Generating $n alerts ($format) into $input."
    # shellcheck disable=SC2086
    "$bin" generate --alerts "$n" --output "$input" $flag
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" stats --quiet --input "$input" --output "$out/warmup" 2>/dev/null
for i in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$out/time-$i" \
        "$bin" stats --quiet --verbose --input "$input" --output "$out/stats" 2>"$out/log-$i"
    read -r secs kib <"$out/time-$i"
    printf 'run %d: %6.2f s  %7.1f MiB peak RSS\n' "$i" "$secs" "$(echo "$kib / 1024" | bc -l)"
done
summary() {
    sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "min %.2f  median %.2f  max %.2f", v[1], m, v[NR] }'
}
echo "stats over $n alerts ($format), $runs runs:"
echo "  wall s:        $(cat "$out"/time-* | cut -d' ' -f1 | summary)"
echo "  peak RSS MiB:  $(cat "$out"/time-* | awk '{ print $2 / 1024 }' | summary)"
echo "  last run:      $(grep Timings "$out/log-$runs")"
