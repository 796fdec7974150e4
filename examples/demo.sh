#!/usr/bin/env bash
# The whole system in one command (`just demo`): a local broker, simulated monitors in real time with
# tachycardia and bradycardia episodes and a few bad records, the streaming job, a live view of the
# alerts, and at the end the batch report over the alert files.
#
#   HR_DEMO_DURATION  seconds to run (default 130: a few 1-minute windows close)
#   HR_DEMO_WINDOW    window size (default 60s; 10s for a quick look)
#   HR_DEMO_DIR       where the alert files and the report go (default output/demo)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
duration=${HR_DEMO_DURATION:-130}
window=${HR_DEMO_WINDOW:-60s}
dir=${HR_DEMO_DIR:-$repo/output/demo}
bootstrap=${HR_BOOTSTRAP_SERVERS:-localhost:${HR_KAFKA_PORT:-9092}}
run_id=$(date +%s)
topic=heart_rate_events_demo_$run_id

say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }

docker/kafka-local.sh up
say "Building the binaries."
cargo build -q -p hr-sim -p hr-pipeline -p hr-batch --example alert_view
bin=${CARGO_TARGET_DIR:-$repo/target}/debug

rm -rf "$dir"
mkdir -p "$dir/alerts"
# A topic of its own per demo run, so earlier runs' readings never mix in.
"$bin/hr-pipeline" topics --bootstrap "$bootstrap" --input-topic "$topic" >/dev/null

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'say "Stopping."; stop=1' INT TERM

say "Starting the streaming job ($window tumbling windows, 5 s out-of-orderness)."
RUST_LOG=${RUST_LOG:-warn} "$bin/hr-pipeline" run --bootstrap "$bootstrap" --input-topic "$topic" \
  --group "hr-demo-$run_id" --from-beginning --size "$window" --alerts-dir "$dir/alerts" \
  2>"$dir/pipeline.log" &
pipeline=$!
pids+=("$pipeline")

say "Starting 8 monitors in real time, with episodes and 2 % malformed records."
RUST_LOG=${RUST_LOG:-warn} "$bin/hr-sim" --bootstrap "$bootstrap" --topic "$topic" --patients 8 --rate 16 \
  --seed "$run_id" --episode-rate 40 --brady-share 0.5 --onset 5s --plateau 90s --recovery 5s \
  --malformed 0.02 --truth "$dir/truth.json" 2>"$dir/sim.log" &
sim=$!
pids+=("$sim")

say "Alerts as their windows close (Ctrl-C to stop early; stops by itself after ${duration}s):"
(tail -n +1 -F "$dir/alerts" 2>/dev/null | "$bin/examples/alert_view") &
view=$!
pids+=("$view")
# tail -F on a directory does not follow new files: follow the job's file once it exists.
for _ in $(seq 1 50); do
  file=$(ls "$dir"/alerts/*.jsonl 2>/dev/null | head -n 1 || true)
  [[ -n $file ]] && break
  sleep 0.2
done
kill "$view" 2>/dev/null || true
if [[ -n ${file:-} ]]; then
  (tail -n +1 -F "$file" 2>/dev/null | "$bin/examples/alert_view") &
  view=$!
  pids+=("$view")
fi

stop=0
for _ in $(seq 1 "$duration"); do
  [[ $stop == 1 ]] && break
  kill -0 "$pipeline" 2>/dev/null || { say "The streaming job stopped; its log: $dir/pipeline.log"; exit 1; }
  sleep 1
done

say "Stopping the monitors, then the job (it writes what is ready and commits)."
kill -TERM "$sim" 2>/dev/null || true
wait "$sim" || true
kill -TERM "$pipeline" 2>/dev/null || true
status=0
wait "$pipeline" || status=$?
sleep 1
kill "$view" 2>/dev/null || true
wait "$view" 2>/dev/null || true
pids=()
[[ $status == 0 ]] || { say "The streaming job exited with $status; its log: $dir/pipeline.log"; exit 1; }

say "Alert report (hr-batch):"
"$bin/hr-batch" --input "$dir/alerts" --output "$dir/alert_stats"
say "Files: alerts $dir/alerts, report $dir/alert_stats, ground truth $dir/truth.json, logs $dir/*.log."
