#!/usr/bin/env bash
# Faults on a replicated cluster (`just chaos-cluster`): a 3-node KRaft cluster of the script's own
# (docker/kafka-cluster.sh: replication 3, min ISR 2, unclean election off) and three hr-pipeline
# instances in one group, exactly-once, while hr-sim produces readings in real time. One scenario
# at a time, each on fresh topics and groups:
#   leader      kill -9 of the broker leading the most input and changelog partitions, restarted 30 s later
#   controller  kill -9 of the active KRaft controller, restarted 30 s later
#   wipe        a replaced machine: a broker killed, its data directory deleted, started empty
#   rolling     a rolling restart: each broker stopped and started in turn, waited back into the ISR
#   cut-broker  (netns) one broker cut off from the others and from the clients for 30 s
#   cut-instance (netns) one pipeline instance cut off from the cluster for 30 s while it runs on
# After the feed the instances are stopped with SIGTERM (the time each takes is reported), one
# `--bounded` run in the same group finishes the windows, and an uninterrupted `--bounded` run of
# its own group on the same input gives the baseline. Alerts, episodes, dead letters, late records
# (read_committed) and the alert files are compared record by record (examples/compare_runs.py):
# 0 missing, 0 extra, 0 duplicate, 0 wrong, and no instance may exit by itself. From a
# read_committed watch of the alerts topic it reports, per input partition, the longest time
# without alerts from the fault on: for partitions whose leader was on the faulted node (marked
# moved) that is the time until alerts flow again.
#
#   examples/chaos-cluster.sh [SCENARIO...]   (default: every scenario the machine allows)
#   CHAOS_READINGS per scenario (180000), CHAOS_RATE readings/s (3000), CHAOS_SEED (random),
#   CHAOS_OUTAGE seconds a node stays down or cut (30), HR_BIN_DIR=DIR uses binaries built earlier
#   (hr-sim, hr-pipeline, examples/latency), CHAOS_KEEP=1 keeps the work directory.
#   HR_CLUSTER_NET=netns|loopback as docker/kafka-cluster.sh (the cut scenarios need netns).
# Exit 1 on any discrepancy or any instance that exited by itself.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
readings=${CHAOS_READINGS:-180000}
rate=${CHAOS_RATE:-3000}
seed=${CHAOS_SEED:-$((RANDOM * 32768 + RANDOM))}
outage=${CHAOS_OUTAGE:-30}
partitions=6
session_ms=6000
RANDOM=$seed

say() { printf '\033[1m%s:\033[0m %s\n' "${0##*/}" "$*" >&2; }
die() { say "$*"; exit 1; }

work=$(mktemp -d -t hr-chaos-cluster.XXXXXX)
export HR_CLUSTER_STATE=$work/cluster HR_KAFKA_HEAP=${HR_KAFKA_HEAP:-512m}
export HR_KAFKA_LIB=${HR_KAFKA_LIB:-$repo/.kafka/lib}
cluster() { docker/kafka-cluster.sh "$@"; }

declare -A pid=()
sim_pid='' watch_pid=''
cleanup() {
  local p
  for p in "${pid[@]}" $sim_pid $watch_pid; do
    kill -CONT "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  cluster down >/dev/null 2>&1 || true
  if [[ -n ${CHAOS_KEEP:-} ]]; then say "Logs and dumps kept in $work."; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [[ -n ${HR_BIN_DIR:-} ]]; then
  bin=$HR_BIN_DIR
else
  say "Building release binaries."
  cargo build --release -q -p hr-sim -p hr-pipeline --bins
  cargo build --release -q --example latency
  bin=${CARGO_TARGET_DIR:-$repo/target}/release
fi

say "Starting a 3-node cluster of its own (state $HR_CLUSTER_STATE); seed $seed."
cluster up
net=$(cat "$HR_CLUSTER_STATE/net")
bootstrap=$(cluster bootstrap)
export HR_BOOTSTRAP_SERVERS=$bootstrap

scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
  scenarios=(leader controller wipe rolling)
  [[ $net == netns ]] && scenarios+=(cut-broker cut-instance)
fi
for s in "${scenarios[@]}"; do
  case $s in
    leader | controller | wipe | rolling) ;;
    cut-broker | cut-instance) [[ $net == netns ]] || die "Scenario $s needs the netns mode (root and 'ip netns'); this cluster runs on loopback." ;;
    *) die "Unknown scenario '$s' (leader, controller, wipe, rolling, cut-broker, cut-instance)." ;;
  esac
done

now_ms() { date +%s%3N; }

# The node leading the most partitions of the given topics.
busiest_leader() {
  local t
  for t in "$@"; do cluster leaders "$t"; done | awk '$2 > 0 {n[$2]++} END {best=-1; for (k in n) if (n[k] > best) {best=n[k]; id=k}; print id}'
}

# Input partitions led by node $1 now.
led_by() { cluster leaders "$in" | awk -v n="$1" '$2 == n {print $1}' | paste -sd, -; }

start_instance() { # start_instance SLOT [HOST]
  local s=$1 host=${2:-} cmd
  cmd=("$bin/hr-pipeline" run --group "$group" "${job_flags[@]}" "${out_flags[@]}" --alerts-dir "$work/files-$scenario/$s")
  if [[ -n $host ]]; then cmd=(docker/kafka-cluster.sh exec "$host" -- env RUST_LOG=hr_pipeline=info "${cmd[@]}"); fi
  RUST_LOG=hr_pipeline=info "${cmd[@]}" >>"$work/$scenario-instance-$s.log" 2>&1 &
  pid[$s]=$!
}

reap() {
  local s st
  for s in "${!pid[@]}"; do
    kill -0 "${pid[$s]}" 2>/dev/null && continue
    st=0
    wait "${pid[$s]}" 2>/dev/null || st=$?
    say "Instance $s exited by itself with status $st (see $work/$scenario-instance-$s.log); restarting it."
    unexpected=$((unexpected + 1))
    start_instance "$s"
  done
}

pause() { local end=$((SECONDS + $1)); while ((SECONDS < end)); do sleep 1; reap; done; }

fault() { # the scenario's fault; sets fault_at (ms), node (the faulted node, or empty) and moved
  node='' moved=''
  case $scenario in
    leader)
      node=$(busiest_leader "$in" "$group-changelog")
      moved=$(led_by "$node")
      fault_at=$(now_ms)
      say "kill -9 of node $node, leader of input partitions [$moved]."
      cluster kill "$node"
      pause "$outage"
      cluster start "$node" ;;
    controller)
      node=$(cluster controller)
      moved=$(led_by "$node")
      fault_at=$(now_ms)
      say "kill -9 of node $node, the active controller (leader of input partitions [$moved])."
      cluster kill "$node"
      pause "$outage"
      cluster start "$node" ;;
    wipe)
      node=$((1 + RANDOM % 3))
      moved=$(led_by "$node")
      fault_at=$(now_ms)
      say "Node $node replaced: killed, its data deleted, started empty (leader of input partitions [$moved])."
      cluster wipe "$node"
      pause 10
      cluster start "$node"
      cluster wait-isr all 180 ;;
    rolling)
      fault_at=$(now_ms)
      local n
      for n in 1 2 3; do
        say "Rolling restart: node $n."
        cluster stop "$n"
        cluster start "$n"
        cluster wait-isr all 180
        reap
      done ;;
    cut-broker)
      node=$((1 + RANDOM % 3))
      moved=$(led_by "$node")
      fault_at=$(now_ms)
      say "Node $node cut off for $outage s (leader of input partitions [$moved])."
      cluster cut "$node"
      pause "$outage"
      cluster heal "$node"
      cluster wait-isr all 180 ;;
    cut-instance)
      fault_at=$(now_ms)
      say "Instance 3 (host chaos) cut off from the cluster for $outage s, running on."
      cluster cut chaos
      pause "$outage"
      cluster heal chaos ;;
  esac
  reap
}

# Per input partition: the longest time without a visible alert from 2 s before the fault until
# the end of the feed, and where it started.
stalls() {
  python3 - "$work/$scenario.watch" "$fault_at" "$feed_end" "$moved" "$partitions" <<'PY'
import sys
path, fault, end, moved, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
moved = {int(p) for p in moved.split(",") if p}
times = {p: [] for p in range(n)}
for line in open(path):
    f = line.split()
    if len(f) >= 3:
        times.setdefault(int(f[2]), []).append(int(f[0]))
rows = []
for p in sorted(times):
    ts = sorted(t for t in times[p] if fault - 2000 <= t <= end)
    edges = [fault - 2000] + ts + [end]
    gap, at = max((b - a, a) for a, b in zip(edges, edges[1:]))
    rows.append((p, p in moved, gap, at - fault))
print("partition  leader_moved  longest_without_alerts_s  starting_s_after_fault")
for p, m, gap, at in rows:
    print(f"{p:>9}  {'yes' if m else 'no':>12}  {gap / 1000:>24.1f}  {at / 1000:>22.1f}")
still = [g for p, m, g, _ in rows if not m]
went = [g for p, m, g, _ in rows if m]
print(f"summary: not moved max {max(still) / 1000 if still else 0:.1f} s; moved max {max(went) / 1000 if went else 0:.1f} s")
PY
}

failed=0
unexpected=0
report=$work/report
: >"$report"
for scenario in "${scenarios[@]}"; do
  run_id=$(date +%s)
  in=cc_in_${scenario//-/_}_$run_id
  group=cc-$scenario-$run_id
  names() { echo --alerts-topic "cc_alerts$1_$run_id" --dlq-topic "cc_dlq$1_$run_id" --late-topic "cc_late$1_$run_id" --episodes-topic "cc_episodes$1_$run_id"; }
  # shellcheck disable=SC2046
  "$bin/hr-pipeline" topics --partitions "$partitions" --retention forever --input-topic "$in" --profiles-topic none $(names "") >/dev/null
  # shellcheck disable=SC2046
  "$bin/hr-pipeline" topics --partitions "$partitions" --retention forever --input-topic "$in" --profiles-topic none $(names _base) >/dev/null
  # 1-second windows, so a stall shows at a one-second resolution; the processing-time rule for a
  # whole quiet partition off (an outage would fire windows early in one run and not the other).
  job_flags=(--input-topic "$in" --profiles-topic none --size 1s --partition-silence-after off
    --broker-timeout 5m --http off -X "session.timeout.ms=$session_ms" -X heartbeat.interval.ms=1000)
  read -r -a out_flags <<<"$(names "")"
  unexpected_before=$unexpected

  say "[$scenario] Producing $readings readings at $rate/s into $in; three instances in group $group."
  "$bin/examples/latency" watch --topic "cc_alerts_$run_id" --input-partitions "$partitions" --out "$work/$scenario.watch" 2>>"$work/$scenario-watch.log" &
  watch_pid=$!
  "$bin/hr-sim" --topic "$in" --patients 2000 --rate "$rate" --events "$readings" --seed "$seed" \
    --malformed 0.002 --out-of-order 0.01 --late 0.0005 --late-delay 30s \
    -X message.timeout.ms=0 >"$work/$scenario-sim.log" 2>&1 &
  sim_pid=$!
  start_instance 1
  start_instance 2
  if [[ $scenario == cut-instance ]]; then
    cluster host add chaos >/dev/null
    start_instance 3 chaos
  else
    start_instance 3
  fi
  pause 20
  # Topics the project made take the cluster's default replication factor (3), min ISR 2.
  for t in "$in" "$group-changelog" "cc_alerts_$run_id"; do
    replicas=$(cluster leaders "$t" | awk '{n = split($3, r, ","); if (min == "" || n < min) min = n} END {print min}')
    echo "$t: $replicas replicas" >>"$work/$scenario.replication"
    [[ $replicas == 3 ]] || { say "[$scenario] $t has $replicas in-sync replicas, not the cluster's 3."; failed=1; }
  done
  fault
  while kill -0 "$sim_pid" 2>/dev/null; do pause 1; done
  wait "$sim_pid" || die "[$scenario] hr-sim failed (see $work/$scenario-sim.log)."
  sim_pid=''
  feed_end=$(now_ms)
  pause 8
  stop_s=()
  for s in "${!pid[@]}"; do
    t0=$(now_ms)
    kill -TERM "${pid[$s]}" 2>/dev/null || true
    # SIGTERM must end an instance within seconds in every state; 60 s is a failure.
    for ((i = 0; i < 600; i++)); do kill -0 "${pid[$s]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${pid[$s]}" 2>/dev/null; then
      say "[$scenario] Instance $s did not stop within 60 s of SIGTERM; killing it."
      kill -KILL "${pid[$s]}" 2>/dev/null || true
      unexpected=$((unexpected + 1))
    fi
    st=0
    wait "${pid[$s]}" 2>/dev/null || st=$?
    stop_s+=("$(awk -v ms=$(($(now_ms) - t0)) 'BEGIN {printf "%.1f", ms / 1000}')")
    # A stop while Kafka does not answer exits 1 (its last commit could not be made; the next
    # owner redoes that work): reported, and the comparison says whether anything was lost.
    ((st == 0)) || say "[$scenario] Instance $s exited with status $st on SIGTERM (see $work/$scenario-instance-$s.log)."
    unset "pid[$s]"
  done
  [[ $scenario == cut-instance ]] && cluster host del chaos >/dev/null 2>&1 || true
  kill -TERM "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  watch_pid=''

  # An instance stopped with a commit in flight leaves its alert-file part staged with the
  # transaction's witness; the next start in that directory settles it. The finishing run
  # is that start for each such directory (the first one also reads what is left).
  finish_dirs=("$work/files-$scenario/final")
  in_doubt=0
  for d in "$work/files-$scenario"/*/; do
    n=$(find "$d" -maxdepth 1 -name '.alerts-*.inprogress.witness' | wc -l)
    if ((n > 0)); then in_doubt=$((in_doubt + n)); finish_dirs+=("${d%/}"); fi
  done
  ((in_doubt == 0)) || say "[$scenario] $in_doubt alert-file part(s) were left in doubt at stop; the next start in their directory settles them."
  for d in "${finish_dirs[@]}"; do
    RUST_LOG=hr_pipeline=info "$bin/hr-pipeline" run --group "$group" --bounded "${job_flags[@]}" "${out_flags[@]}" \
      --alerts-dir "$d" >>"$work/$scenario-final.log" 2>&1 ||
      { tail -n 20 "$work/$scenario-final.log" >&2; die "[$scenario] The finishing run failed."; }
  done
  left=$(find "$work/files-$scenario" -name '.alerts-*.inprogress*' | wc -l)
  # shellcheck disable=SC2046
  RUST_LOG=hr_pipeline=info "$bin/hr-pipeline" run --group "$group-base" --bounded "${job_flags[@]}" $(names _base) \
    --alerts-dir "$work/files-$scenario-base" >"$work/$scenario-base.log" 2>&1 ||
    { tail -n 20 "$work/$scenario-base.log" >&2; die "[$scenario] The baseline run failed."; }
  for t in alerts dlq late episodes; do
    "$bin/examples/latency" dump "cc_${t}_$run_id" >"$work/$t.chaos.jsonl"
    "$bin/examples/latency" dump "cc_${t}_base_$run_id" >"$work/$t.base.jsonl"
  done
  cat "$work/files-$scenario"/*/alerts-*.jsonl >"$work/files.chaos.jsonl" 2>/dev/null || : >"$work/files.chaos.jsonl"
  cat "$work/files-$scenario-base"/alerts-*.jsonl >"$work/files.base.jsonl"
  python3 examples/compare_runs.py "$work" exactly-once alerts episodes dlq late files >"$work/$scenario.table"
  bad=$(grep -o 'discrepancies=[0-9]*' "$work/$scenario.table" | cut -d= -f2)
  exited=$((unexpected - unexpected_before))
  {
    echo "== $scenario: $readings readings at $rate/s, $partitions partitions, 3 instances, exactly-once, $net network"
    echo "instances that exited by themselves: $exited; SIGTERM to exit (s): ${stop_s[*]}"
    echo "alert-file parts in doubt at stop: $in_doubt; still in progress after the next start: $left"
    echo "replication: $(paste -sd ';' "$work/$scenario.replication")"
    cat "$work/$scenario.table"
    stalls
    echo
  } | tee -a "$report"
  if ((bad > 0 || exited > 0 || left > 0)); then failed=1; fi
done

echo "seed $seed"
if ((failed)); then
  CHAOS_KEEP=1
  say "FAILED: see the tables above."
  exit 1
fi
say "Every scenario equals its uninterrupted run."
