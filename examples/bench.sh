#!/usr/bin/env bash
# Streaming throughput against a real broker (`just bench [N]`): preloads N readings (default 5 M) into
# a topic of its own with hr-sim, then in the same run reads that topic
#   (a) raw: the pipeline's consumer settings and no processing (hr-kafka's raw_consume example), and
#   (b) `hr-pipeline run --bounded`: parse, window, classify, write every alert to Kafka and a file,
# each RUNS times (default 3, in turn: raw, pipeline, raw, pipeline, ...), and prints events/s for
# both (median of the runs, counted from each reader's first record), their ratio, and peak RSS.
#
#   examples/bench.sh [N] [RUNS]      HR_BOOTSTRAP_SERVERS / HR_KAFKA_PORT as for the demo
#
# Release builds; the topic is left in place (its name is printed) so runs can be repeated by hand.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
n=${1:-5000000}
runs=${2:-3}
run_id=$(date +%s)
topic=hr_bench_${n}_$run_id

# shellcheck source=examples/broker.sh
source examples/broker.sh
use_broker
trap stop_started_broker EXIT

say "Building release binaries."
cargo build --release -q -p hr-sim -p hr-pipeline --bins
cargo build --release -q -p hr-kafka --example raw_consume
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d)
trap 'rm -rf "$work"; stop_started_broker' EXIT

"$bin/hr-pipeline" topics --bootstrap "$bootstrap" --input-topic "$topic" --alerts-topic "${topic}_alerts" \
  --dlq-topic "${topic}_dlq" --late-topic "${topic}_late" >/dev/null

say "Preloading $n readings into $topic (1000 patients, one reading a second each, simulated time)."
"$bin/hr-sim" --bootstrap "$bootstrap" --topic "$topic" --start 2025-11-19T00:00:00Z --events "$n" \
  --patients 1000 --rate 1000 --no-progress 2>&1 | tail -n 1 | tee "$work/preload"

# Peak RSS (KiB) of a command, via GNU time when it is installed.
peak() {
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f 'peak_kib=%M' -o "$work/time" "$@"
    cat "$work/time" >&2
  else
    "$@"
  fi
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for ((i = 1; i <= runs; i++)); do
  say "Run $i of $runs: raw consume."
  peak "$bin/examples/raw_consume" "$topic" "$bootstrap" >"$work/raw.out" 2>"$work/raw.err"
  cat "$work/raw.out"
  grep -o '[0-9]* events/s' "$work/raw.out" | cut -d' ' -f1 >>"$work/raw.rates"
  grep -o 'peak_kib=[0-9]*' "$work/raw.err" | cut -d= -f2 >>"$work/raw.peaks" || true

  say "Run $i of $runs: hr-pipeline run --bounded."
  RUST_LOG=info peak "$bin/hr-pipeline" run --bootstrap "$bootstrap" --input-topic "$topic" \
    --alerts-topic "${topic}_alerts" --dlq-topic "${topic}_dlq" --late-topic "${topic}_late" \
    --group "hr-bench-$run_id-$i" --from-beginning --bounded --alerts-dir "$work/alerts-$i" \
    2>"$work/pipeline.err" >/dev/null
  grep 'exit' "$work/pipeline.err" | tail -n 1 | sed 's/^.* exit /counters: /'
  grep -o 'records_per_s=[0-9]*' "$work/pipeline.err" | cut -d= -f2 | tee -a "$work/pipe.rates" |
    sed 's/^/events\/s: /'
  grep -o 'peak_kib=[0-9]*' "$work/pipeline.err" | cut -d= -f2 >>"$work/pipe.peaks" || true
  rm -rf "$work/alerts-$i"
done

raw=$(median <"$work/raw.rates")
pipe=$(median <"$work/pipe.rates")
raw_peak=$(sort -n "$work/raw.peaks" 2>/dev/null | tail -n 1)
pipe_peak=$(sort -n "$work/pipe.peaks" 2>/dev/null | tail -n 1)
mib() { [[ -n $1 ]] && awk -v k="$1" 'BEGIN {printf "%.0f MiB", k / 1024}' || echo "n/a (install GNU time)"; }
echo
echo "readings:          $n in $topic"
echo "preload:           $(cat "$work/preload")"
echo "raw consume:       $raw events/s (median of $runs), peak RSS $(mib "$raw_peak")"
echo "hr-pipeline:       $pipe events/s (median of $runs), peak RSS $(mib "$pipe_peak")"
awk -v p="$pipe" -v r="$raw" 'BEGIN {printf "pipeline / raw:    %.2f\n", p / r}'
