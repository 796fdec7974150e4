#!/usr/bin/env bash
# The whole test suite (`just test`), on a fresh machine too.
#
#   examples/test.sh [more cargo test arguments, e.g. --test e2e, or -- --test-threads 1]
#   examples/test.sh --check     step 1 only (CI runs it first)
#
# 1. Before compiling anything, checks what the tests need besides Rust: Debian's chromium and
#    chromium-driver (the dashboard's browser tests), prometheus (a real Prometheus scraping the
#    job), Java 17+ and openssl (the native test brokers), Maven until Kafka's jars are resolved
#    once, and podman with podman-compose 1.1 or newer from PyPI (the image and stack tests; without
#    podman those two are skipped, and say so). Run as root where apt-get exists, it installs what is
#    missing; otherwise it prints one line naming the packages to install and exits 1.
# 2. Runs `cargo test --workspace --no-fail-fast`: every test binary runs even when one fails, cargo's
#    closing summary names the ones that failed, and this script exits non-zero then.
# 3. Stops the test brokers this run started (the plaintext one of docker/kafka-local.sh and the TLS
#    one of docker/kafka-tls.sh, both started on demand by the tests); ones that ran before stay.
#
# Environment: HR_KEEP_BROKER=1 keeps the brokers this run started; HR_TEST_INSTALL=0 never
# installs (only names what is missing); HR_KAFKA_BOOTSTRAP, HR_KAFKA_PORT and HR_KAFKA_TLS_PORT
# as for the tests (hr_kafka::testkit).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf 'just test: %s\n' "$*" >&2; }

# Debian packages to install, and what each is for (for the one line that names them).
packages=()
optional=()
need() { # need PACKAGE [optional]
  if [[ ${2:-} == optional ]]; then optional+=("$1"); else packages+=("$1"); fi
}
# An executable file on PATH (bash's `command -v` also names files that are not executable).
has() {
  local path
  path=$(type -P "$1" 2>/dev/null) && [[ -f $path && -x $path ]]
}

has cargo || {
  say "cargo not found: install Rust 1.88 or newer (https://rustup.rs), then run 'just test' again."
  exit 1
}
# The dashboard test looks in /usr/bin first, then on PATH; so does this check.
[[ -f /usr/bin/chromium && -x /usr/bin/chromium ]] || has chromium || need chromium
[[ -f /usr/bin/chromedriver && -x /usr/bin/chromedriver ]] || has chromedriver || need chromium-driver
[[ -n ${PROMETHEUS:-} && -f ${PROMETHEUS:-} && -x ${PROMETHEUS:-} ]] || has prometheus || need prometheus
# The TLS test broker always runs on the local JVM; the plaintext one does too unless a Docker
# engine or HR_KAFKA_BOOTSTRAP provides it.
java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1 || true)
((${java_major:-0} >= 17)) || need openjdk-17-jre-headless
has openssl || need openssl
[[ -f ${HR_KAFKA_LIB:-$repo/.kafka/lib}/.complete ]] || has mvn || need maven
# librdkafka is built with OpenSSL.
[[ -f /usr/include/openssl/ssl.h ]] || need libssl-dev
# The image and stack tests skip themselves without a container engine; as root, make them run.
# The stack test runs docker/compose-stack.yml with podman-compose, whose host networking needs 1.1
# or newer (Debian bookworm's 1.0.3 puts every container on a bridge): PyPI's.
compose_ok() { docker/image.sh compose-version >/dev/null 2>&1; }
pip_compose=0
if ! has docker || ! docker info >/dev/null 2>&1; then
  has podman || need podman optional
  # Podman runs here with runc (Debian's default runtime, crun, refuses hosts whose cgroups are in
  # hybrid mode); docker/image.sh picks runc when it is installed.
  has runc || need runc optional
  compose_ok || pip_compose=1
fi

check_only=0
if [[ ${1:-} == --check ]]; then check_only=1; fi

if ((${#packages[@]} + ${#optional[@]} + pip_compose)); then
  if [[ $(id -u) == 0 ]] && has apt-get && [[ ${HR_TEST_INSTALL:-1} != 0 ]]; then
    if ((${#packages[@]} + ${#optional[@]})); then
      say "Installing Debian packages the tests need: ${packages[*]} ${optional[*]}"
      apt-get -o DPkg::Lock::Timeout=600 update -qq
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        "${packages[@]}" "${optional[@]}" >/dev/null
    fi
    if ((pip_compose)); then
      say "Installing podman-compose from PyPI."
      # A Debian python3 refuses installs outside a virtual environment (PEP 668) unless told.
      python3 -m pip install --quiet 'podman-compose>=1.1' 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages 'podman-compose>=1.1'
    fi
    hash -r
  elif ((${#packages[@]})); then
    say "missing Debian packages: ${packages[*]} (install them: sudo apt-get install ${packages[*]})"
    exit 1
  elif ((${#optional[@]})); then
    say "no ${optional[*]}: the container image and stack tests will be skipped (sudo apt-get install ${optional[*]} runs them)."
  elif ((pip_compose)); then
    say "missing podman-compose 1.1 or newer, for the stack test (install it: pip install podman-compose)"
    exit 1
  fi
fi

if ((check_only)); then
  say "Everything the tests need is here."
  exit 0
fi

# Which test brokers already run: those stay; the ones the tests start are stopped at the end.
stop_plain=0
stop_tls=0
if [[ -z ${HR_KAFKA_BOOTSTRAP:-} ]]; then
  docker/kafka-local.sh status >/dev/null 2>&1 || stop_plain=1
fi
docker/kafka-tls.sh status >/dev/null 2>&1 || stop_tls=1
cleanup() {
  if [[ -n ${HR_KEEP_BROKER:-} ]]; then return 0; fi
  if ((stop_tls)) && docker/kafka-tls.sh status >/dev/null 2>&1; then
    say "Stopping the TLS test broker this run started (HR_KEEP_BROKER=1 keeps it)."
    docker/kafka-tls.sh down >/dev/null 2>&1 || true
  fi
  if ((stop_plain)) && docker/kafka-local.sh status >/dev/null 2>&1; then
    say "Stopping the test broker this run started (HR_KEEP_BROKER=1 keeps it)."
    docker/kafka-local.sh down >/dev/null 2>&1 || true
  fi
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
if ((status)); then
  say "FAILED (cargo exited $status): cargo's summary above names what failed."
fi
exit "$status"
