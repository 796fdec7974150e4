#!/usr/bin/env bash
# Scores the pipeline against the simulator's ground truth (`just score`): one standard scenario
# through the real broker and `hr-pipeline run --bounded`, scored by `hr-batch score`, first with
# the pipeline's defaults and then with a configuration tuned for a fast alarm.
#
#   examples/score.sh [--patients N] [--duration DUR] [--seed N] [--keep-topics] [--check]
#
#   --patients N     monitors (default 200), each reading once a second
#   --duration DUR   simulated time (default 2h; the simulator runs as fast as the broker takes it)
#   --seed N         the simulation's seed (default 1)
#   --keep-topics    leave this run's topics on the broker (by default they are deleted at the end)
#   --check          exit 1 if a target is missed (hr-batch score --check)
#
# The scenario: episodes of tachycardia and bradycardia about once per patient-hour, 10-30 s onset
# ramps, plateaus of 1.5 to 13 minutes (spans of about 2-15 minutes), 2 % of readings out of order by up to 4 s, and silences (0.5 per
# patient-hour, 20 s to 4 min) so that some are shorter than --silence-after and must not be
# required. Every run uses topics of its own (score-<run id>-*), deleted at the end with the
# broker's own Admin API (Kafka's client jar, on the local JVM) when the native broker is the one
# in use; otherwise they are left and named.
#
# Environment: HR_SCORE_DIR (truth, score tables, logs; default output/score), HR_BOOTSTRAP_SERVERS
# (a broker of your own), HR_KAFKA_PORT (the local broker's port), HR_KEEP_BROKER=1.
#
# The tuned configuration (HR_SCORE_TUNED overrides it): 10 s sliding windows every 1 s, 3 s
# out-of-orderness (the simulator's out-of-order bound is set to 2.5 s for both runs), raised after
# 2 windows, cleared after 10, at least 8 readings per window.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

patients=200
duration=2h
seed=1
keep_topics=0
check=()
while (($#)); do
  case $1 in
    --patients) patients=$2 && shift ;;
    --duration) duration=$2 && shift ;;
    --seed) seed=$2 && shift ;;
    --keep-topics) keep_topics=1 ;;
    --check) check=(--check) ;;
    -h | --help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' && exit 0 ;;
    *) echo "score: unknown argument '$1' (try --help)" >&2 && exit 2 ;;
  esac
  shift
done

# shellcheck source=examples/broker.sh
source examples/broker.sh
use_broker

dir=${HR_SCORE_DIR:-$repo/output/score}
run=score-$(date +%s)-$$
mkdir -p "$dir"
rm -f "$dir"/*.txt "$dir"/*.csv "$dir"/*.log "$dir"/truth*.json

say "Building hr-sim and hr-pipeline (release) and hr-batch."
cargo build -q --release -p hr-sim -p hr-pipeline
# Scoring reads a few thousand records: a debug build is enough, and spares a release Polars build.
cargo build -q -p hr-batch
bin=${CARGO_TARGET_DIR:-$repo/target}/release
batch=${CARGO_TARGET_DIR:-$repo/target}/debug/hr-batch

input=$run-events
topics=("$input" "$run-steps")
for config in default tuned steps; do
  topics+=("$run-$config-alerts" "$run-$config-episodes" "$run-$config-dlq" "$run-$config-late"
    "$run-$config-changelog")
done

delete_topics() {
  ((keep_topics)) && { say "Topics kept: ${topics[*]}." && return; }
  local lib=${HR_KAFKA_LIB:-${HR_KAFKA_STATE:-$repo/.kafka}/lib}
  if [[ -n ${HR_BOOTSTRAP_SERVERS:-} ]] || ! compgen -G "$lib/kafka-clients-*.jar" >/dev/null ||
    ! command -v java >/dev/null; then
    say "Topics left on $bootstrap (no local Kafka client jar to delete them): ${topics[*]}."
    return
  fi
  local src
  src=$(mktemp -d)/DeleteTopics.java
  cat >"$src" <<'EOF'
import java.util.*;
import org.apache.kafka.clients.admin.*;
public class DeleteTopics {
  public static void main(String[] a) throws Exception {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a[0]);
    try (Admin admin = Admin.create(p)) {
      List<String> names = new ArrayList<>(Arrays.asList(a).subList(1, a.length));
      names.retainAll(admin.listTopics().names().get());
      admin.deleteTopics(names).all().get();
      System.out.println(names.size());
    }
  }
}
EOF
  local n
  if n=$(java -cp "$lib/*" -Dorg.slf4j.simpleLogger.defaultLogLevel=off "$src" "$bootstrap" \
    "${topics[@]}" 2>"$dir/delete-topics.log"); then
    say "Deleted this run's $n topics."
  else
    say "Could not delete this run's topics (see $dir/delete-topics.log): ${topics[*]}."
  fi
  rm -rf "$(dirname "$src")"
}
cleanup() {
  delete_topics
  stop_started_broker
}
trap cleanup EXIT

say "Topics for this run: $run-*."
"$bin/hr-pipeline" topics --bootstrap "$bootstrap" --partitions 4 --retention forever --input-topic "$input" \
  --alerts-topic "$run-default-alerts" --episodes-topic "$run-default-episodes" \
  --dlq-topic "$run-default-dlq" --late-topic "$run-default-late" --profiles-topic none >/dev/null

say "Monitors: $patients patients for $duration of simulated time (seed $seed)."
"$bin/hr-sim" --bootstrap "$bootstrap" --topic "$input" --start 2025-11-19T07:00:00Z \
  --duration "$duration" --patients "$patients" --rate "$patients" --seed "$seed" --no-progress \
  --episode-rate 1 --brady-share 0.3 --onset 20s --plateau 90s..13m --recovery 60s \
  --out-of-order 0.02 --out-of-order-max 2500ms \
  --silence-rate 0.5 --silence-duration 20s..4m \
  --truth "$dir/truth.json" 2>"$dir/sim.log"
tail -n 1 "$dir/sim.log" >&2

# Runs the job over the whole of an input topic with the flags given, then scores its episodes.
#   score_run NAME INPUT TRUTH WINDOW DELAY [hr-pipeline flags...]
score_run() {
  local name=$1 input=$2 truth=$3 window=$4 delay=$5
  shift 5
  say "Pipeline ($name): ${*:-the defaults}."
  local started=$SECONDS
  # Outputs carry 2025 window ends as Kafka timestamps: kept forever, or the broker's retention
  # check deletes them before they are scored.
  "$bin/hr-pipeline" topics --bootstrap "$bootstrap" --partitions 4 --retention forever \
    --input-topic "$input" --alerts-topic "$run-$name-alerts" --episodes-topic "$run-$name-episodes" \
    --dlq-topic "$run-$name-dlq" --late-topic "$run-$name-late" --profiles-topic none >/dev/null
  RUST_LOG=${RUST_LOG:-warn} "$bin/hr-pipeline" run --bounded --bootstrap "$bootstrap" \
    --group "$run-$name" --input-topic "$input" --alerts-topic "$run-$name-alerts" \
    --episodes-topic "$run-$name-episodes" --dlq-topic "$run-$name-dlq" \
    --late-topic "$run-$name-late" --profiles-topic none --alerts-dir none \
    --partition-silence-after off "$@" 2>"$dir/pipeline-$name.log"
  say "Pipeline ($name) done in $((SECONDS - started)) s. Score:"
  local status=0
  "$batch" score --truth "$truth" --episodes "kafka:$run-$name-episodes" \
    --bootstrap "$bootstrap" --window "$window" --delay "$delay" "${check[@]}" "${limits[@]}" \
    | tee "$dir/score-$name.txt" || status=$?
  "$batch" score --truth "$truth" --episodes "kafka:$run-$name-episodes" \
    --bootstrap "$bootstrap" --window "$window" --delay "$delay" --format csv \
    >"$dir/score-$name.csv"
  return "$status"
}

failed=0
# Targets with the defaults: every required episode and silence, no false raised, median delay
# at most window + out-of-orderness + 10 s.
limits=(${check[@]:+--max-median-delay 75s})
score_run default "$input" "$dir/truth.json" 60s 5s || failed=1

# shellcheck disable=SC2206
tuned=(${HR_SCORE_TUNED:---window sliding --size 10s --slide 1s --delay 3s --raise-after 2 --clear-after 10 --min-readings 8})
limits=()
score_run tuned "$input" "$dir/truth.json" 10s 3s "${tuned[@]}" || failed=1

# Time to alarm on abrupt steps (IEC 60601-2-27 asks for an alarm within 11 s of an 80 -> 120 bpm
# step): the same monitors, episodes with no onset ramp, scored with the tuned configuration.
# Target: every rate-episode delay at most 11 s + the 3 s out-of-orderness bound.
"$bin/hr-pipeline" topics --bootstrap "$bootstrap" --partitions 4 --retention forever --input-topic "$run-steps" \
  --alerts-topic "$run-steps-alerts" --episodes-topic "$run-steps-episodes" \
  --dlq-topic "$run-steps-dlq" --late-topic "$run-steps-late" --profiles-topic none >/dev/null
say "Monitors for the step check: $patients patients, 30 min, episodes that start at full rate."
"$bin/hr-sim" --bootstrap "$bootstrap" --topic "$run-steps" --start 2025-11-19T07:00:00Z \
  --duration 30m --patients "$patients" --rate "$patients" --seed "$seed" --no-progress \
  --episode-rate 2 --brady-share 0.3 --onset 0s --plateau 90s..5m --recovery 60s \
  --out-of-order 0.02 --out-of-order-max 2500ms --truth "$dir/truth-steps.json" 2>"$dir/sim-steps.log"
limits=(${check[@]:+--max-delay 14s})
score_run steps "$run-steps" "$dir/truth-steps.json" 10s 3s "${tuned[@]}" || failed=1

say "Tables: $dir/score-{default,tuned,steps}.txt (CSV next to them); truth $dir/truth.json and $dir/truth-steps.json."
exit "$failed"
