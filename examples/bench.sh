#!/usr/bin/env bash
# Streaming throughput against a real broker (`just bench [N] [RUNS] [INTERVALS]`): preloads N
# readings (default 5 M) into a topic of its own with hr-sim, then in the same run reads that topic
#   (a) raw: the pipeline's consumer settings and no processing (hr-kafka's raw_consume example),
#       in batches as the job reads, and one record per poll (`--per-record`, the old reader),
#   (b) `hr-pipeline run --bounded --guarantee exactly-once`, once per commit interval in INTERVALS
#       (default "200ms", the job's default; e.g. "100ms 200ms 1s"), alert files off,
#   (c) the same at the job's default commit interval with the alert files on (`--alerts-dir`), and
#   (d) `hr-pipeline run --bounded --guarantee at-least-once` (default commit interval),
# each RUNS times (default 3, in turn: raw, raw per record, exactly-once..., at-least-once, raw, ...).
# The job parses, windows, classifies and writes every alert, episode and changelog update to
# Kafka. It prints events/s (median of the runs, counted from each reader's first record to the
# job's last commit), each one's ratio to the batch raw consume measured in the same run,
# exactly-once / at-least-once, the job's start-up (process start to its first record, median)
# and peak RSS (the largest of the runs).
#
#   examples/bench.sh [N] [RUNS] [INTERVALS]   HR_BOOTSTRAP_SERVERS / HR_KAFKA_PORT as for the demo
#
# HR_BENCH_PROPS="key=value ..." gives every reader and job those librdkafka properties (`-X`),
# e.g. "max.partition.fetch.bytes=8388608 queued.max.messages.kbytes=32768" for the queues the
# consumer had before its memory was bounded.
#
# Release builds (HR_BIN_DIR=DIR: binaries built earlier instead, e.g. a copy of target/release
# kept while the tree changes); the topic is left in place (its name is printed) so runs can be repeated by hand.
# A job that fails makes the script fail.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
n=${1:-5000000}
runs=${2:-3}
read -r -a intervals <<<"${3:-200ms}"
run_id=$(date +%s)
topic=hr_bench_${n}_$run_id

# shellcheck source=examples/broker.sh
source examples/broker.sh
use_broker
trap stop_started_broker EXIT

if [[ -n ${HR_BIN_DIR:-} ]]; then
  bin=$HR_BIN_DIR
  say "Using the binaries in $bin (HR_BIN_DIR): hr-sim, hr-pipeline, examples/raw_consume."
else
  say "Building release binaries."
  cargo build --release -q -p hr-sim -p hr-pipeline --bins
  cargo build --release -q -p hr-kafka --example raw_consume
  bin=${CARGO_TARGET_DIR:-$repo/target}/release
fi
read -r -a props <<<"${HR_BENCH_PROPS:-}"
xprops=()
for kv in "${props[@]}"; do xprops+=(-X "$kv"); done
work=$(mktemp -d)
trap 'rm -rf "$work"; stop_started_broker' EXIT

# Builds with HTTP endpoints would all bind the same port (and may find it taken): off here.
http=()
if "$bin/hr-pipeline" run --help | grep -q -- '--http '; then http=(--http off); fi
topics=(--input-topic "$topic" --alerts-topic "${topic}_alerts" --dlq-topic "${topic}_dlq"
  --late-topic "${topic}_late" --episodes-topic "${topic}_episodes")
"$bin/hr-pipeline" topics --bootstrap "$bootstrap" "${topics[@]}" >/dev/null

say "Preloading $n readings into $topic (1000 patients, one reading a second each, simulated time)."
"$bin/hr-sim" --bootstrap "$bootstrap" --topic "$topic" --start 2025-11-19T00:00:00Z --events "$n" \
  --patients 1000 --rate 1000 --no-progress 2>&1 | tail -n 1 | tee "$work/preload"

# Peak RSS (KiB) of a command, via GNU time when it is installed.
# The command's exit status is kept.
peak() {
  if [[ -x /usr/bin/time ]]; then
    local st=0
    /usr/bin/time -f 'peak_kib=%M' -o "$work/time" "$@" || st=$?
    cat "$work/time" >&2
    return "$st"
  else
    "$@"
  fi
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# One bounded job run: job NAME RUN_NO ARGS...; appends to $work/NAME.rates and NAME.peaks.
job() {
  local name=$1 i=$2
  shift 2
  say "Run $i of $runs: hr-pipeline run --bounded $*."
  local files=(--alerts-dir none)
  if [[ $name == *-files ]]; then files=(--alerts-dir "$work/alerts-$name-$i"); fi
  if ! RUST_LOG=info peak "$bin/hr-pipeline" run --bootstrap "$bootstrap" "${topics[@]}" \
    --profiles-topic none --group "hr-bench-$run_id-$name-$i" --bounded "${files[@]}" "${http[@]}" "${xprops[@]}" "$@" \
    2>"$work/pipeline.err" >/dev/null; then
    tail -n 20 "$work/pipeline.err" >&2
    say "hr-pipeline failed (its log is above)."
    exit 1
  fi
  grep 'Exit\.' "$work/pipeline.err" | tail -n 1 | sed 's/^.*Exit\. */counters: /'
  grep -o 'records_per_s=[0-9]*' "$work/pipeline.err" | cut -d= -f2 | tee -a "$work/$name.rates" |
    sed 's/^/events\/s: /'
  grep -o 'peak_kib=[0-9]*' "$work/pipeline.err" | cut -d= -f2 >>"$work/$name.peaks" || true
  grep -o 'since_start_ms=[0-9]*' "$work/pipeline.err" | head -n 1 | cut -d= -f2 >>"$work/$name.starts" || true
  rm -rf "$work/alerts-$name-$i"
}

# One raw consume run: raw NAME RUN_NO ARGS...
raw() {
  local name=$1 i=$2
  shift 2
  say "Run $i of $runs: raw consume $*."
  peak "$bin/examples/raw_consume" "$@" "$topic" "$bootstrap" "${props[@]}" >"$work/raw.out" 2>"$work/raw.err"
  cat "$work/raw.out"
  grep -o '[0-9]* events/s' "$work/raw.out" | cut -d' ' -f1 >>"$work/$name.rates"
  grep -o 'peak_kib=[0-9]*' "$work/raw.err" | cut -d= -f2 >>"$work/$name.peaks" || true
}

names=(raw-per-record)
for iv in "${intervals[@]}"; do names+=("eo-$iv"); done
names+=(eo-files alo)
for ((i = 1; i <= runs; i++)); do
  raw raw "$i"
  raw raw-per-record "$i" --per-record
  for iv in "${intervals[@]}"; do
    job "eo-$iv" "$i" --guarantee exactly-once --commit-interval "$iv"
  done
  job eo-files "$i" --guarantee exactly-once
  job alo "$i" --guarantee at-least-once
done

mib() { [[ -n $1 ]] && awk -v k="$1" 'BEGIN {printf "%.0f MiB", k / 1024}' || echo "n/a (install GNU time)"; }
max_peak() { sort -n "$work/$1.peaks" 2>/dev/null | tail -n 1; }
raw=$(median <"$work/raw.rates")
alo=$(median <"$work/alo.rates")
echo
echo "readings:   $n in $topic"
if ((${#props[@]})); then echo "properties: ${props[*]}"; fi
echo "preload:    $(cat "$work/preload")"
echo "medians of $runs runs, in turn on the same topic; ratios against this run's raw consume in batches"
printf '%-36s %12s %8s %8s %9s %10s\n' "" events/s "/ raw" "/ ALO" start-up "peak RSS"
printf '%-36s %12.0f %8s %8s %9s %10s\n' "raw consume, batches" "$raw" 1.00 - - "$(mib "$(max_peak raw)")"
for name in "${names[@]}"; do
  rate=$(median <"$work/$name.rates")
  start=-
  if [[ -s $work/$name.starts ]]; then
    start=$(median <"$work/$name.starts" | awk '{printf "%.2f s", $1 / 1000}')
  fi
  case $name in
    raw-per-record) label="raw consume, per record (old)" ;;
    alo) label="at-least-once, files off" ;;
    eo-files) label="exactly-once, files on" ;;
    *) label="exactly-once, commit ${name#eo-}, files off" ;;
  esac
  awk -v l="$label" -v p="$rate" -v r="$raw" -v a="$alo" -v s="$start" -v m="$(mib "$(max_peak "$name")")" \
    'BEGIN {printf "%-36s %12.0f %8.2f %8.2f %9s %10s\n", l, p, p / r, p / a, s, m}'
done
