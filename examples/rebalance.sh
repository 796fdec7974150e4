#!/usr/bin/env bash
# Rebalance stalls (`just rebalance`): how long alerts stop when hr-pipeline instances join and
# leave a consumer group, with eager and with incremental rebalancing (cooperative-sticky, and
# KIP-848's consumer protocol), on a broker of the script's own (never the shared one).
#
# Per mode, on fresh topics and a fresh group: hr-sim produces REBALANCE_RATE readings/s (3000)
# over REBALANCE_PATIENTS patients (10000) in real time into a 12-partition input topic; the
# instances run exactly-once with 1 s tumbling windows (`--size 1s --delay 0s`, key watermarks:
# each reading closes its patient's previous window, so every partition has alerts all the time), a 200 ms
# commit interval, `--partition-silence-after off`, `--http off`, and but for the consumer protocol
# `-X session.timeout.ms=6000` (the heartbeat interval is the job's, 1 s; REBALANCE_HEARTBEAT_MS sets
# another). `latency watch` reads the alerts topic read_committed and notes
# when each alert became visible and which input partition it came from. The sequence, each step
# followed by REBALANCE_SETTLE seconds (20):
#   start instance 1;  1 -> 2: start instance 2;  2 -> 4: start instances 3 and 4;
#   4 -> 3: SIGTERM to instance 4.
# Which partitions moved at a step is read from the instances' `Assigned.` / `Revoked.` log lines
# (where they leave a partition with no owner or two, the table says so).
# Per step it prints, for the partitions that stayed with their owner, the longest gap between two
# visible alerts from 1 s before to 15 s after the step (the stall), next to their longest gap in
# the 10 s before it (steady state); for those that moved, the time from the step to the first
# alert after the new owner's assignment began, and the `restore_ms` the new owner logged. The
# target for incremental rebalancing: a stall of at most one commit interval + 1 s (1.2 s).
#
# Modes, each named explicitly whatever the job's default: `eager` (`-X
# partition.assignment.strategy=range,roundrobin`, librdkafka's default), `cooperative` (`-X
# partition.assignment.strategy=cooperative-sticky`, the job's default) and `consumer` (KIP-848's
# consumer protocol, `-X group.protocol=consumer`: the broker assigns, with its own session timeout
# and heartbeat interval), in turn, RUNS times (default 1).
# The instances' WARN and ERROR lines are counted and the first of them shown.
#
# The default rate is what one instance alone sustains on a 2-core machine shared with other work,
# next to the broker, hr-sim and three more instances (the `lag before` column shows whether the
# instances kept up; at 10000/s one instance alone fell 100 k readings behind there).
#
#   examples/rebalance.sh       RUNS (1), REBALANCE_RATE (3000), REBALANCE_PATIENTS (10000),
#   REBALANCE_SETTLE seconds (20), REBALANCE_MODES ("eager cooperative consumer"),
#   REBALANCE_KAFKA_PORT (19492: the broker's client port; the next one is its controller port),
#   HR_BIN_DIR=DIR uses binaries built earlier (hr-sim, hr-pipeline, examples/latency);
#   REBALANCE_KEEP=1 keeps the work directory (logs, alert timelines, per-partition tables);
#   REBALANCE_RUST_LOG sets the instances' RUST_LOG (default warn,hr_pipeline=info,hr_kafka=info).
#
# It exits 1 when an instance exits by itself, or a mode produced no alerts; a missed stall target
# is reported, not a failure.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=${RUNS:-1}
rate=${REBALANCE_RATE:-3000}
patients=${REBALANCE_PATIENTS:-10000}
settle=${REBALANCE_SETTLE:-20}
read -r -a modes <<<"${REBALANCE_MODES:-eager cooperative consumer}"
port=${REBALANCE_KAFKA_PORT:-19492}
partitions=12
commit=200ms

say() { printf '\033[1m%s:\033[0m %s\n' "${0##*/}" "$*" >&2; }
die() { say "$*"; exit 1; }
for m in "${modes[@]}"; do
  case $m in eager | cooperative | consumer) ;; *) die "REBALANCE_MODES: eager, cooperative and/or consumer, not '$m'." ;; esac
done
((settle >= 17)) || die "REBALANCE_SETTLE must be at least 17 s (the stall is measured up to 15 s after a step)."
[[ $port != 9092 ]] || die "REBALANCE_KAFKA_PORT must not be the shared broker's port 9092."
for p in "$port" $((port + 1)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die "Something already listens on port $p; set REBALANCE_KAFKA_PORT to a port that is free with the next one."
  fi
done

work=$(mktemp -d -t hr-rebalance.XXXXXX)
export HR_KAFKA_PORT=$port HR_KAFKA_STATE=$work/kafka HR_KAFKA_MODE=native HR_KAFKA_HEAP=${HR_KAFKA_HEAP:-768m}
# The jars are shared with the repo's broker (resolved once).
export HR_KAFKA_LIB=${HR_KAFKA_LIB:-$repo/.kafka/lib}
export HR_BOOTSTRAP_SERVERS=localhost:$port
bootstrap=$HR_BOOTSTRAP_SERVERS

declare -A pid=()
sim_pid='' watch_pid=''
cleanup() {
  local p
  for p in "${pid[@]}" $sim_pid $watch_pid; do kill -KILL "$p" 2>/dev/null || true; done
  docker/kafka-local.sh down >/dev/null 2>&1 || true
  if [[ -n ${REBALANCE_KEEP:-} ]]; then say "Logs and timelines kept in $work."; else rm -rf "$work"; fi
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

say "Starting a broker of its own on $bootstrap (state $HR_KAFKA_STATE)."
docker/kafka-local.sh up
run_id=$(date +%s)
now_ms() { date +%s%3N; }

unexpected=0
dir=
declare -A expected_exit=()
# Reaps instances that exited; one we did not stop is unexpected (and not restarted: the
# measurement of that mode is then void).
reap() {
  local s st
  for s in "${!pid[@]}"; do
    kill -0 "${pid[$s]}" 2>/dev/null && continue
    st=0
    wait "${pid[$s]}" 2>/dev/null || st=$?
    echo "exit $s $(now_ms) $st" >>"$dir/steps"
    if [[ -z ${expected_exit[$s]:-} ]]; then
      say "Instance $s (pid ${pid[$s]}) exited by itself with status $st (see $dir/instance-$s.log)."
      unexpected=$((unexpected + 1))
    fi
    unset "expected_exit[$s]" "pid[$s]"
  done
}
pause() { # pause SECONDS, reaping meanwhile
  local end=$(($(now_ms) + $1 * 1000))
  while (($(now_ms) < end)); do sleep 0.2; reap; done
}

# One mode: fresh topics and group, the whole sequence, then the analysis into $dir/table.
measure() { # measure MODE RUN
  local mode=$1 r=$2 s
  dir=$work/$mode-$r
  mkdir -p "$dir"
  : >"$dir/steps"
  local t=rb_${run_id}_${mode}_$r group=rebalance-$run_id-$mode-$r
  "$bin/hr-pipeline" topics --partitions "$partitions" --input-topic "${t}_in" --alerts-topic "${t}_alerts" \
    --dlq-topic "${t}_dlq" --late-topic "${t}_late" --episodes-topic "${t}_episodes" >/dev/null
  local job=(run --group "$group" --input-topic "${t}_in" --alerts-topic "${t}_alerts" --dlq-topic "${t}_dlq"
    --late-topic "${t}_late" --episodes-topic "${t}_episodes" --profiles-topic none --alerts-dir none
    --size 1s --delay 0s --guarantee exactly-once --commit-interval "$commit"
    --partition-silence-after off --http off)
  case $mode in
    eager) job+=(-X "partition.assignment.strategy=range,roundrobin") ;;
    cooperative) job+=(-X "partition.assignment.strategy=cooperative-sticky") ;;
    # KIP-848: the broker assigns, and its session and heartbeat settings apply (the client
    # refuses its own).
    consumer) job+=(-X group.protocol=consumer) ;;
  esac
  [[ $mode == consumer ]] || job+=(-X session.timeout.ms=6000)
  if [[ $mode != consumer && -n ${REBALANCE_HEARTBEAT_MS:-} ]]; then
    job+=(-X "heartbeat.interval.ms=$REBALANCE_HEARTBEAT_MS")
  fi
  start() { # start SLOT
    RUST_LOG=${REBALANCE_RUST_LOG:-warn,hr_pipeline=info,hr_kafka=info} "$bin/hr-pipeline" "${job[@]}" >>"$dir/instance-$1.log" 2>&1 &
    pid[$1]=$!
    echo "start $1 $(now_ms) ${pid[$1]}" >>"$dir/steps"
  }

  say "Mode $mode (run $r of $runs): $rate readings/s over $patients patients into ${t}_in ($partitions partitions)."
  "$bin/examples/latency" watch --topic "${t}_alerts" --input-partitions "$partitions" --out "$dir/watch" \
    2>"$dir/watch.err" &
  watch_pid=$!
  "$bin/hr-sim" --topic "${t}_in" --patients "$patients" --rate "$rate" -X message.timeout.ms=0 \
    >"$dir/sim.log" 2>&1 &
  sim_pid=$!
  sleep 2
  say "$mode: instance 1."
  start 1
  pause "$settle"
  say "$mode: 1 -> 2 instances."
  echo "step 1->2 $(now_ms)" >>"$dir/steps"
  start 2
  pause "$settle"
  say "$mode: 2 -> 4 instances."
  echo "step 2->4 $(now_ms)" >>"$dir/steps"
  start 3
  start 4
  pause "$settle"
  say "$mode: 4 -> 3 instances (SIGTERM to instance 4)."
  echo "step 4->3 $(now_ms)" >>"$dir/steps"
  expected_exit[4]=1
  kill -TERM "${pid[4]}"
  pause "$settle"
  echo "end - $(now_ms)" >>"$dir/steps"
  echo "load - 0 $(cut -d' ' -f1-3 /proc/loadavg)" >>"$dir/steps"
  for s in "${!pid[@]}"; do
    expected_exit[$s]=1
    kill -TERM "${pid[$s]}" 2>/dev/null || true
  done
  while ((${#pid[@]} > 0)); do sleep 0.2; reap; done
  kill -TERM "$sim_pid" 2>/dev/null || true
  wait "$sim_pid" 2>/dev/null || true
  sim_pid=
  kill -TERM "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  watch_pid=
  say "$mode: $(cat "$dir/watch.err")"
  # The input partition `latency watch` computes per patient (murmur2, as hr-sim's producer)
  # against the partition hr-sim's records are really in: the input topic, read back.
  "$bin/examples/latency" dump "${t}_in" >"$dir/input.jsonl"
  python3 - "$dir" "$mode" "$r" "$commit" <<'PY' >"$dir/table"
import bisect, collections, datetime, json, re, statistics, sys

d, mode, run, commit = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
commit_ms = int(commit.removesuffix("ms"))
target = commit_ms + 1000

# Key -> partition as the input topic has it, against what `watch` computed.
actual = {}
with open(f"{d}/input.jsonl") as f:
    for line in f:
        r = json.loads(line)
        actual[r["key"]] = r["partition"]

alerts = collections.defaultdict(list)  # input partition -> [wall_ms]
mismatch = checked = 0
with open(f"{d}/watch") as f:
    for line in f:
        wall, _apart, ipart, patient, _end = line.split()
        ipart = int(ipart)
        alerts[ipart].append(int(wall))
        if patient in actual:
            checked += 1
            mismatch += actual[patient] != ipart
for v in alerts.values():
    v.sort()

steps, starts, exits = [], {}, {}
with open(f"{d}/steps") as f:
    for line in f:
        kind, name, t, *rest = line.split()
        t = int(t)
        if kind == "step":
            steps.append((name, t))
        elif kind == "end":
            end = t
        elif kind == "start":
            starts[int(name)] = t
        elif kind == "exit":
            exits[int(name)] = t
        elif kind == "load":
            load = " ".join(rest)

# Log lines: (wall_ms, instance, kind, partitions, restore_ms).
line_re = re.compile(r"^(\S+Z)\s+(\w+)\s+(\S+): (.*)$")
events, warnings, lags, aborts = [], [], [], []
noise = 0  # librdkafka's CONFWARN: the consumer's -X properties reach the producer too
for i in sorted(starts):
    with open(f"{d}/instance-{i}.log", errors="replace") as f:
        for line in f:
            m = line_re.match(line.rstrip("\n"))
            if not m:
                continue
            ts, level, _target, msg = m.groups()
            t = int(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
            if level in ("WARN", "ERROR"):
                if "is a consumer property and will be ignored by this producer" in msg:
                    noise += 1
                else:
                    warnings.append((t, i, level, msg))
            if msg.startswith("Commit failed") or "producer was fenced" in msg:
                aborts.append(t)
            lag = re.search(r"^Progress\. .* lag=(\d+)", msg)
            if lag:
                lags.append((t, i, int(lag.group(1))))
            for kind in ("Assigned.", "Revoked."):
                if msg.startswith(kind):
                    ps = re.search(r"partitions=\[([0-9, ]*)\]", msg)
                    ps = [int(x) for x in ps.group(1).replace(" ", "").split(",") if x] if ps else []
                    rm = re.search(r"restore_ms=(\d+)", msg)
                    events.append((t, i, kind[:-1], ps, int(rm.group(1)) if rm else 0))
for i, t in exits.items():
    events.append((t, i, "Exited", [], 0))
events.sort()

def owners_at(t):
    """partition -> set of instances that own it by the log at wall time t."""
    own = collections.defaultdict(set)
    for (et, i, kind, ps, _r) in events:
        if et > t:
            break
        if kind == "Assigned":
            for p in ps:
                own[p].add(i)
        elif kind == "Revoked":
            for p in ps:
                own[p].discard(i)
        else:
            for p in own:
                own[p].discard(i)
    return own

def gaps_ending_in(ts, lo, hi):
    """Longest gap between consecutive alerts whose later alert falls in (lo, hi]; a partition
    silent through hi counts up to hi; None when it had no alert at all up to hi."""
    k = bisect.bisect_right(ts, lo)
    prev = ts[k - 1] if k > 0 else None
    if prev is None and (k >= len(ts) or ts[k] > hi):
        return None
    best = 0
    while k < len(ts) and ts[k] <= hi:
        if prev is not None:
            best = max(best, ts[k] - prev)
        prev = ts[k]
        k += 1
    if prev is not None:
        best = max(best, hi - prev)
    return best

def none(x):
    return "none" if x is None else x

def fmt_owner(s):
    return ",".join(map(str, sorted(s))) or "-"

P = 12
out = []
rows = []
inconsistent = []
bounds = [t for _, t in steps] + [end]
for n, (name, t) in enumerate(steps):
    nxt = bounds[n + 1]
    before, after = owners_at(t - 300), owners_at(nxt - 300)
    for label, snap in (("before", before), ("after", after)):
        bad = [p for p in range(P) if len(snap.get(p, ())) != 1]
        if bad:
            inconsistent.append(f"{name} {label}: " + " ".join(f"p{p}={fmt_owner(snap.get(p, set()))}" for p in bad))
    moved = [p for p in range(P) if before.get(p, set()) != after.get(p, set())]
    stayed = [p for p in range(P) if p not in moved]
    steady = {p: gaps_ending_in(alerts[p], t - 11000, t - 1000) for p in range(P)}
    stall = {p: gaps_ending_in(alerts[p], t - 1000, t + 15000) for p in stayed}
    first, restore = {}, {}
    for p in moved:
        owner = after.get(p, set())
        # The last assignment of p to its new owner during the step.
        cand = [(et, r) for (et, i, kind, ps, r) in events
                if kind == "Assigned" and i in owner and p in ps and t <= et < nxt]
        if not cand:
            continue
        et, r = cand[-1]
        restore[p] = r
        began = et - r
        ts = alerts[p]
        k = bisect.bisect_left(ts, began)
        if k < len(ts) and ts[k] < nxt:
            first[p] = ts[k] - t
    # Eager: partitions that stayed are revoked and restored too.
    restore_stayed = {}
    for p in stayed:
        cand = [r for (et, i, kind, ps, r) in events if kind == "Assigned" and p in ps and t <= et < nxt]
        if cand:
            restore_stayed[p] = cand[-1]
    moves = collections.Counter((fmt_owner(before.get(p, set())), fmt_owner(after.get(p, set()))) for p in moved)
    # Whether the instances kept up: each one's last reported lag in the 6 s before the step.
    last = {}
    for (lt, i, lag) in lags:
        if t - 6000 <= lt < t:
            last[i] = lag
    lag = max(last.values()) if last else None
    failed = sum(1 for a in aborts if t - 1000 <= a < nxt)
    rows.append(dict(step=name, moved=moved, stayed=stayed, steady=steady, stall=stall, first=first,
                     restore=restore, restore_stayed=restore_stayed, moves=moves, lag=lag, failed=failed))

def mx(v):
    v = [x for x in v if x is not None]
    return f"{max(v)}" if v else "-"

def med(v):
    v = [x for x in v if x is not None]
    return f"{statistics.median(v):.0f}" if v else "-"

title = {"eager": "eager (-X partition.assignment.strategy=range,roundrobin)",
         "cooperative": "cooperative (-X partition.assignment.strategy=cooperative-sticky, the default)",
         "consumer": "consumer protocol (KIP-848, -X group.protocol=consumer)"}[mode]
out.append(f"mode {title}, run {run} (machine load average at its end: {load})")
out.append(f"{'':6} {'lag':>7} {'':>5} {'':>6} | {'stayed: steady gap':>18} {'stall':>13} {'>' + str(target) + 'ms':>8} {'restore':>8}"
           f" | {'moved: first alert':>18} {'restore':>13} | {'aborted':>7}")
out.append(f"{'step':6} {'before':>7} {'moved':>5} {'stayed':>6} | {'max ms':>18} {'max / p50 ms':>13} {'':>8} {'max ms':>8}"
           f" | {'p50 / max ms':>18} {'p50 / max ms':>13} | {'commits':>7}")
for row in rows:
    st = list(row["stall"].values())
    over = sum(1 for x in st if x is not None and x > target)
    stay_cols = (f"{mx(row['steady'][p] for p in row['stayed']):>18} {mx(st) + ' / ' + med(st):>13} "
                 f"{str(over) + '/' + str(len(st)):>8} {mx(row['restore_stayed'].values()):>8}") if row["stayed"] else \
                f"{'-':>18} {'-':>13} {'-':>8} {'-':>8}"
    fv, rv = list(row["first"].values()), list(row["restore"].values())
    mv_cols = (f"{med(fv) + ' / ' + mx(fv):>18} {med(rv) + ' / ' + mx(rv):>13}") if row["moved"] else f"{'-':>18} {'-':>13}"
    lag = "-" if row["lag"] is None else str(row["lag"])
    out.append(f"{row['step']:6} {lag:>7} {len(row['moved']):>5} {len(row['stayed']):>6} | {stay_cols} | {mv_cols} | {row['failed']:>7}")
for row in rows:
    moves = "; ".join(f"{a}->{b}: {n}" for (a, b), n in sorted(row["moves"].items()))
    out.append(f"  {row['step']}: moved {','.join(map(str, row['moved'])) or 'none'} (instance before->after: {moves or '-'})")
    if row["stayed"]:
        out.append("    stayed, stall ms: " + " ".join(f"p{p}={none(row['stall'][p])}" for p in row["stayed"]))
    if row["moved"]:
        out.append("    moved, first alert after step / restore ms: "
                   + " ".join(f"p{p}={row['first'].get(p, 'none')}/{row['restore'].get(p, '-')}" for p in row["moved"]))
total = sum(len(v) for v in alerts.values())
out.append(f"  alerts seen: {total}; input partition of {checked} alerts checked against the input topic: {mismatch} wrong")
if inconsistent:
    out.append("  ownership from the logs is not one owner per partition (a log line missing?): " + "; ".join(inconsistent))
out.append(f"  instance WARN/ERROR lines: {len(warnings)}, besides {noise} CONFWARN (consumer -X properties the producer ignores)")
for (t, i, level, msg) in warnings[:12]:
    stamp = datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    out.append(f"    instance {i} {stamp} {level} {msg[:220]}")
print("\n".join(out))
PY
  cat "$dir/table" >&2
  grep -q . "$dir/watch" || die "$mode: no alert at all (see $dir)."
}

for ((r = 1; r <= runs; r++)); do
  for m in "${modes[@]}"; do measure "$m" "$r"; done
done

echo
echo "rebalance stalls: $partitions partitions, $patients patients, $rate readings/s in real time, 1 s windows,"
echo "exactly-once, commit interval $commit, session timeout 6 s (consumer protocol: the broker's 45 s); steps 1 -> 2 -> 4 -> 3 instances, $settle s apart"
echo "stall: longest gap between visible alerts of a partition that kept its owner, from 1 s before to 15 s after"
echo "the step (target for cooperative: at most $(( ${commit%ms} + 1000 )) ms); steady gap: the same over the 10 s before;"
echo "first alert: step to the first alert of a moved partition after its new owner's assignment began;"
echo "restore: restore_ms of the Assigned. line that gave the partition to its owner (eager: the stayed ones too);"
echo "lag before: the largest lag (records) an instance reported in the 6 s before the step (about 0: they kept up);"
echo "aborted commits: 'Commit failed' lines of all instances from 1 s before the step to the next step."
for m in "${modes[@]}"; do
  for ((r = 1; r <= runs; r++)); do
    echo
    cat "$work/$m-$r/table"
  done
done
if ((unexpected > 0)); then
  REBALANCE_KEEP=1
  say "FAILED: $unexpected instances exited by themselves."
  exit 1
fi
