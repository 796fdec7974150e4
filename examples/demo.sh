#!/usr/bin/env bash
# The whole system in one command (`just demo`): a Kafka broker, simulated monitors in real time with
# tachycardia and bradycardia episodes, an unplugged monitor and a few malformed records, the streaming
# job, a live view of the alerts as their windows close with the episodes raised and cleared and the
# signal lost and restored between them (in the terminal, and in the browser: the ward dashboard, whose
# URL it prints), and at the end the episodes by kind and the batch report over the alert files.
#
#   examples/demo.sh [--quick] [--duration SECONDS] [--window DURATION] [--seed N] [--no-dashboard]
#
#   --quick            10 s windows for 45 s, with short episodes (a look in under a minute)
#   --duration SECS    how long the monitors run (default 150: two or three 1-minute windows close)
#   --window DUR       tumbling window size (default 60s, the seed's)
#   --seed N           the simulation's seed (default 1: the same episodes every run)
#   --no-dashboard     the terminal view only, no hr-dashboard
#
# Environment: HR_DEMO_DIR (where alerts, report, ground truth and logs go; default output/demo),
# HR_BOOTSTRAP_SERVERS (use this broker instead of the local one), HR_KAFKA_PORT (local broker port),
# HR_KEEP_BROKER=1 (leave a broker this demo started running), HR_DASHBOARD_LISTEN (the dashboard's
# address, default 127.0.0.1:8090), NO_COLOR=1.
#
# Ctrl-C stops early, and still stops everything cleanly and prints the report.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

duration=150
window=60s
seed=1
dashboard=1
episodes=(--episode-rate 40 --onset 10s --plateau 150s --recovery 10s)
# One monitor is unplugged mid-run: signal loss, then restored when it sends again.
unplug=(--unplug p003@40s+60s)
silence=30s
while (($#)); do
  case $1 in
    --quick)
      duration=45 window=10s
      episodes=(--episode-rate 240 --onset 2s --plateau 25s --recovery 2s)
      unplug=(--unplug p003@8s+20s)
      silence=8s
      ;;
    --duration) duration=$2 && shift ;;
    --window) window=$2 && shift ;;
    --seed) seed=$2 && shift ;;
    --no-dashboard) dashboard=0 ;;
    -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' && exit 0 ;;
    *) echo "demo: unknown argument '$1' (try --help)" >&2 && exit 2 ;;
  esac
  shift
done
dir=${HR_DEMO_DIR:-$repo/output/demo}
run_id=$(date +%s)
topic=heart_rate_events_demo_$run_id
# Episodes too go to a topic of this run's own, so the view and the summary count only this run's.
episodes_topic=heart_rate_episodes_demo_$run_id

# shellcheck source=examples/broker.sh
source examples/broker.sh
use_broker

say "Building the binaries (the first build takes a few minutes)."
cargo build -q -p hr-sim -p hr-pipeline -p hr-batch -p hr-dashboard -p hr-stream --bins --example alert_view
bin=${CARGO_TARGET_DIR:-$repo/target}/debug

rm -rf "$dir"
mkdir -p "$dir/alerts"
# An input topic of its own per run, so no earlier run's readings mix in; alerts go to the usual topic.
"$bin/hr-pipeline" topics --bootstrap "$bootstrap" --input-topic "$topic" --episodes-topic "$episodes_topic" >/dev/null

pids=()
# Whatever happens, nothing this demo started outlives it.
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_started_broker
}
trap cleanup EXIT
stop=0
trap 'stop=1' INT TERM

# Waits up to $2 seconds for process $1 to exit, then kills it; returns its exit status.
stop_within() {
  local pid=$1 i status=0
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || status=$?
  return "$status"
}

say "Streaming job: $window tumbling windows per patient, 5 s out-of-orderness, every window an alert,"
say "episodes to heart_rate_episodes, signal loss after $silence without a reading."
RUST_LOG=${RUST_LOG:-info} "$bin/hr-pipeline" run --bootstrap "$bootstrap" --input-topic "$topic" \
  --group "hr-demo-$run_id" --size "$window" --silence-after "$silence" --alerts-dir "$dir/alerts" \
  --episodes-topic "$episodes_topic" 2>"$dir/pipeline.log" &
pipeline=$!
pids+=("$pipeline")

dash=
if ((dashboard)); then
  # Only this run's alerts: the alerts topic also holds earlier runs'.
  RUST_LOG=${RUST_LOG:-info} "$bin/hr-dashboard" --bootstrap "$bootstrap" --from-beginning false \
    --episodes-topic "$episodes_topic" \
    --listen "${HR_DASHBOARD_LISTEN:-127.0.0.1:8090}" >"$dir/dashboard.out" 2>"$dir/dashboard.log" &
  dash=$!
  pids+=("$dash")
  url=
  for ((i = 0; i < 100; i++)); do
    url=$(sed -n 's/^hr-dashboard: serving \(http[^ ]*\).*/\1/p' "$dir/dashboard.out")
    [[ -n $url ]] && break
    kill -0 "$dash" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n $url ]]; then
    say "Live ward dashboard: $url (open it in a browser; tiles appear as windows close)."
  else
    say "The dashboard did not start, the demo goes on without it: $(tail -n 1 "$dir/dashboard.log")"
  fi
fi

say "Monitors: 8 patients, 2 readings a second each, episodes of tachycardia and bradycardia, 2 % malformed;"
say "p003's monitor is unplugged for a while (${unplug[1]})."
RUST_LOG=${RUST_LOG:-warn} "$bin/hr-sim" --bootstrap "$bootstrap" --topic "$topic" --patients 8 --rate 16 \
  --seed "$seed" "${episodes[@]}" "${unplug[@]}" --brady-share 0.5 --malformed 0.02 --truth "$dir/truth.json" \
  2>"$dir/sim.log" &
sim=$!
pids+=("$sim")

say "Alerts appear as their windows close ($window + 5 s after they start), with episodes raised and cleared"
say "and signal lost and restored between them. Running ${duration}s; Ctrl-C stops early."
"$bin/examples/alert_view" --follow "$dir/alerts" --episodes-topic "$episodes_topic" --bootstrap "$bootstrap" &
view=$!
pids+=("$view")

for ((t = 0; t < duration && !stop; t++)); do
  if ! kill -0 "$pipeline" 2>/dev/null; then
    say "The streaming job stopped early; its log is $dir/pipeline.log:"
    tail -n 20 "$dir/pipeline.log" >&2
    exit 1
  fi
  sleep 1
done

say "Stopping the monitors, then the job (it writes the alerts that are ready and commits its offsets)."
kill -TERM "$sim" 2>/dev/null || true
stop_within "$sim" 10 || true
kill -TERM "$pipeline" 2>/dev/null || true
status=0
stop_within "$pipeline" 30 || status=$?
# The view polls the files every 200 ms: give it the job's last alerts and episodes before it goes.
sleep 1
kill -TERM "$view" 2>/dev/null || true
stop_within "$view" 5 || true
if [[ -n $dash ]]; then
  kill -TERM "$dash" 2>/dev/null || true
  stop_within "$dash" 10 || true
fi
pids=()
if ((status != 0)); then
  say "The streaming job exited with status $status; its log is $dir/pipeline.log."
  exit 1
fi
# The job's last log line: `Exit. read=...` (formerly `exit read=...`).
counters=$(grep -E ' [Ee]xit\.? read=' "$dir/pipeline.log" | tail -n 1 | sed -E 's/^.* [Ee]xit\.? //' || true)
say "The job's counters: ${counters:-none logged (see $dir/pipeline.log)}."
# Lines of `<kind> raised=N cleared=M`, read from this run's episodes topic to its end.
if episodes=$("$bin/examples/alert_view" --count-episodes --episodes-topic "$episodes_topic" \
  --bootstrap "$bootstrap" 2>>"$dir/pipeline.log"); then
  summary=$(awk '{ split($2, r, "="); split($3, c, "="); k = $1; sub("_", " ", k);
    printf "%s%s %d raised, %d cleared", (NR > 1 ? "; " : ""), k, r[2], c[2] }' <<<"$episodes")
  say "Episodes: $summary."
else
  say "Could not count this run's episodes (see $dir/pipeline.log)."
fi

say "Alert report (hr-batch, the seed's Spark step):"
POLARS_FMT_MAX_ROWS=${POLARS_FMT_MAX_ROWS:-100} POLARS_TABLE_WIDTH=${POLARS_TABLE_WIDTH:-200} \
  "$bin/hr-batch" --input "$dir/alerts" --output "$dir/alert_stats"
"$bin/hr-batch" --quiet --input "$dir/alerts" --output "$dir/alert_stats.csv"
# The topics this run made for itself go: its input topic and its group's changelog.
"$bin/hr-pipeline" topics --bootstrap "$bootstrap" --delete "$topic" --delete "$episodes_topic" \
  --delete "hr-demo-$run_id-changelog" >/dev/null 2>&1 ||
  say "Could not delete this run's topics $topic, $episodes_topic and hr-demo-$run_id-changelog."
say "Files: alerts $dir/alerts/, report $dir/alert_stats/ (Parquet) and $dir/alert_stats.csv,"
say "ground truth $dir/truth.json, logs $dir/pipeline.log, $dir/sim.log${dash:+ and $dir/dashboard.log}."
