#!/usr/bin/env bash
# A local 3-node Apache Kafka cluster (KRaft; every node is broker and controller) for failover tests.
#
#   docker/kafka-cluster.sh up|down|status|logs [N]|clean|bootstrap
#   docker/kafka-cluster.sh kill N|stop N|start N|wipe N        (N: 1, 2, 3; several may be given)
#   docker/kafka-cluster.sh cut N|NAME  heal N|NAME              (netns mode)
#   docker/kafka-cluster.sh host add NAME|host del NAME|exec NAME -- CMD...   (netns mode)
#   docker/kafka-cluster.sh controller|leaders TOPIC|wait-isr TOPIC|all [SECONDS]
#   docker/kafka-cluster.sh topic TOPIC [PARTITIONS]|produce TOPIC|consume TOPIC [MAX]
#
# It runs Apache Kafka's own jars (the ones docker/kafka-local.sh resolves from Maven Central with
# docker/kafka-native/pom.xml; resolved here the same way if they are missing) on the local JVM, three
# processes, each with its own data directory, log and pid file under the state directory. Hosts with a
# Docker engine can run the same cluster from docker/compose-cluster.yml instead (loopback ports).
#
# The cluster: node ids 1..3, one cluster id, a static controller quorum (controller.quorum.voters),
# default.replication.factor=3, min.insync.replicas=2, the offsets, transaction-state and share-state
# topics with replication 3 and min ISR 2, unclean.leader.election.enable=false, num.partitions=3,
# auto-created topics, group.initial.rebalance.delay.ms=0.
#
# Network modes (HR_CLUSTER_NET; default netns when running as root and `ip netns` works, else loopback):
#   netns     A bridge hrbr0 (10.77.0.1/24 on the host side) and one network namespace per node,
#             hr-kafka-1..3, at 10.77.0.11..13, each on :9092 (clients) and :9093 (controller), joined to
#             the bridge by a veth (host side hrk1..3). Clients in the root namespace use
#             10.77.0.11:9092,10.77.0.12:9092,10.77.0.13:9092. Client hosts (`host add NAME`) are
#             namespaces hr-host-NAME at the next free address from 10.77.0.21 (veth hrh-NAME), so a
#             pipeline instance can be run there and cut off. A cut sets the host side of the veth down:
#             the node or host stays running but nothing reaches it, and it reaches nothing.
#   loopback  Node i on 127.0.0.1, client port HR_CLUSTER_PORT + 10*(i-1), controller port one above
#             (29092/29093, 29102/29103, 29112/29113). cut, heal, host and exec need netns (exit 2).
#
# Commands:
#   up            format what is not formatted yet, start the nodes that do not run, and wait until each
#                 has started and the quorum has an active controller; safe to call again (it leaves
#                 cut links cut)
#   down          stop every node (SIGTERM, SIGKILL after 60 s), then remove the namespaces, veths and
#                 bridge (processes still running in host namespaces are stopped too)
#   clean         down, then delete the state directory (the jars are kept)
#   status        each node: running or stopped, pid, address, cut or not; the hosts; the mode
#   logs [N]      the end of node N's log (LINES_SHOWN lines, default 200), or of all three
#   bootstrap     print the bootstrap servers
#   kill N        kill -9 node N's JVM
#   stop N        SIGTERM node N and wait until it has shut down (SIGKILL after 60 s)
#   start N       start node N again (same config, same data) and wait until it has started
#   wipe N        kill -9 node N, delete its data and format it empty with the same cluster id (a
#                 replaced machine); `start N` brings it back and it replicates everything again
#   cut N|NAME    make node N or host NAME unreachable; its processes keep running
#   heal N|NAME   undo the cut
#   host add NAME make the client namespace hr-host-NAME (prints its address); `host del NAME` removes
#                 it and stops what runs in it
#   exec NAME -- CMD...   run CMD in host NAME's namespace (or node N's)
#   controller    print the node id of the active KRaft controller
#   leaders TOPIC print "partition leader isr" lines (isr comma-separated, leader -1 when none);
#                 TOPIC all prints "topic partition leader isr" for every topic, internal ones included
#   wait-isr TOPIC|all [SECONDS]  wait (default 120 s) until every partition has all its replicas (3) in
#                 its ISR, e.g. between the steps of a rolling restart; exit 1 on timeout
#   topic TOPIC [PARTITIONS]   create a topic (default 3 partitions, replication 3)
#   produce TOPIC read lines from stdin, one record each ("KEY<TAB>VALUE", or a value alone), acks=all
#   consume TOPIC [MAX]        print the topic's committed records ("KEY<TAB>VALUE", or the value alone
#                 when there is no key) up to the end offsets at the start, or MAX records
#
# Environment:
#   HR_CLUSTER_STATE   state directory: config, data, log and pid file per node (default <repo>/.kafka-cluster)
#   HR_CLUSTER_NET     netns or loopback (default: netns where possible)
#   HR_CLUSTER_PORT    loopback mode: node 1's client port (default 29092)
#   HR_CLUSTER_SUBNET  netns mode: the first three octets of the bridge's /24 (default 10.77.0)
#   HR_KAFKA_HEAP      JVM heap per node (default 512m)
#   HR_KAFKA_LIB       folder of Kafka's jars (default <repo>/.kafka/lib, shared with docker/kafka-local.sh)
#
# The controller, leaders, wait-isr, topic, produce and consume commands use a small Java program on
# Kafka's client jar (compiled once into the state directory; it needs javac, i.e. a JDK).
# The netns names are fixed, so one netns cluster runs per machine: commands of another state directory
# that would touch its network stop with an error naming the state directory in use (loopback clusters
# on other ports run alongside). Without the ip tool, root installs iproute2 with apt-get.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=$(realpath -m "${HR_CLUSTER_STATE:-$repo/.kafka-cluster}")
libdir=${HR_KAFKA_LIB:-$repo/.kafka/lib}
heap=${HR_KAFKA_HEAP:-512m}
base_port=${HR_CLUSTER_PORT:-29092}
subnet=${HR_CLUSTER_SUBNET:-10.77.0}
pom=$repo/docker/kafka-native/pom.xml
bridge=hrbr0
tooldir=$state/tool
owner_file=/run/hr-kafka-cluster.netns
nodes=(1 2 3)
stop_timeout=60

say() { printf 'kafka-cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
owner_only() {
  local other
  other=$(foreign_owner)
  [[ -z $other ]] || die "'$1' acts on the netns network, which is in use by the cluster in $other (HR_CLUSTER_STATE=$other)."
}
need_netns() { say "'$1' needs the netns mode (root and 'ip netns'); this cluster runs in $net mode."; exit 2; }

[[ $base_port =~ ^[0-9]+$ ]] || die "HR_CLUSTER_PORT must be a port number, not '$base_port'."
[[ $subnet =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "HR_CLUSTER_SUBNET must be three octets like 10.77.0, not '$subnet'."

# ---------------------------------------------------------------------------------------------------
# Network mode

netns_possible() {
  [[ $EUID -eq 0 ]] || return 1
  if ! command -v ip >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || return 1
    say "Installing iproute2 (the ip tool) with apt-get."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >&2 || return 1
  fi
  local probe=hr-probe-$$
  ip netns add "$probe" 2>/dev/null || return 1
  ip netns del "$probe"
}

# The mode of a running cluster is kept in <state>/net; otherwise HR_CLUSTER_NET, else what works.
choose_net() {
  local saved=""
  [[ -f $state/net ]] && saved=$(cat "$state/net")
  if [[ -n ${HR_CLUSTER_NET:-} && -n $saved && $HR_CLUSTER_NET != "$saved" ]]; then
    die "The cluster in $state was started in $saved mode; run 'down' before switching to $HR_CLUSTER_NET."
  fi
  case "${HR_CLUSTER_NET:-}" in
    netns)
      netns_possible || die "HR_CLUSTER_NET=netns needs root and a working 'ip netns'."
      printf netns ;;
    loopback) printf loopback ;;
    "")
      if [[ -n $saved ]]; then printf '%s' "$saved"
      elif netns_possible; then printf netns
      else printf loopback; fi ;;
    *) die "HR_CLUSTER_NET must be netns or loopback, not '$HR_CLUSTER_NET'." ;;
  esac
}

net=$(choose_net)

node_ns() { printf 'hr-kafka-%s' "$1"; }
node_veth() { printf 'hrk%s' "$1"; }
node_host() { if [[ $net == netns ]]; then printf '%s.1%s' "$subnet" "$1"; else printf 127.0.0.1; fi; }
node_port() { if [[ $net == netns ]]; then printf 9092; else printf '%s' $((base_port + 10 * ($1 - 1))); fi; }
node_cport() { if [[ $net == netns ]]; then printf 9093; else printf '%s' $(($(node_port "$1") + 1)); fi; }

bootstrap() {
  local i out=""
  for i in "${nodes[@]}"; do out+="${out:+,}$(node_host "$i"):$(node_port "$i")"; done
  printf '%s' "$out"
}

voters() {
  local i out=""
  for i in "${nodes[@]}"; do out+="${out:+,}$i@$(node_host "$i"):$(node_cport "$i")"; done
  printf '%s' "$out"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }
link_exists() { ip link show "$1" >/dev/null 2>&1; }
link_cut() { link_exists "$1" && ! ip -o link show "$1" | grep -q '[<,]UP[,>]'; }

# With br_netfilter on (bridge-nf-call-iptables=1), bridged traffic passes the FORWARD chain, which a
# Docker engine sets to DROP: let the bridge's own traffic through while the cluster runs.
allow_bridged() {
  [[ $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0) == 1 ]] || return 0
  command -v iptables >/dev/null 2>&1 || return 0
  iptables -C FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null ||
    iptables -I FORWARD 1 -i "$bridge" -o "$bridge" -j ACCEPT
}

disallow_bridged() {
  command -v iptables >/dev/null 2>&1 || return 0
  while iptables -D FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null; do :; done
}

ensure_bridge() {
  link_exists "$bridge" || ip link add "$bridge" type bridge
  ip addr replace "$subnet.1/24" dev "$bridge"
  ip link set "$bridge" up
  allow_bridged
}

# A namespace with loopback up and eth0 at ADDR, joined to the bridge by VETH (its host side). A veth that
# exists keeps its state, so a cut stays cut.
ensure_ns() {
  local ns=$1 veth=$2 addr=$3
  ns_exists "$ns" || ip netns add "$ns"
  ip -n "$ns" link set lo up
  if ! link_exists "$veth"; then
    ip -n "$ns" link del eth0 2>/dev/null || true
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$bridge"
    ip link set "$veth" up
  fi
  ip -n "$ns" addr replace "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# The netns network has fixed names, so it serves one cluster (state directory) at a time: the one
# whose JVMs run in the node namespaces, else the one named in $owner_file while it is up.
foreign_owner() {
  local i pid other
  for i in "${nodes[@]}"; do
    ns_exists "$(node_ns "$i")" || continue
    for pid in $(ip netns pids "$(node_ns "$i")" 2>/dev/null); do
      other=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -m1 '/node-[123]/server\.properties$' || true)
      other=${other%/node-*}
      if [[ -n $other && $other != "$state" ]]; then printf '%s' "$other"; return; fi
    done
  done
  other=$(cat "$owner_file" 2>/dev/null || true)
  if [[ -n $other && $other != "$state" && -f $other/net ]] && link_exists "$bridge"; then printf '%s' "$other"; fi
}

claim_net() {
  local other
  other=$(foreign_owner)
  [[ -z $other ]] || die "The netns network (bridge $bridge, namespaces hr-kafka-1..3) is in use by the cluster in $other; run 'HR_CLUSTER_STATE=$other $0 down' first, or use HR_CLUSTER_NET=loopback."
  echo "$state" >"$owner_file"
}

ensure_net() {
  [[ $net == netns ]] || return 0
  claim_net
  ensure_bridge
  local i
  for i in "${nodes[@]}"; do ensure_ns "$(node_ns "$i")" "$(node_veth "$i")" "$(node_host "$i")"; done
}

# Stops whatever still runs in a namespace (SIGTERM, SIGKILL after 10 s).
empty_ns() {
  local ns=$1 pids i
  ns_exists "$ns" || return 0
  pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
  [[ -n ${pids// /} ]] || return 0
  say "Stopping processes in $ns: $pids"
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && return 0
    sleep 0.5
  done
  # shellcheck disable=SC2046
  kill -KILL $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null || true
}

remove_ns() {
  local ns=$1 veth=$2
  empty_ns "$ns"
  link_exists "$veth" && ip link del "$veth"
  ns_exists "$ns" && ip netns del "$ns"
  return 0
}

teardown_net() {
  command -v ip >/dev/null 2>&1 || return 0
  local ns name i
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^hr-host-' || true); do
    name=${ns#hr-host-}
    remove_ns "$ns" "hrh-$name"
  done
  rm -rf "$state/hosts"
  for i in "${nodes[@]}"; do remove_ns "hr-kafka-$i" "hrk$i"; done
  link_exists "$bridge" && ip link del "$bridge"
  disallow_bridged
  rm -f "$owner_file"
}

# ---------------------------------------------------------------------------------------------------
# Jars, config, storage

java_major() {
  java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1
}

check_java() {
  command -v java >/dev/null 2>&1 || die "Java 17+ is needed: 'apt-get install openjdk-17-jdk-headless maven'."
  local major
  major=$(java_major)
  [[ ${major:-0} -ge 17 ]] || die "Java 17 or newer is needed for Kafka 4 (found ${major:-none})."
}

# As docker/kafka-local.sh: one process resolves the jars, the others wait on the lock.
resolve_jars() {
  if [[ -f $libdir/.complete ]]; then return; fi
  mkdir -p "$(dirname "$libdir")"
  exec 8>"$libdir.lock"
  flock 8
  if [[ -f $libdir/.complete ]]; then exec 8>&-; return; fi
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed once to fetch Kafka's jars from Maven Central: 'apt-get install maven'."
  say "Resolving Apache Kafka jars from Maven Central into $libdir ..."
  rm -rf "$libdir"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libdir" >&2 ||
    die "Maven could not resolve Kafka's jars (see the output above)."
  touch "$libdir/.complete"
  exec 8>&-
}

node_dir() { printf '%s/node-%s' "$state" "$1"; }

write_config() {
  local i=$1 dir host port cport
  dir=$(node_dir "$i")
  host=$(node_host "$i")
  port=$(node_port "$i")
  cport=$(node_cport "$i")
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<PROPS
# Written by docker/kafka-cluster.sh: node $i of a 3-node KRaft cluster for failover tests ($net mode).
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$(voters)
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$cport
advertised.listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$cport
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
share.coordinator.state.topic.num.partitions=3
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
}

write_log_config() {
  cat >"$state/log4j2.properties" <<'PROPS'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
PROPS
  # The tools print only errors, on stderr: a node that is down is expected here, not worth a warning.
  cat >"$state/log4j2-tool.properties" <<'PROPS'
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = ERROR
rootLogger.appenderRef.err.ref = STDERR
PROPS
}

kafka_java() { java -Xms128m -Xmx256m -cp "$libdir/*" "-Dlog4j2.configurationFile=$state/log4j2-tool.properties" "$@"; }

# A Kafka cluster id is 16 random bytes in URL-safe base64 without padding (as StorageTool random-uuid
# makes it; one that starts with '-' would read as an option).
cluster_id() {
  if [[ ! -s $state/cluster.id ]]; then
    local id=-
    while [[ $id == -* ]]; do id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22); done
    echo "$id" >"$state/cluster.id"
  fi
  cat "$state/cluster.id"
}

# An empty data directory is formatted with the cluster's id. With a static quorum
# (controller.quorum.voters) no bootstrap voter set is written, so a re-formatted node rejoins as the
# same voter and fetches the metadata log from the leader.
format_node() {
  local i=$1 dir id
  dir=$(node_dir "$i")
  [[ -f $dir/data/meta.properties ]] && return 0
  id=$(cluster_id)
  say "Formatting node $i's storage in $dir/data (cluster $id)."
  kafka_java kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" >>"$dir/kafka.log" 2>&1 ||
    { tail -n 20 "$dir/kafka.log" >&2; die "Formatting node $i's storage failed."; }
}

prepare() {
  check_java
  resolve_jars
  mkdir -p "$state"
  write_log_config
  cluster_id >/dev/null
  local i jobs=()
  for i in "${nodes[@]}"; do
    write_config "$i"
    # Each format is a JVM of its own: side by side they take the time of one.
    format_node "$i" &
    jobs+=($!)
  done
  for i in "${jobs[@]}"; do wait "$i" || exit 1; done
}

# ---------------------------------------------------------------------------------------------------
# Processes

node_pid() {
  local pidfile pid st
  pidfile=$(node_dir "$1")/kafka.pid
  [[ -f $pidfile ]] || return 1
  pid=$(cat "$pidfile")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  # A zombie (killed, not yet reaped) or a recycled pid is not the node.
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
  [[ $st != Z && $st != X ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$state/node-$1/server.properties" || return 1
  printf '%s' "$pid"
}

gone() { ! kill -0 "$1" 2>/dev/null || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }

declare -A started_at=()

# Starts node I in the background (in its namespace in netns mode); wait_started waits for it.
launch_node() {
  local i=$1 dir pid ns_prefix=""
  dir=$(node_dir "$i")
  if pid=$(node_pid "$i"); then
    say "Node $i already runs (pid $pid)."
    return 0
  fi
  if [[ $net == loopback ]] && port_open 127.0.0.1 "$(node_port "$i")"; then
    die "Port $(node_port "$i") of node $i is taken by another process; set HR_CLUSTER_PORT."
  fi
  [[ $net == netns ]] && ns_prefix="ip netns exec $(node_ns "$i")"
  touch "$dir/kafka.log"
  started_at[$i]=$(stat -c %s "$dir/kafka.log")
  rm -f "$dir/kafka.pid"
  say "Starting node $i on $(node_host "$i"):$(node_port "$i") (log: $dir/kafka.log)."
  # setsid: the node outlives the shell that started it, until `down`. `ip netns exec` execs the JVM,
  # so the pid written is the JVM's.
  setsid nohup bash -c "echo \$\$ >'$dir/kafka.pid'; exec $ns_prefix java -Xms256m -Xmx$heap \
      -cp '$libdir/*' -Dlog4j2.configurationFile='$state/log4j2.properties' kafka.Kafka '$dir/server.properties'" \
    >>"$dir/kafka.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  local n
  for ((n = 0; n < 50; n++)); do [[ -s $dir/kafka.pid ]] && break; sleep 0.1; done
}

# Why a node may not come up: no controller quorum, or a cut.
start_hint() {
  local i
  if [[ $(running_count) -lt 2 ]]; then
    printf ' A node registers with the active controller, which needs 2 of the 3 nodes running (start them together: start 1 2 3); Kafka gives up after 60 s.'
  fi
  if [[ $net == netns ]]; then
    for i in "$@"; do link_cut "$(node_veth "$i")" && printf ' Node %s is cut: heal %s.' "$i" "$i"; done
  fi
  return 0
}

# Waits until each node launched by this run has logged "Kafka Server started" and answers.
wait_started() {
  local i n dir pid pending=("${!started_at[@]}") left
  for ((n = 0; n < 240 && ${#pending[@]} > 0; n++)); do
    left=()
    for i in "${pending[@]}"; do
      dir=$(node_dir "$i")
      pid=$(cat "$dir/kafka.pid" 2>/dev/null || true)
      if [[ -z $pid ]] || gone "$pid"; then
        tail -n 40 "$dir/kafka.log" >&2
        die "Node $i exited during start-up; its log is above ($dir/kafka.log).$(start_hint)"
      fi
      if tail -c "+$((started_at[$i] + 1))" "$dir/kafka.log" | grep -q 'Kafka Server started' &&
        port_open "$(node_host "$i")" "$(node_port "$i")"; then
        say "Node $i is up (pid $pid)."
      else
        left+=("$i")
      fi
    done
    pending=("${left[@]}")
    [[ ${#pending[@]} -gt 0 ]] && sleep 0.5
  done
  if [[ ${#pending[@]} -gt 0 ]]; then
    for i in "${pending[@]}"; do
      say "--- node $i: $(node_dir "$i")/kafka.log"
      tail -n 20 "$(node_dir "$i")/kafka.log" >&2
    done
    die "Node(s) ${pending[*]} did not start within 120 s; logs above.$(start_hint "${pending[@]}")"
  fi
  started_at=()
}

running_count() {
  local i n=0
  for i in "${nodes[@]}"; do node_pid "$i" >/dev/null && n=$((n + 1)); done
  printf '%s' "$n"
}

# SIGTERM (or SIGKILL) to the given nodes at once, then waits for them to exit. A node's controlled
# shutdown needs an active controller, i.e. 2 of the 3 nodes: the last node left running cannot get
# one (Kafka would wait 5 minutes), so after 10 s it is killed; any other after stop_timeout.
signal_nodes() {
  local sig=$1 i pid n
  shift
  local pids=()
  for i in "$@"; do
    if pid=$(node_pid "$i"); then
      say "Node $i (pid $pid): SIG$sig."
      kill "-$sig" "$pid" 2>/dev/null || true
      pids+=("$i:$pid")
    fi
  done
  local entry waiting
  for ((n = 0; n < stop_timeout * 2; n++)); do
    waiting=0
    for entry in "${pids[@]}"; do gone "${entry#*:}" || waiting=1; done
    [[ $waiting == 0 ]] && break
    if [[ $sig == TERM && $n -ge 20 && $(running_count) -le 1 ]]; then
      for entry in "${pids[@]}"; do
        gone "${entry#*:}" && continue
        say "Node ${entry%%:*} is the last one running: no quorum can approve its controlled shutdown; killing it."
        kill -KILL "${entry#*:}" 2>/dev/null || true
      done
    fi
    sleep 0.5
  done
  for entry in "${pids[@]}"; do
    if ! gone "${entry#*:}"; then
      say "Node ${entry%%:*} did not stop within ${stop_timeout} s; killing it."
      kill -KILL "${entry#*:}" 2>/dev/null || true
      for ((n = 0; n < 20; n++)); do gone "${entry#*:}" && break; sleep 0.5; done
    fi
    rm -f "$(node_dir "${entry%%:*}")/kafka.pid"
  done
}

# ---------------------------------------------------------------------------------------------------
# The Java helper (Kafka's Admin, producer and consumer clients)

tool_source() {
  cat <<'JAVA'
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The queries and clients of docker/kafka-cluster.sh. */
public class ClusterTool {
  static Properties common(String bootstrap) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("client.id", "kafka-cluster-sh");
    // A cut or stopped node must not hold a query up for long: try the next one soon.
    p.put("socket.connection.setup.timeout.ms", "2000");
    p.put("socket.connection.setup.timeout.max.ms", "4000");
    p.put("reconnect.backoff.max.ms", "1000");
    p.put("request.timeout.ms", "8000");
    return p;
  }

  static Admin admin(String bootstrap) {
    Properties p = common(bootstrap);
    p.put("default.api.timeout.ms", "15000");
    return Admin.create(p);
  }

  static Throwable cause(Throwable e) {
    return e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
  }

  static String ids(List<Node> nodes) {
    StringJoiner j = new StringJoiner(",");
    for (Node n : nodes) j.add(Integer.toString(n.id()));
    return j.toString();
  }

  static Map<String, TopicDescription> describe(Admin ad, String topic) throws Exception {
    Collection<String> names = topic.equals("all")
        ? ad.listTopics(new ListTopicsOptions().listInternal(true)).names().get()
        : List.of(topic);
    return new TreeMap<>(ad.describeTopics(names).allTopicNames().get());
  }

  public static void main(String[] args) throws Exception {
    String cmd = args[0], bs = args[1];
    switch (cmd) {
      case "controller": System.exit(controller(bs, Integer.parseInt(args[2])));
      case "leaders": System.exit(leaders(bs, args[2]));
      case "wait-isr": System.exit(waitIsr(bs, args[2], Integer.parseInt(args[3])));
      case "topic": System.exit(topic(bs, args[2], Integer.parseInt(args[3])));
      case "produce": System.exit(produce(bs, args[2]));
      case "consume": System.exit(consume(bs, args[2], Long.parseLong(args[3])));
      default: System.err.println("unknown command " + cmd); System.exit(2);
    }
  }

  /** The active controller's node id, retried until one answers (an election may be under way). */
  static int controller(String bs, int seconds) throws Exception {
    long deadline = System.currentTimeMillis() + seconds * 1000L;
    Throwable last = null;
    try (Admin ad = admin(bs)) {
      while (System.currentTimeMillis() < deadline) {
        try {
          QuorumInfo q = ad.describeMetadataQuorum().quorumInfo().get();
          if (q.leaderId() >= 0) {
            System.out.println(q.leaderId());
            return 0;
          }
        } catch (Exception e) {
          last = cause(e);
        }
        Thread.sleep(500);
      }
    }
    System.err.println("kafka-cluster: no active controller within " + seconds + " s"
        + (last == null ? "" : ": " + last));
    return 1;
  }

  static int leaders(String bs, String topic) throws Exception {
    try (Admin ad = admin(bs)) {
      for (TopicDescription d : describe(ad, topic).values()) {
        for (TopicPartitionInfo p : d.partitions()) {
          String line = p.partition() + " " + (p.leader() == null ? -1 : p.leader().id()) + " " + ids(p.isr());
          System.out.println(topic.equals("all") ? d.name() + " " + line : line);
        }
      }
      return 0;
    } catch (ExecutionException e) {
      System.err.println("kafka-cluster: " + cause(e).getMessage());
      return 1;
    }
  }

  /** Partitions whose ISR lacks some of their replicas, as "topic-p isr A of R" strings. */
  static List<String> short_(Map<String, TopicDescription> ds) {
    List<String> out = new ArrayList<>();
    for (TopicDescription d : ds.values()) {
      for (TopicPartitionInfo p : d.partitions()) {
        if (p.leader() == null || !new HashSet<>(p.isr()).containsAll(p.replicas())) {
          out.add(d.name() + "-" + p.partition() + " isr " + ids(p.isr()) + " of " + ids(p.replicas()));
        }
      }
    }
    return out;
  }

  static int waitIsr(String bs, String topic, int seconds) throws Exception {
    long start = System.currentTimeMillis(), deadline = start + seconds * 1000L, lastSaid = start;
    String last = "no answer from the cluster";
    try (Admin ad = admin(bs)) {
      while (System.currentTimeMillis() < deadline) {
        try {
          Map<String, TopicDescription> ds = describe(ad, topic);
          List<String> lacking = short_(ds);
          int parts = 0;
          for (TopicDescription d : ds.values()) parts += d.partitions().size();
          if (lacking.isEmpty()) {
            System.out.printf("%s: all %d partitions have their full ISR (%.1f s)%n",
                topic.equals("all") ? "every topic" : topic, parts,
                (System.currentTimeMillis() - start) / 1000.0);
            return 0;
          }
          last = lacking.size() + " of " + parts + " partitions short: " + String.join(", ", lacking);
        } catch (ExecutionException e) {
          if (cause(e) instanceof UnknownTopicOrPartitionException) {
            System.err.println("kafka-cluster: no topic " + topic);
            return 1;
          }
          last = cause(e).toString();
        }
        if (System.currentTimeMillis() - lastSaid >= 5000) {
          System.err.println("kafka-cluster: waiting: " + last);
          lastSaid = System.currentTimeMillis();
        }
        Thread.sleep(500);
      }
    }
    System.err.println("kafka-cluster: " + topic + ": no full ISR within " + seconds + " s: " + last);
    return 1;
  }

  static int topic(String bs, String topic, int partitions) throws Exception {
    try (Admin ad = admin(bs)) {
      ad.createTopics(List.of(new NewTopic(topic, Optional.of(partitions), Optional.empty()))).all().get();
      System.err.println("kafka-cluster: created " + topic + " (" + partitions + " partitions)");
      return 0;
    } catch (ExecutionException e) {
      if (cause(e) instanceof TopicExistsException) {
        System.err.println("kafka-cluster: " + topic + " exists already");
        return 0;
      }
      System.err.println("kafka-cluster: " + cause(e).getMessage());
      return 1;
    }
  }

  static int produce(String bs, String topic) throws Exception {
    Properties p = common(bs);
    p.put("acks", "all");
    p.put("enable.idempotence", "true");
    p.put("linger.ms", "5");
    p.put("delivery.timeout.ms", "60000");
    p.put("key.serializer", StringSerializer.class.getName());
    p.put("value.serializer", StringSerializer.class.getName());
    List<Future<RecordMetadata>> sent = new ArrayList<>();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        int tab = line.indexOf('\t');
        String key = tab < 0 ? null : line.substring(0, tab);
        String value = tab < 0 ? line : line.substring(tab + 1);
        sent.add(producer.send(new ProducerRecord<>(topic, key, value)));
      }
      producer.flush();
      int failed = 0;
      for (Future<RecordMetadata> f : sent) {
        try {
          f.get();
        } catch (ExecutionException e) {
          if (failed++ == 0) System.err.println("kafka-cluster: " + cause(e));
        }
      }
      System.err.println("kafka-cluster: produced " + (sent.size() - failed) + " records to " + topic
          + (failed > 0 ? ", " + failed + " failed" : ""));
      return failed > 0 ? 1 : 0;
    }
  }

  /** Reads the topic from the beginning to its end offsets (as of now), without a group. */
  static int consume(String bs, String topic, long max) throws Exception {
    Properties p = common(bs);
    p.put("isolation.level", "read_committed");
    p.put("enable.auto.commit", "false");
    p.put("default.api.timeout.ms", "30000");
    p.put("key.deserializer", StringDeserializer.class.getName());
    p.put("value.deserializer", StringDeserializer.class.getName());
    long count = 0;
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
      List<TopicPartition> tps = new ArrayList<>();
      for (PartitionInfo pi : c.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps);
      long deadline = System.currentTimeMillis() + 60_000;
      while (count < max && System.currentTimeMillis() < deadline) {
        boolean done = true;
        for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) done = false;
        if (done) break;
        for (ConsumerRecord<String, String> r : c.poll(java.time.Duration.ofMillis(500))) {
          System.out.println(r.key() == null ? r.value() : r.key() + "\t" + r.value());
          if (++count >= max) break;
        }
      }
    }
    System.out.flush();
    System.err.println("kafka-cluster: consumed " + count + " records from " + topic);
    return 0;
  }
}
JAVA
}

ensure_tool() {
  check_java
  resolve_jars
  mkdir -p "$tooldir"
  local sum
  sum=$(tool_source | sha256sum | cut -c1-16)
  [[ -f $tooldir/classes/.$sum && -f $state/log4j2-tool.properties ]] && return 0
  exec 7>"$tooldir.lock"
  flock 7
  if [[ ! -f $tooldir/classes/.$sum ]]; then
    command -v javac >/dev/null 2>&1 || die "javac is needed for the cluster queries (a JDK): 'apt-get install openjdk-17-jdk-headless'."
    tool_source >"$tooldir/ClusterTool.java"
    rm -rf "$tooldir/classes"
    javac -nowarn -d "$tooldir/classes" -cp "$libdir/*" "$tooldir/ClusterTool.java" >&2 ||
      die "Compiling the cluster tool failed."
    touch "$tooldir/classes/.$sum"
  fi
  [[ -f $state/log4j2-tool.properties ]] || write_log_config
  exec 7>&-
}

tool() {
  # The netns addresses are the same for every state directory: do not answer for another's cluster.
  if [[ $net == netns ]]; then owner_only "$1"; fi
  ensure_tool
  java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -cp "$tooldir/classes:$libdir/*" \
    "-Dlog4j2.configurationFile=$state/log4j2-tool.properties" ClusterTool "$1" "$(bootstrap)" "${@:2}"
}

# ---------------------------------------------------------------------------------------------------
# Commands

lock() {
  mkdir -p "$state"
  exec 9>"$state/lock"
  flock 9
}

node_args() {
  local cmd=$1 i
  shift
  [[ $# -gt 0 ]] || { echo "usage: $0 $cmd N [N...]  (N: 1, 2 or 3)" >&2; exit 2; }
  for i in "$@"; do
    [[ $i =~ ^[123]$ ]] || { echo "$0 $cmd: no node '$i' (nodes are 1, 2, 3)" >&2; exit 2; }
  done
}

cmd_up() {
  lock
  ensure_net
  prepare
  echo "$net" >"$state/net"
  local i
  for i in "${nodes[@]}"; do launch_node "$i"; done
  # The query tool compiles (once) while the nodes start.
  ensure_tool &
  local compiling=$!
  wait_started
  wait "$compiling" || exit 1
  local c
  c=$(tool controller 60) || die "The cluster has no active controller; see '$0 logs'."
  say "Cluster up ($net mode), active controller: node $c. Bootstrap: $(bootstrap)"
}

cmd_down() {
  lock
  signal_nodes TERM "${nodes[@]}"
  if [[ $net == netns ]]; then
    local other
    other=$(foreign_owner)
    if [[ -z $other ]]; then
      teardown_net
    else
      say "The netns network is in use by the cluster in $other; left in place."
    fi
  fi
  rm -f "$state/net"
  say "Cluster down."
}

cmd_clean() {
  cmd_down
  say "Removing $state (the jars in $libdir are kept)."
  rm -rf "$state"
}

cmd_status() {
  local i pid all=0 extra host
  if [[ $net == netns ]]; then
    local other
    other=$(foreign_owner)
    echo "mode: netns (bridge $bridge $subnet.1/24$(link_exists "$bridge" || echo ', absent')${other:+, in use by the cluster in $other}), state $state"
  else
    echo "mode: loopback, state $state"
  fi
  for i in "${nodes[@]}"; do
    extra=""
    if [[ $net == netns ]]; then
      extra=" ns $(node_ns "$i")"
      link_cut "$(node_veth "$i")" && extra+=" CUT"
    fi
    if pid=$(node_pid "$i"); then
      printf 'node %s: running pid %s  %s:%s (controller :%s)%s\n' "$i" "$pid" "$(node_host "$i")" "$(node_port "$i")" "$(node_cport "$i")" "$extra"
    else
      printf 'node %s: stopped  %s:%s (controller :%s)%s\n' "$i" "$(node_host "$i")" "$(node_port "$i")" "$(node_cport "$i")" "$extra"
      all=3
    fi
  done
  if [[ -d $state/hosts ]]; then
    for host in "$state"/hosts/*; do
      [[ -f $host ]] || continue
      extra=""
      link_cut "hrh-${host##*/}" && extra=" CUT"
      printf 'host %s: %s ns hr-host-%s%s\n' "${host##*/}" "$(cat "$host")" "${host##*/}" "$extra"
    done
  fi
  echo "bootstrap: $(bootstrap)"
  return $all
}

cmd_logs() {
  local f
  if [[ $# -gt 0 ]]; then
    node_args logs "$1"
    f=$(node_dir "$1")/kafka.log
    [[ -f $f ]] || die "No log yet at $f."
    tail -n "${LINES_SHOWN:-200}" "$f"
  else
    local files=()
    for f in "$state"/node-*/kafka.log; do [[ -f $f ]] && files+=("$f"); done
    [[ ${#files[@]} -gt 0 ]] || die "No logs yet in $state."
    tail -n "${LINES_SHOWN:-200}" "${files[@]}"
  fi
}

cmd_kill() {
  node_args kill "$@"
  lock
  local i
  for i in "$@"; do node_pid "$i" >/dev/null || say "Node $i does not run."; done
  signal_nodes KILL "$@"
}

cmd_stop() {
  node_args stop "$@"
  lock
  local i
  for i in "$@"; do node_pid "$i" >/dev/null || say "Node $i does not run."; done
  signal_nodes TERM "$@"
}

cmd_start() {
  node_args start "$@"
  lock
  ensure_net
  prepare
  echo "$net" >"$state/net"
  local i
  for i in "$@"; do launch_node "$i"; done
  wait_started
}

cmd_wipe() {
  node_args wipe "$@"
  lock
  signal_nodes KILL "$@"
  local i
  for i in "$@"; do
    say "Wiping node $i's data ($(node_dir "$i")/data)."
    rm -rf "$(node_dir "$i")/data"
  done
  prepare
  say "Node(s) $* are empty and stopped; 'start $*' brings them back."
}

# The namespace and host-side veth of a node number or a host name.
target() {
  if [[ $1 =~ ^[123]$ ]]; then
    printf '%s %s' "$(node_ns "$1")" "$(node_veth "$1")"
  elif [[ -f $state/hosts/$1 ]]; then
    printf 'hr-host-%s hrh-%s' "$1" "$1"
  else
    local h hosts=""
    for h in "$state"/hosts/*; do [[ -f $h ]] && hosts+=" ${h##*/}"; done
    die "No node or host '$1' (nodes: 1 2 3; hosts:${hosts:- none})."
  fi
}

cmd_cut_heal() {
  local cmd=$1 t ns veth info
  shift
  [[ $net == netns ]] || need_netns "$cmd"
  owner_only "$cmd"
  [[ $# -gt 0 ]] || { echo "usage: $0 $cmd N|NAME..." >&2; exit 2; }
  for t in "$@"; do
    info=$(target "$t")
    read -r ns veth <<<"$info"
    link_exists "$veth" || die "$t has no link ($veth); is the cluster up?"
    if [[ $cmd == cut ]]; then
      ip link set "$veth" down
      say "Cut $t ($ns): $veth is down; its processes keep running."
    else
      ip link set "$veth" up
      say "Healed $t ($ns)."
    fi
  done
}

cmd_host() {
  [[ $net == netns ]] || need_netns host
  owner_only host
  local sub=${1:-} name=${2:-}
  [[ ($sub == add || $sub == del) && -n $name ]] || { echo "usage: $0 host add|del NAME" >&2; exit 2; }
  [[ $name =~ ^[a-z0-9][a-z0-9-]{0,10}$ ]] || die "A host name is 1 to 11 of a-z, 0-9 and '-' (it names the veth hrh-NAME)."
  lock
  local file=$state/hosts/$name
  if [[ $sub == del ]]; then
    remove_ns "hr-host-$name" "hrh-$name"
    rm -f "$file"
    say "Host $name removed."
    return 0
  fi
  mkdir -p "$state/hosts"
  local addr n used
  if [[ -f $file ]]; then
    addr=$(cat "$file")
  else
    used=$(cat "$state"/hosts/* 2>/dev/null || true)
    for ((n = 21; n < 255; n++)); do
      grep -qx "$subnet.$n" <<<"$used" || { addr=$subnet.$n; break; }
    done
    [[ -n ${addr:-} ]] || die "No free address left on $subnet.0/24."
    echo "$addr" >"$file"
  fi
  claim_net
  ensure_bridge
  ensure_ns "hr-host-$name" "hrh-$name" "$addr"
  say "Host $name: namespace hr-host-$name at $addr; run in it with '$0 exec $name -- CMD...'."
  echo "$addr"
}

cmd_exec() {
  [[ $net == netns ]] || need_netns exec
  owner_only exec
  local name=${1:-} ns veth info
  [[ -n $name && ${2:-} == -- && $# -ge 3 ]] || { echo "usage: $0 exec NAME -- CMD..." >&2; exit 2; }
  shift 2
  info=$(target "$name")
  read -r ns veth <<<"$info"
  ns_exists "$ns" || die "No namespace $ns; is the cluster up ('host add $name' for a host)?"
  exec ip netns exec "$ns" "$@"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  clean) cmd_clean ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  bootstrap) bootstrap; echo ;;
  kill) shift; cmd_kill "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  start) shift; cmd_start "$@" ;;
  wipe) shift; cmd_wipe "$@" ;;
  cut | heal) cmd_cut_heal "$@" ;;
  host) shift; cmd_host "$@" ;;
  exec) shift; cmd_exec "$@" ;;
  controller) tool controller 30 ;;
  leaders) [[ -n ${2:-} ]] || { echo "usage: $0 leaders TOPIC|all" >&2; exit 2; }; tool leaders "$2" ;;
  wait-isr) [[ -n ${2:-} ]] || { echo "usage: $0 wait-isr TOPIC|all [SECONDS]" >&2; exit 2; }; tool wait-isr "$2" "${3:-120}" ;;
  topic) [[ -n ${2:-} ]] || { echo "usage: $0 topic TOPIC [PARTITIONS]" >&2; exit 2; }; tool topic "$2" "${3:-3}" ;;
  produce) [[ -n ${2:-} ]] || { echo "usage: $0 produce TOPIC <lines" >&2; exit 2; }; tool produce "$2" ;;
  consume) [[ -n ${2:-} ]] || { echo "usage: $0 consume TOPIC [MAX]" >&2; exit 2; }; tool consume "$2" "${3:-9223372036854775807}" ;;
  *)
    cat >&2 <<USAGE
usage: $0 up|down|status|logs [N]|clean|bootstrap
       $0 kill N|stop N|start N|wipe N
       $0 cut N|NAME|heal N|NAME|host add NAME|host del NAME|exec NAME -- CMD...
       $0 controller|leaders TOPIC|wait-isr TOPIC|all [SECONDS]
       $0 topic TOPIC [PARTITIONS]|produce TOPIC|consume TOPIC [MAX]
USAGE
    exit 2 ;;
esac
