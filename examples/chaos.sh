#!/usr/bin/env bash
# The long fault test (`just chaos`): three hr-pipeline instances in one consumer group on a broker
# of the script's own (never the shared one), while hr-sim produces 1 M readings in real time
# (2000 patients; a few malformed, out-of-order and late readings):
#   - rebalance churn 1 -> 3 -> 2 -> 3 instances (the 3 -> 2 step a clean SIGTERM),
#   - a zombie: one instance SIGSTOP'ed past its session timeout, its partitions moved, then SIGCONT,
#   - a random instance killed -9 every 5-15 s, 20 times, each restarted at once,
#   - the broker killed -9 and restarted twice (after the 7th and the 14th kill), the instances
#     left running through the outage.
# Then the instances are stopped, one `--bounded` run in the same group finishes the windows, and
# an uninterrupted `--bounded` run of its own group on the same input gives the baseline. Alerts,
# episodes, dead letters and late records are read back as read_committed consumers and compared
# record by record: missing, extra, duplicate and wrong (same window, other content). Exit 1 on any
# discrepancy, and on any instance that exited by itself (a zombie that exits because it was fenced
# is reported, not counted).
#
#   examples/chaos.sh            CHAOS_GUARANTEE=exactly-once|at-least-once (default exactly-once)
#   CHAOS_READINGS (1000000), CHAOS_RATE readings/s (3000), CHAOS_KILLS (20), CHAOS_SEED (random),
#   CHAOS_KAFKA_PORT (19392: the broker's client port; the next one is its controller port),
#   HR_BIN_DIR=DIR uses binaries built earlier (hr-sim, hr-pipeline, examples/latency) instead of
#   building; CHAOS_KEEP=1 keeps the work directory (logs, dumps) and prints its path.
#
# With at-least-once, byte-identical repeats are reported as duplicates but do not fail the run
# (that mode promises no more); anything else does.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
guarantee=${CHAOS_GUARANTEE:-exactly-once}
readings=${CHAOS_READINGS:-1000000}
rate=${CHAOS_RATE:-3000}
kills=${CHAOS_KILLS:-20}
seed=${CHAOS_SEED:-$((RANDOM * 32768 + RANDOM))}
port=${CHAOS_KAFKA_PORT:-19392}
partitions=6
session_ms=6000
RANDOM=$seed

say() { printf '\033[1m%s:\033[0m %s\n' "${0##*/}" "$*" >&2; }
die() { say "$*"; exit 1; }
case $guarantee in exactly-once | at-least-once) ;; *) die "CHAOS_GUARANTEE: exactly-once or at-least-once, not '$guarantee'." ;; esac
[[ $port != 9092 ]] || die "CHAOS_KAFKA_PORT must not be the shared broker's port 9092."
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  die "Something already listens on port $port; set CHAOS_KAFKA_PORT to a free port."
fi

work=$(mktemp -d -t hr-chaos.XXXXXX)
export HR_KAFKA_PORT=$port HR_KAFKA_STATE=$work/kafka HR_KAFKA_MODE=native HR_KAFKA_HEAP=${HR_KAFKA_HEAP:-768m}
# The jars are shared with the repo's broker (resolved once).
export HR_KAFKA_LIB=${HR_KAFKA_LIB:-$repo/.kafka/lib}
export HR_BOOTSTRAP_SERVERS=localhost:$port
bootstrap=$HR_BOOTSTRAP_SERVERS

declare -A pid=()
sim_pid=
cleanup() {
  local p
  for p in "${pid[@]}" $sim_pid; do
    kill -CONT "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  docker/kafka-local.sh down >/dev/null 2>&1 || true
  if [[ -n ${CHAOS_KEEP:-} ]]; then say "Logs and dumps kept in $work."; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [[ -n ${HR_BIN_DIR:-} ]]; then
  bin=$HR_BIN_DIR
  say "Using the binaries in $bin (HR_BIN_DIR): hr-sim, hr-pipeline, examples/latency."
else
  say "Building release binaries."
  cargo build --release -q -p hr-sim -p hr-pipeline --bins
  cargo build --release -q --example latency
  bin=${CARGO_TARGET_DIR:-$repo/target}/release
fi

say "Starting a broker of its own on $bootstrap (state $HR_KAFKA_STATE); seed $seed; $guarantee."
docker/kafka-local.sh up
run_id=$(date +%s)
in=chaos_in_$run_id
group=chaos-$run_id
base_group=chaos-base-$run_id
names() { # names SUFFIX: the output topic flags of one run
  echo --alerts-topic "chaos_alerts$1" --dlq-topic "chaos_dlq$1" --late-topic "chaos_late$1" --episodes-topic "chaos_episodes$1"
}
# shellcheck disable=SC2046
"$bin/hr-pipeline" topics --partitions "$partitions" --input-topic "$in" $(names "") >/dev/null
# shellcheck disable=SC2046
"$bin/hr-pipeline" topics --partitions "$partitions" --input-topic "$in" $(names _base) >/dev/null

# Deterministic job settings: key watermarks (the default), the processing-time rule for a
# whole quiet partition off (a broker outage would fire windows early in one run and not in the
# other), 10 s windows so that the run holds many.
job_flags=(--input-topic "$in" --profiles-topic none --size 10s
  --partition-silence-after off --guarantee "$guarantee" --broker-timeout 5m
  -X "session.timeout.ms=$session_ms" -X heartbeat.interval.ms=1000)
# Three instances would bind the same HTTP port: endpoints off (in builds that have them).
if "$bin/hr-pipeline" run --help | grep -q -- '--http '; then job_flags+=(--http off); fi
read -r -a out_flags <<<"$(names "")"
# Exactly-once: alert files too, each slot in a directory of its own that its restarts reuse
# (a kill -9 with a commit in flight leaves a staged part that the next start there settles).
# At-least-once files take repeats by design: none then.
files_on() { [[ $guarantee == exactly-once ]]; }
files_flags() { # files_flags DIR
  if files_on; then echo --alerts-dir "$1"; else echo --alerts-dir none; fi
}

unexpected=0 restarts=0 kill_count=0 broker_kills=0 zombie_outcome="not run"
declare -A expected_exit=()

start() { # start SLOT
  local s=$1
  # shellcheck disable=SC2046
  RUST_LOG=hr_pipeline=info "$bin/hr-pipeline" run --group "$group" "${job_flags[@]}" "${out_flags[@]}" \
    $(files_flags "$work/files/$s") >>"$work/instance-$s.log" 2>&1 &
  pid[$s]=$!
  echo "--- started pid ${pid[$s]} at $(date +%T)" >>"$work/instance-$s.log"
}

# Reaps instances that exited; one we did not end is unexpected and restarted.
reap() {
  local s st
  for s in "${!pid[@]}"; do
    kill -0 "${pid[$s]}" 2>/dev/null && continue
    st=0
    wait "${pid[$s]}" 2>/dev/null || st=$?
    if [[ -n ${expected_exit[$s]:-} ]]; then
      unset "expected_exit[$s]"
    else
      say "Instance $s (pid ${pid[$s]}) exited by itself with status $st; restarting it (see $work/instance-$s.log)."
      unexpected=$((unexpected + 1))
      start "$s"
      restarts=$((restarts + 1))
    fi
  done
}

pause() { # pause SECONDS, reaping meanwhile
  local end=$((SECONDS + $1))
  while ((SECONDS < end)); do sleep 1; reap; done
}

stop_slot() { # stop_slot SLOT SIGNAL: ends an instance and waits for it
  local s=$1 sig=$2 st=0
  expected_exit[$s]=1
  kill "-$sig" "${pid[$s]}" 2>/dev/null || true
  wait "${pid[$s]}" 2>/dev/null || st=$?
  unset "expected_exit[$s]" "pid[$s]"
  return 0
}

kill_broker() {
  local bpid
  bpid=$(cat "$HR_KAFKA_STATE/kafka.pid")
  say "Broker kill -9 (pid $bpid)."
  kill -KILL "$bpid"
  while kill -0 "$bpid" 2>/dev/null; do sleep 0.2; done
  broker_kills=$((broker_kills + 1))
  pause $((10 + RANDOM % 11))
  say "Broker restart."
  docker/kafka-local.sh up >>"$work/broker-restarts.log" 2>&1
}

say "Producing $readings readings at $rate/s in real time into $in ($partitions partitions)."
"$bin/hr-sim" --topic "$in" --patients 2000 --rate "$rate" --events "$readings" --seed "$seed" \
  --malformed 0.002 --out-of-order 0.01 --late 0.0005 --late-delay 30s \
  -X message.timeout.ms=0 >"$work/sim.log" 2>&1 &
sim_pid=$!

say "Churn: 1 instance."
start 1
pause 10
say "Churn: 3 instances."
start 2
start 3
pause 10
say "Churn: 2 instances (instance 2 stops cleanly)."
stop_slot 2 TERM
pause 10
say "Churn: 3 instances."
start 2
pause 10

zombie=$((1 + RANDOM % 3))
say "Zombie: instance $zombie SIGSTOP'ed for $((session_ms / 1000 + 12)) s (session timeout $((session_ms / 1000)) s)."
kill -STOP "${pid[$zombie]}"
pause $((session_ms / 1000 + 12))
kill -CONT "${pid[$zombie]}"
say "Zombie: instance $zombie resumed."
expected_exit[$zombie]=1
sleep 8
if kill -0 "${pid[$zombie]}" 2>/dev/null; then
  zombie_outcome="rejoined and kept running"
  unset "expected_exit[$zombie]"
else
  st=0
  wait "${pid[$zombie]}" 2>/dev/null || st=$?
  unset "expected_exit[$zombie]"
  zombie_outcome="exited with status $st: $(grep -iE 'fenc|error' "$work/instance-$zombie.log" | tail -n 1 | cut -c1-160)"
  start "$zombie"
  restarts=$((restarts + 1))
fi
say "Zombie: $zombie_outcome."

for ((k = 1; k <= kills; k++)); do
  pause $((5 + RANDOM % 11))
  s=$((1 + RANDOM % 3))
  say "Kill $k of $kills: instance $s (pid ${pid[$s]}) kill -9."
  stop_slot "$s" KILL
  kill_count=$((kill_count + 1))
  start "$s"
  if ((k == kills / 3 || k == 2 * kills / 3)); then kill_broker; fi
done

say "Waiting for hr-sim to finish the $readings readings."
while kill -0 "$sim_pid" 2>/dev/null; do pause 2; done
sim_st=0
wait "$sim_pid" || sim_st=$?
sim_pid=
tail -n 1 "$work/sim.log"
((sim_st == 0)) || die "hr-sim exited with status $sim_st (see $work/sim.log)."
pause 5
reap
for s in "${!pid[@]}"; do stop_slot "$s" TERM; done

# Settled at restarts so far: parts a killed instance left staged, published or discarded by
# the next start in its directory.
settled=$(cat "$work"/instance-*.log | grep -c 'whose commit was in doubt is' || true)
# Parts still staged (their instance's last stop) are settled by the next start in their
# directory: the finishing run is that start for each (the first one reads what is left).
finish_dirs=("$work/files/final")
in_doubt=0
if files_on; then
  for d in "$work/files"/*/; do
    n=$(find "$d" -maxdepth 1 -name '.alerts-*.inprogress.witness' | wc -l)
    if ((n > 0)); then in_doubt=$((in_doubt + n)); finish_dirs+=("${d%/}"); fi
  done
fi
say "A bounded run in the same group finishes the windows."
: >"$work/final.log"
for d in "${finish_dirs[@]}"; do
  # shellcheck disable=SC2046
  RUST_LOG=hr_pipeline=info "$bin/hr-pipeline" run --group "$group" --bounded "${job_flags[@]}" "${out_flags[@]}" \
    $(files_flags "$d") >>"$work/final.log" 2>&1 || { tail -n 20 "$work/final.log" >&2; die "The finishing run failed."; }
done
left=0
if files_on; then left=$(find "$work/files" -name '.alerts-*.inprogress*' | wc -l); fi
say "The uninterrupted baseline: one bounded run of its own group on the same input."
# shellcheck disable=SC2046
RUST_LOG=hr_pipeline=info "$bin/hr-pipeline" run --group "$base_group" --bounded "${job_flags[@]}" $(names _base) \
  $(files_flags "$work/files-base") >"$work/base.log" 2>&1 || { tail -n 20 "$work/base.log" >&2; die "The baseline run failed."; }

for t in alerts dlq late episodes; do
  "$bin/examples/latency" dump "chaos_${t}" >"$work/$t.chaos.jsonl"
  "$bin/examples/latency" dump "chaos_${t}_base" >"$work/$t.base.jsonl"
done

outputs=(alerts episodes dlq late)
if files_on; then
  cat "$work/files"/*/alerts-*.jsonl >"$work/files.chaos.jsonl" 2>/dev/null || : >"$work/files.chaos.jsonl"
  cat "$work/files-base"/alerts-*.jsonl >"$work/files.base.jsonl" 2>/dev/null || : >"$work/files.base.jsonl"
  outputs+=(files)
fi
python3 examples/compare_runs.py "$work" "$guarantee" "${outputs[@]}" >"$work/table"

echo
echo "chaos run: $guarantee, seed $seed, $readings readings at $rate/s, $partitions partitions, 3 instances"
echo "faults:    $kill_count instance kill -9 (restarted), $broker_kills broker kill -9 + restart, churn 1->3->2->3,"
echo "           zombie (instance $zombie SIGSTOP $((session_ms / 1000 + 12)) s): $zombie_outcome"
echo "           instances that exited by themselves: $unexpected"
if files_on; then
  echo "files:     parts settled at a restart: $settled; in doubt at the last stop: $in_doubt; still in progress at the end: $left"
fi
echo "input:     $(grep -o 'read=[0-9]* parsed=[0-9]* invalid=[0-9]*' "$work/base.log" | tail -n 1) (baseline counters)"
echo
cat "$work/table"
bad=$(grep -o 'discrepancies=[0-9]*' "$work/table" | cut -d= -f2)
if ((bad > 0 || unexpected > 0 || left > 0)); then
  CHAOS_KEEP=1
  say "FAILED: $bad discrepancies, $unexpected instances that exited by themselves, $left alert-file parts left in progress."
  exit 1
fi
say "No discrepancy."
