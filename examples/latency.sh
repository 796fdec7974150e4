#!/usr/bin/env bash
# Alert latency against a real broker (`just latency [SECONDS] [RATES] [INTERVALS]`): for each rate
# in RATES (default "10000 100000" readings/s, 1000 patients) it runs `hr-pipeline run` (1 s tumbling
# windows, --delay 0s, so every patient closes a window each second) with at-least-once, and with
# exactly-once at each commit interval in INTERVALS (default "100ms 200ms 500ms"), on topics of its
# own, while the `latency` example produces readings in real time and reads the alerts topic as a
# read_committed consumer. Latency runs from the moment the reading that closes a window is handed
# to the producer to the moment its alert is visible to that consumer. It prints p50/p99/max per
# configuration, the peak RSS of the job and the p99 of the probe's own produce acknowledgements
# (the broker's share: a reading cannot reach the job before the broker has it); a configuration in which a closed window got no alert
# within 3 s (the job fell behind, or lost it) is marked FAILED, and the script then exits 1. The
# topics and job groups it made are deleted at its end.
#
#   examples/latency.sh [SECONDS] [RATES] [INTERVALS]    HR_BOOTSTRAP_SERVERS / HR_KAFKA_PORT as for
#   the demo; HR_BIN_DIR=DIR uses binaries built earlier (hr-pipeline, examples/latency);
#   HR_LATENCY_JOB_FLAGS adds flags to every job (e.g. "-X queued.max.messages.kbytes=8192");
#   HR_LATENCY_TIMELINE=DIR keeps each configuration's second-by-second figures in DIR/<n>.timeline
#   (the probe's --timeline: when in a run a tail happened).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
seconds=${1:-20}
read -r -a rates <<<"${2:-10000 100000}"
read -r -a intervals <<<"${3:-100ms 200ms 500ms}"
read -r -a extra <<<"${HR_LATENCY_JOB_FLAGS:-}"
timeline_dir=${HR_LATENCY_TIMELINE:-}
if [[ -n $timeline_dir ]]; then mkdir -p "$timeline_dir"; fi
patients=1000

# shellcheck source=examples/broker.sh
source examples/broker.sh

if [[ -n ${HR_BIN_DIR:-} ]]; then
  bin=$HR_BIN_DIR
  say "Using the binaries in $bin (HR_BIN_DIR): hr-pipeline, examples/latency."
else
  say "Building release binaries."
  cargo build --release -q -p hr-pipeline --bins
  cargo build --release -q --example latency
  bin=${CARGO_TARGET_DIR:-$repo/target}/release
fi
# A broker started here is warmed up with these binaries with HR_KAFKA_WARMUP_JOB=1 (kafka-local.sh).
export HR_BIN_DIR=$bin

use_broker
work=$(mktemp -d)
job_pid=
made_topics=()
made_groups=()
cleanup() {
  if [[ -n $job_pid ]]; then
    pkill -KILL -P "$job_pid" 2>/dev/null || true
    kill -KILL "$job_pid" 2>/dev/null || true
  fi
  # The run's topics and groups go: left, each configuration's six would pile up on the broker.
  if ((${#made_topics[@]} > 0)); then
    local groups=()
    for g in "${made_groups[@]}"; do groups+=(--group "$g"); done
    "$bin/examples/latency" --bootstrap "$bootstrap" delete "${made_topics[@]}" "${groups[@]}" ||
      say "Deleting this run's topics and groups failed (above): ${made_topics[*]} ${made_groups[*]}"
  fi
  rm -rf "$work"
  stop_started_broker
}
trap cleanup EXIT

# Builds with HTTP endpoints would bind a port another job may hold: off here.
http=()
if "$bin/hr-pipeline" run --help | grep -q -- '--http '; then http=(--http off); fi
run_id=$(date +%s)_$$
n=0
failed=0
printf '%-34s %9s %8s %8s %8s %8s %9s %11s\n' configuration readings/s windows p50_ms p99_ms max_ms "peak RSS" ack_p99_ms >"$work/table"
for rate in "${rates[@]}"; do
  configs=("at-least-once 200ms")
  for iv in "${intervals[@]}"; do configs+=("exactly-once $iv"); done
  for c in "${configs[@]}"; do
    read -r guarantee iv <<<"$c"
    n=$((n + 1))
    t=hr_latency_${run_id}_$n
    # The job's state changelog is named after its group.
    made_topics+=("$t" "${t}_alerts" "${t}_dlq" "${t}_late" "${t}_episodes" "hr-latency-$run_id-$n-changelog")
    made_groups+=("hr-latency-$run_id-$n")
    "$bin/hr-pipeline" topics --bootstrap "$bootstrap" --input-topic "$t" --alerts-topic "${t}_alerts" \
      --dlq-topic "${t}_dlq" --late-topic "${t}_late" --episodes-topic "${t}_episodes" >/dev/null
    say "$rate readings/s, $guarantee, commit interval $iv."
    : >"$work/job.err"
    RUST_LOG=hr_pipeline=info /usr/bin/time -f 'peak_kib=%M' -o "$work/time" \
      "$bin/hr-pipeline" run --bootstrap "$bootstrap" --input-topic "$t" --alerts-topic "${t}_alerts" \
      --dlq-topic "${t}_dlq" --late-topic "${t}_late" --episodes-topic "${t}_episodes" \
      --profiles-topic none --alerts-dir none --group "hr-latency-$run_id-$n" --size 1s --delay 0s \
      --guarantee "$guarantee" --commit-interval "$iv" "${http[@]}" "${extra[@]}" 2>"$work/job.err" >/dev/null &
    job_pid=$!
    for ((i = 0; i < 300; i++)); do
      grep -q 'Assigned\.' "$work/job.err" && break
      kill -0 "$job_pid" 2>/dev/null || { cat "$work/job.err" >&2; say "hr-pipeline exited."; exit 1; }
      sleep 0.1
    done
    grep -q 'Assigned\.' "$work/job.err" || { say "hr-pipeline got no partitions in 30 s."; exit 1; }
    verdict=
    timeline=()
    if [[ -n $timeline_dir ]]; then timeline=(--timeline "$timeline_dir/$n.timeline"); fi
    if ! "$bin/examples/latency" --bootstrap "$bootstrap" probe --topic "$t" --alerts-topic "${t}_alerts" \
      --rate "$rate" --patients "$patients" --size-ms 1000 --delay-ms 0 --seconds "$seconds" "${timeline[@]}" \
      >"$work/probe.out" 2>"$work/probe.err"; then
      cat "$work/probe.err" >&2
      verdict="  FAILED: $(sed 's/^latency: //' "$work/probe.err" | tail -n 1)"
      failed=$((failed + 1))
    fi
    # GNU time does not pass signals on: the job itself is told to stop, time reports its exit.
    kill -TERM "$(pgrep -P "$job_pid")"
    wait "$job_pid" || { tail -n 20 "$work/job.err" >&2; say "hr-pipeline failed."; exit 1; }
    job_pid=
    line=$(cat "$work/probe.out")
    echo "$line"
    field() { grep -o "\(^\| \)$1=[0-9.a-z]*" <<<"$line" | cut -d= -f2; }
    peak=$(grep -o 'peak_kib=[0-9]*' "$work/time" | cut -d= -f2)
    printf '%-34s %9s %8s %8s %8s %8s %6.0f MiB %11s%s\n' "$guarantee, commit $iv" "$(field rate)" \
      "$(field windows)" "$(field p50_ms)" "$(field p99_ms)" "$(field max_ms)" \
      "$(awk -v k="$peak" 'BEGIN {print k / 1024}')" "$(field ack_p99_ms)" "$verdict" >>"$work/table"
  done
done
echo
echo "$patients patients, 1 s tumbling windows, --delay 0s, ${seconds} s per configuration (the first 3 s not counted)"
cat "$work/table"
if ((failed > 0)); then
  say "$failed configurations left closed windows without an alert (the job fell behind or lost them)."
  exit 1
fi
