#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft: one process is broker and controller) for development and tests.
#
#   docker/kafka-local.sh up|down|status|logs|clean
#
# `up` uses docker/compose.yml where a Docker engine answers; otherwise it runs Apache Kafka's own jars,
# resolved from Maven Central by docker/kafka-native/pom.xml, on the local JVM (Java 17+). It is
# idempotent and safe to call from several processes at once (test binaries do): a lock serialises
# starts, and a broker that already answers is reused.
#
# Environment:
#   HR_KAFKA_PORT             client port (default 9092)
#   HR_KAFKA_CONTROLLER_PORT  KRaft controller port (default client port + 1)
#   HR_KAFKA_STATE            state directory: data, log, pid, config (default <repo>/.kafka)
#   HR_KAFKA_MODE             force "docker" or "native" (default: docker if the engine answers)
#   HR_KAFKA_HEAP             JVM heap for the native broker (default 1g)
#   HR_KAFKA_GC_OPTS          the native broker's collector settings (default: G1 as Kafka's own
#                             kafka-server-start.sh sets it; e.g. -XX:+UseZGC; REPORT.md compares)
#   HR_KAFKA_JVM_OPTS         more JVM options for the native broker (e.g. -XX:TieredStopAtLevel=1,
#                             the quick compiler only: a just-started broker answers in its first
#                             seconds as fast as later, but a warm one is slower at 100 k records/s;
#                             REPORT.md)
#   HR_KAFKA_WARMUP           seconds of warm-up traffic a new native broker gets before `up` returns
#                             (default 10; 0: none), then more until the broker's optimizing
#                             compiler has gone quiet (Linux; at most three times as long): a JVM
#                             broker compiles its hot paths in its first seconds of traffic and, on
#                             two cores, acknowledged records up to 2 s late meanwhile (REPORT.md);
#                             docker/kafka-native/Warmup.java sends the job's kinds of traffic
#                             through a topic of its own and repeats a job's start (new topics,
#                             producers and groups), then deletes what it made
#   HR_KAFKA_WARMUP_JOB=1     after that, the job itself runs twice for 5 s on topics of its own
#                             (examples/latency.sh, with hr-pipeline and the latency example built
#                             earlier: HR_BIN_DIR, else target/release or target/debug), so the
#                             broker meets the job's own client (librdkafka) before the job does:
#                             its compiler is then done before a first run, but the first runs
#                             measured were not faster for it (REPORT.md), so it is not the default
#   HR_KAFKA_LIB              folder of Kafka's jars (default <state>/lib); brokers with other state
#                             directories share one set of jars through it
#   HR_KAFKA_SECURITY         "plaintext" (default) or "sasl_ssl": a secured broker for TLS/SASL tests
#                             (native only; docker/kafka-tls.sh sets this and the variables above)
#
# A sasl_ssl broker makes, on first start, a self-signed CA and certificates with openssl in
# <state>/tls, and SCRAM users at format time. Its listeners, from HR_KAFKA_PORT = P:
#   P    SASL_SSL   SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN (users below), and OAUTHBEARER with
#                   unsecured (unsigned) JWTs, whose principal is taken as given
#   P+1  CONTROLLER (KRaft, plaintext)
#   P+2  SSL        mTLS: a client certificate signed by the CA is required (principal = its CN)
#   P+3  PLAINTEXT  on 127.0.0.1 only, between the broker's own parts (inter-broker listener)
#   P+4  SSL        serves an expired certificate, so clients can see that failure
# Users: alice / alice-secret (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN; super user),
#        bob / bob-secret (SCRAM-SHA-256, PLAIN; no ACLs: authenticated but authorised for nothing),
#        hr-client (the client certificate <state>/tls/client.{crt,key}; super user).
# Files in <state>/tls: ca.pem (trust it), client.crt + client.key, other-ca.pem (a CA the broker
# does not use, for "unknown CA" tests).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${HR_KAFKA_PORT:-9092}
cport=${HR_KAFKA_CONTROLLER_PORT:-$((port + 1))}
state=${HR_KAFKA_STATE:-$repo/.kafka}
heap=${HR_KAFKA_HEAP:-1g}
security=${HR_KAFKA_SECURITY:-plaintext}
pom=$repo/docker/kafka-native/pom.xml
libdir=${HR_KAFKA_LIB:-$state/lib}
tls=$state/tls
pidfile=$state/kafka.pid
logfile=$state/kafka.log
modefile=$state/mode

say() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

case $security in
  plaintext | sasl_ssl) ;;
  *) die "HR_KAFKA_SECURITY must be plaintext or sasl_ssl, not '$security'." ;;
esac

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

native_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
}

docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

choose_mode() {
  # docker/compose.yml describes the plaintext broker only.
  if [[ $security != plaintext ]]; then printf native; return; fi
  case "${HR_KAFKA_MODE:-}" in
    docker | native) printf '%s' "$HR_KAFKA_MODE"; return ;;
    "") ;;
    *) die "HR_KAFKA_MODE must be docker or native, not '$HR_KAFKA_MODE'." ;;
  esac
  if docker_ok; then
    printf docker
  elif command -v java >/dev/null 2>&1; then
    printf native
  else
    die "Neither a Docker engine nor Java was found. Install Docker (https://docs.docker.com/engine/install/) or a Java 17+ JDK with Maven (e.g. 'apt-get install openjdk-17-jdk-headless maven'), then run 'just up' again."
  fi
}

java_major() {
  java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1
}

resolve_jars() {
  if [[ -f $libdir/.complete ]]; then return; fi
  # Brokers with different state directories may share the jars (HR_KAFKA_LIB): one resolves them.
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

# The test CA, the broker's certificates (a valid one and an expired one), a client certificate for
# mTLS and an unrelated CA. Made once per state directory; `clean` removes them.
make_certs() {
  [[ -f $tls/.complete ]] && return
  command -v openssl >/dev/null 2>&1 || die "openssl is needed to make the test certificates: 'apt-get install openssl'."
  rm -rf "$tls"
  mkdir -p "$tls"
  say "Making a test CA and certificates in $tls."
  (
    cd "$tls"
    local q=(-newkey rsa:2048 -nodes)
    openssl req -x509 "${q[@]}" -keyout ca.key -out ca.pem -days 3650 -subj "/CN=hr-stream test CA"
    openssl req -x509 "${q[@]}" -keyout other-ca.key -out other-ca.pem -days 3650 -subj "/CN=hr-stream other CA"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >broker.ext
    openssl req "${q[@]}" -keyout broker.key -out broker.csr -subj "/CN=localhost"
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.crt -days 3650 -extfile broker.ext
    # -days -1: valid until yesterday, so every client sees "certificate has expired".
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out expired.crt -days -1 -extfile broker.ext
    openssl req "${q[@]}" -keyout client.key -out client.csr -subj "/CN=hr-client"
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.crt -days 3650
    # Kafka's PEM key stores: an unencrypted PKCS#8 key followed by the certificate chain.
    cat broker.key broker.crt ca.pem >broker.pem
    cat broker.key expired.crt ca.pem >expired.pem
    rm -f ./*.csr ./*.srl broker.ext
  ) >>"$tls/openssl.log" 2>&1 || { tail -n 20 "$tls/openssl.log" >&2; die "openssl failed to make the test certificates."; }
  touch "$tls/.complete"
}

# Listeners and security settings of a sasl_ssl broker (see the header for the ports).
security_props() {
  local sasl=$port ssl=$((port + 2)) internal=$((port + 3)) expired=$((port + 4))
  cat <<PROPS
listeners=SASL_SSL://:$sasl,CONTROLLER://:$cport,SSL://:$ssl,INTERNAL://127.0.0.1:$internal,EXPIRED://:$expired
advertised.listeners=SASL_SSL://localhost:$sasl,SSL://localhost:$ssl,INTERNAL://127.0.0.1:$internal,EXPIRED://localhost:$expired,CONTROLLER://localhost:$cport
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,EXPIRED:SSL
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN,OAUTHBEARER
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob-secret";
# OAUTHBEARER with Kafka's default, unsecured token validator: any unsigned JWT names its principal.
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
listener.name.expired.ssl.keystore.type=PEM
listener.name.expired.ssl.keystore.location=$tls/expired.pem
ssl.principal.mapping.rules=RULE:^CN=([^,]*).*$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:alice;User:hr-client
allow.everyone.if.no.acl.found=false
PROPS
}

# SCRAM credentials are part of the KRaft metadata, so they are written when the storage is formatted.
scram_args() {
  [[ $security == sasl_ssl ]] || return 0
  printf '%s\n' --add-scram 'SCRAM-SHA-256=[name=alice,password=alice-secret]' \
    --add-scram 'SCRAM-SHA-512=[name=alice,password=alice-secret]' \
    --add-scram 'SCRAM-SHA-256=[name=bob,password=bob-secret]'
}

plaintext_props() {
  cat <<PROPS
listeners=PLAINTEXT://:$port,CONTROLLER://:$cport
advertised.listeners=PLAINTEXT://localhost:$port,CONTROLLER://localhost:$cport
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
PROPS
}

write_config() {
  mkdir -p "$state/data"
  local listeners
  if [[ $security == sasl_ssl ]]; then
    make_certs
    listeners=$(security_props)
  else
    listeners=$(plaintext_props)
  fi
  cat >"$state/server.properties" <<PROPS
# Written by docker/kafka-local.sh: a single-node KRaft cluster for development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:$cport
controller.listener.names=CONTROLLER
$listeners
log.dirs=$state/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
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
}

java_run() { java -Xms256m "-Xmx$heap" -cp "$libdir/*" "-Dlog4j2.configurationFile=$state/log4j2.properties" "$@"; }

up_native() {
  local major
  major=$(java_major)
  [[ ${major:-0} -ge 17 ]] || die "Java 17 or newer is needed for Kafka 4 (found ${major:-none})."
  resolve_jars
  write_config
  if [[ ! -f $state/data/meta.properties ]]; then
    local cluster_id
    cluster_id=$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    say "Formatting storage in $state/data (cluster $cluster_id)."
    local scram=()
    mapfile -t scram < <(scram_args)
    java_run kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$state/server.properties" "${scram[@]}" >>"$logfile" 2>&1 ||
      { tail -n 20 "$logfile" >&2; die "Formatting the storage failed."; }
  fi
  say "Starting Apache Kafka on localhost:$port (native, log: $logfile)."
  # The collector settings Kafka's own kafka-server-start.sh gives a broker (short G1 pauses),
  # unless HR_KAFKA_GC_OPTS names others.
  local gc_opts=${HR_KAFKA_GC_OPTS:-"-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent"}
  : >"$logfile.start"
  # A pid file left by a broker that died without `down` must not be mistaken for this one's.
  rm -f "$pidfile"
  # setsid: the broker outlives the shell (and test process) that started it, until `down`.
  setsid nohup bash -c "echo \$\$ >'$pidfile'; exec java -Xms256m -Xmx$heap $gc_opts ${HR_KAFKA_JVM_OPTS:-} -cp '$libdir/*' \
      -Dlog4j2.configurationFile='$state/log4j2.properties' kafka.Kafka '$state/server.properties'" \
    >>"$logfile" 2>&1 </dev/null 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do [[ -s $pidfile ]] && break; sleep 0.1; done
  # The start marker is searched only in this run's part of the log.
  local pid offset
  pid=$(cat "$pidfile")
  offset=$(stat -c %s "$logfile")
  wait_ready_since "$pid" "$offset"
  echo native >"$modefile"
  warm_up
}

# Traffic before anything depends on the new broker's answers (see HR_KAFKA_WARMUP): at least
# that many seconds, then until the broker's optimizing compiler has gone quiet (Linux; at most
# three times as long). The program runs on the quick compiler only, so that its own JVM takes
# little of the CPU the broker compiles with. A failure (no compiler in this JVM, a secured
# listener) is reported and skipped: the broker is up either way.
warm_up() {
  local seconds=${HR_KAFKA_WARMUP:-10}
  [[ $security == plaintext && $seconds =~ ^[0-9]+$ ]] && ((seconds > 0)) || return 0
  say "Warming the broker up: ${seconds}-$((3 * seconds)) s of produce, transactions, fetches and job starts, until its compiler is done (HR_KAFKA_WARMUP=0 skips it)."
  local watch=()
  if [[ -d /proc/$(cat "$pidfile")/task ]]; then watch=("$(cat "$pidfile")" "$(getconf CLK_TCK)"); fi
  : >"$state/warmup.log"
  if java -XX:TieredStopAtLevel=1 -Xmx256m -cp "$libdir/*" "$repo/docker/kafka-native/Warmup.java" \
    "localhost:$port" "$seconds" 10000 "${watch[@]}" >>"$state/warmup.log" 2>&1; then
    say "$(tail -n 1 "$state/warmup.log")"
  else
    say "The warm-up did not run (see $state/warmup.log); the broker is up, its first seconds slower."
  fi
  if [[ ${HR_KAFKA_WARMUP_JOB:-0} == 1 ]]; then warm_up_job; fi
}

# HR_KAFKA_WARMUP_JOB=1: the job's own client (librdkafka) asks the broker for what a Java client
# does not (its request versions, its fetch, idempotence and transaction paths): before the first
# job meets them, two short runs of examples/latency.sh (hr-pipeline at-least-once and
# exactly-once, readings from the latency probe, topics and groups deleted after), with binaries
# built earlier: HR_BIN_DIR, else the newer build of target/release and target/debug. With none
# built it is skipped.
warm_up_job() {
  local bin=${HR_BIN_DIR:-} b seconds=5 start=$SECONDS line
  if [[ -z $bin ]]; then
    for b in "${CARGO_TARGET_DIR:-$repo/target}"/{release,debug}; do
      [[ -x $b/hr-pipeline && -x $b/examples/latency ]] || continue
      if [[ -z $bin || $b/hr-pipeline -nt $bin/hr-pipeline ]]; then bin=$b; fi
    done
  fi
  if [[ -z $bin || ! -x $bin/hr-pipeline || ! -x $bin/examples/latency ]]; then
    say "No hr-pipeline and latency example built (HR_BIN_DIR, target/release, target/debug): the warm-up with the job's own client is skipped (\`cargo build -p hr-pipeline --bins --example latency\` builds them; \`just up\` does)."
    return 0
  fi
  if HR_BOOTSTRAP_SERVERS=localhost:$port HR_BIN_DIR=$bin HR_LATENCY_TIMELINE= HR_LATENCY_JOB_FLAGS= \
    "$repo/examples/latency.sh" "$seconds" 10000 200ms >>"$state/warmup.log" 2>&1; then
    line="job warm-up: hr-pipeline at-least-once and exactly-once (commit 200ms), ${seconds} s each at 10000 readings/s, in $((SECONDS - start)) s ($bin)"
    echo "$line" >>"$state/warmup.log"
    say "$line"
  else
    say "The warm-up with the job's own client failed (see $state/warmup.log); the broker is up."
  fi
}

wait_ready_since() {
  local pid=$1 offset=$2 i
  for ((i = 0; i < 240; i++)); do
    kill -0 "$pid" 2>/dev/null || { tail -n 40 "$logfile" >&2; die "The broker exited during start-up; its log is above ($logfile)."; }
    if port_open "$port" && tail -c "+$((offset + 1))" "$logfile" | grep 'Kafka Server started' >/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  die "The broker did not answer on localhost:$port within 120 s; see 'just logs'."
}

up_docker() {
  say "Starting Apache Kafka on localhost:$port with Docker Compose."
  HR_KAFKA_PORT=$port docker compose -f "$repo/docker/compose.yml" up -d --wait >&2
  echo docker >"$modefile"
}

cmd_up() {
  mkdir -p "$state"
  if port_open "$port"; then
    say "A broker already answers on localhost:$port; reusing it."
    return 0
  fi
  exec 9>"$state/lock"
  flock 9
  # Another process may have started it while this one waited for the lock.
  if port_open "$port"; then
    say "A broker already answers on localhost:$port; reusing it."
    return 0
  fi
  case $(choose_mode) in
    docker) up_docker ;;
    native) up_native ;;
  esac
  say "Kafka is up on localhost:$port."
}

cmd_down() {
  mkdir -p "$state"
  exec 9>"$state/lock"
  flock 9
  local mode pid i
  mode=$(cat "$modefile" 2>/dev/null || true)
  if [[ $mode == docker ]]; then
    docker compose -f "$repo/docker/compose.yml" down >&2
  fi
  if pid=$(native_pid); then
    say "Stopping the broker (pid $pid)."
    kill -TERM "$pid"
    for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      say "The broker did not stop within 60 s; killing it."
      kill -KILL "$pid" || true
    fi
  fi
  rm -f "$pidfile" "$modefile"
  say "Kafka is down."
}

cmd_status() {
  local pid mode
  mode=$(cat "$modefile" 2>/dev/null || true)
  if pid=$(native_pid); then
    echo "running: native broker pid $pid on localhost:$port (state $state)"
  elif [[ $mode == docker ]] && port_open "$port"; then
    echo "running: docker compose (docker/compose.yml) on localhost:$port"
  elif port_open "$port"; then
    echo "running: a broker not started by this script answers on localhost:$port"
  else
    echo "stopped: nothing answers on localhost:$port"
    return 3
  fi
}

cmd_logs() {
  local mode
  mode=$(cat "$modefile" 2>/dev/null || true)
  if [[ $mode == docker ]]; then
    docker compose -f "$repo/docker/compose.yml" logs --tail 200
  elif [[ -f $logfile ]]; then
    tail -n "${LINES_SHOWN:-200}" "$logfile"
  else
    say "No log yet at $logfile."
  fi
}

cmd_clean() {
  cmd_down
  say "Removing broker data in $state (jars are kept)."
  rm -rf "$state/data" "$state/server.properties" "$state/log4j2.properties" "$logfile"
  if [[ $security == sasl_ssl ]]; then rm -rf "$tls"; fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) cmd_logs ;;
  clean) cmd_clean ;;
  *) echo "usage: $0 up|down|status|logs|clean" >&2; exit 2 ;;
esac
