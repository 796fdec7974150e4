# Sourced by the demo and bench scripts: which broker to use, and a local one started on demand.
#
#   use_broker            sets $bootstrap: HR_BOOTSTRAP_SERVERS if given (a broker of your own),
#                         else the local broker on HR_KAFKA_PORT, started if none runs
#   stop_started_broker   stops the local broker if use_broker started it (HR_KEEP_BROKER=1 keeps it)

say() { printf '\033[1m%s:\033[0m %s\n' "${0##*/}" "$*" >&2; }

started_broker=0
use_broker() {
  if [[ -n ${HR_BOOTSTRAP_SERVERS:-} ]]; then
    bootstrap=$HR_BOOTSTRAP_SERVERS
    say "Using the broker at $bootstrap."
  else
    bootstrap=localhost:${HR_KAFKA_PORT:-9092}
    if ! docker/kafka-local.sh status >/dev/null 2>&1; then
      docker/kafka-local.sh up
      started_broker=1
    fi
  fi
}

stop_started_broker() {
  if ((started_broker)) && [[ -z ${HR_KEEP_BROKER:-} ]]; then
    say "Stopping the broker started for this run (HR_KEEP_BROKER=1 keeps it; 'just up' starts one)."
    docker/kafka-local.sh down >/dev/null 2>&1 || true
  fi
}
