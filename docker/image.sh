#!/usr/bin/env bash
# hr-stream's container image (docker/Containerfile), built from binaries made on the host.
#
#   docker/image.sh base [--force]   a minimal Debian bookworm base made from Debian's packages with
#                                    debootstrap, imported as localhost/hr-debian-base:bookworm
#                                    (`just image-base`; kept once made: --force makes it again)
#   docker/image.sh build            the image from the binaries in HR_BIN_DIR (`just image`)
#   docker/image.sh prometheus       localhost/hr-prometheus:local, Debian's prometheus binary on that
#                                    base: the stack's Prometheus where prom/prometheus cannot be pulled
#   docker/image.sh which            prints the container engine it uses; exit 1 (saying why) if none
#   docker/image.sh engine ARGS...   runs that engine with this host's options, e.g.
#                                    `docker/image.sh engine run --rm localhost/hr-stream hr-sim --help`
#   docker/image.sh compose ARGS...  docker compose, or podman-compose (1.1 or newer, for host
#                                    networking: PyPI's), with the same options
#   docker/image.sh compose-version  which compose it would use; exit 1 if none fits
#
# The engine is docker where its engine answers, else podman. Podman runs here with runc and the
# cgroupfs cgroup manager where there is no systemd, and with docker/containers.conf (no default
# ulimits: podman's ask for more open files than some hosts allow).
#
# Environment:
#   HR_IMAGE          the image to build (default localhost/hr-stream:latest)
#   HR_IMAGE_BASE     its base (default: localhost/hr-debian-base:bookworm if the engine has it,
#                     else debian:bookworm-slim from a registry)
#   HR_BIN_DIR        where the four binaries are (default target/release; the tests use
#                     target/debug)
#   HR_ENGINE         podman or docker, to choose
#   HR_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one apt uses, else deb.debian.org)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${HR_IMAGE:-localhost/hr-stream:latest}
local_base=localhost/hr-debian-base:bookworm
bins=(hr-pipeline hr-sim hr-batch hr-dashboard)

say() { printf 'image: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
has() { command -v "$1" >/dev/null 2>&1; }

# The engine to use, or nothing (and the reason on stderr).
choose_engine() {
  case ${HR_ENGINE:-} in
    podman | docker) printf '%s' "$HR_ENGINE"; return ;;
    "") ;;
    *) die "HR_ENGINE must be podman or docker, not '$HR_ENGINE'." ;;
  esac
  if has docker && docker info >/dev/null 2>&1; then
    printf docker
  elif has podman && podman_opts && podman "${opts[@]}" info >/dev/null 2>&1; then
    printf podman
  elif has podman; then
    say "podman is installed but 'podman info' fails here: $(podman info 2>&1 | tail -n 1)"
  else
    say "neither podman nor a Docker engine is available (apt-get install podman)."
  fi
}

# Global podman options for this host, in $opts; CONTAINERS_CONF for its ulimits.
podman_opts() {
  opts=()
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/docker/containers.conf}
  if has runc; then opts+=(--runtime runc); fi
  if [[ ! -d /run/systemd/system ]]; then opts+=(--cgroup-manager cgroupfs); fi
}

engine() {
  local e
  e=$(choose_engine)
  [[ -n $e ]] || exit 1
  if [[ $e == podman ]]; then
    podman_opts
    podman "${opts[@]}" "$@"
  else
    docker "$@"
  fi
}

cmd_which() {
  local e
  e=$(choose_engine)
  [[ -n $e ]] || exit 1
  printf '%s\n' "$e"
}

# podman-compose as a command (PyPI's module first: a Debian one may shadow it on PATH), if it is
# 1.1 or newer; in $compose.
find_podman_compose() {
  local candidate version
  for candidate in "python3 -m podman_compose" podman-compose; do
    version=$($candidate --version 2>/dev/null | sed -n 's/^podman-compose version \([0-9.]*\).*/\1/p')
    [[ -n $version ]] || continue
    # 1.0.x gives host-networked services a bridge network as well (the last flag wins).
    if [[ $(printf '%s\n1.1\n' "$version" | sort -V | head -n 1) == 1.1 ]]; then
      read -ra compose <<<"$candidate"
      return 0
    fi
  done
  return 1
}

cmd_compose() {
  local e
  e=$(choose_engine)
  [[ -n $e ]] || exit 1
  if [[ $e == docker ]]; then
    docker compose "$@"
  else
    find_podman_compose || die "podman-compose 1.1 or newer is needed for the stack (pip install podman-compose)."
    podman_opts
    "${compose[@]}" --podman-args "${opts[*]}" "$@"
  fi
}

cmd_compose_version() {
  local e
  e=$(choose_engine)
  [[ -n $e ]] || exit 1
  if [[ $e == docker ]]; then
    docker compose version
  else
    find_podman_compose || die "podman-compose 1.1 or newer is needed for the stack (pip install podman-compose)."
    "${compose[@]}" --version | head -n 1
  fi
}

mirror() {
  if [[ -n ${HR_DEBIAN_MIRROR:-} ]]; then printf '%s' "$HR_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
    grep -oE 'https?://[^ ]+' | head -n 1 || true)
  printf '%s' "${uri:-http://deb.debian.org/debian}"
}

cmd_base() {
  local e
  e=$(choose_engine)
  [[ -n $e ]] || exit 1
  if [[ ${1:-} != --force ]] && engine image inspect "$local_base" >/dev/null 2>&1; then
    say "$local_base is there already (--force makes it again)."
    return 0
  fi
  [[ $(id -u) == 0 ]] || die "debootstrap needs root: run 'sudo just image-base'."
  if ! has debootstrap; then
    has apt-get || die "debootstrap is needed to make the base image (apt-get install debootstrap)."
    say "Installing debootstrap."
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
  fi
  local started out
  # Global: the EXIT trap runs after this function has returned.
  root=$(mktemp -d /var/tmp/hr-debian-base.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  started=$(date +%s)
  say "debootstrap: Debian bookworm (minbase, with libssl3 and ca-certificates) from $(mirror) into $root ..."
  debootstrap --variant=minbase --include=libssl3,ca-certificates bookworm "$root" "$(mirror)" >"$root.log" 2>&1 ||
    { tail -n 20 "$root.log" >&2; die "debootstrap failed (log above, $root.log)."; }
  rm -f "$root.log"
  # What a runtime image never reads: package caches and lists, documentation, translations.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*.log
  out=$(tar --numeric-owner -C "$root" -c . | engine import --change 'CMD ["bash"]' - "$local_base" 2>&1) ||
    { printf '%s\n' "$out" >&2; die "Importing the base image failed."; }
  say "$local_base made in $(($(date +%s) - started)) s ($(engine image inspect --format '{{.Size}}' "$local_base" | numfmt --to=si)B)."
}

cmd_build() {
  local e bin_dir base b started
  e=$(choose_engine)
  [[ -n $e ]] || exit 1
  bin_dir=${HR_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}
  for b in "${bins[@]}"; do
    [[ -x $bin_dir/$b ]] || die "$bin_dir/$b not found: build the binaries first (just image does, in release)."
  done
  if [[ -n ${HR_IMAGE_BASE:-} ]]; then
    base=$HR_IMAGE_BASE
  elif engine image inspect "$local_base" >/dev/null 2>&1; then
    base=$local_base
  else
    base=debian:bookworm-slim
  fi
  # Global: the EXIT trap runs after this function has returned.
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  mkdir "$ctx/bin"
  for b in "${bins[@]}"; do
    cp "$bin_dir/$b" "$ctx/bin/"
    # Line tables are dropped, symbols kept: backtraces still name their functions.
    if has strip; then strip --strip-debug "$ctx/bin/$b" 2>/dev/null || true; fi
  done
  cp "$repo/docker/hr-healthcheck" "$ctx/"
  started=$(date +%s)
  say "Building $image ($e) from $bin_dir on $base."
  local format=()
  # HEALTHCHECK is kept only in the docker image format.
  [[ $e == podman ]] && format=(--format docker)
  local before after
  before=$(engine image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  engine build "${format[@]}" --build-arg "BASE=$base" -t "$image" -f "$repo/docker/Containerfile" "$ctx" >&2 ||
    die "Building the image failed (see above); with no registry here, 'just image-base' makes a local base."
  after=$(engine image inspect --format '{{.Id}}' "$image")
  # The image this one replaces goes, unless a container still uses it.
  if [[ -n $before && $before != "$after" ]]; then engine image rm "$before" >/dev/null 2>&1 || true; fi
  say "$image built in $(($(date +%s) - started)) s: $(engine image inspect --format '{{.Size}}' "$image" | numfmt --to=si)B."
}

# Prometheus from the host's Debian package (a Go binary that needs only libc), laid out as the
# official image is: `prometheus` as entrypoint, /prometheus for its data, run as nobody.
cmd_prometheus() {
  local e bin
  e=$(choose_engine)
  [[ -n $e ]] || exit 1
  bin=$(command -v prometheus) || die "prometheus not found (apt-get install prometheus)."
  engine image inspect "$local_base" >/dev/null 2>&1 || cmd_base
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$bin" "$ctx/prometheus"
  cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $local_base
COPY prometheus /usr/bin/prometheus
RUN mkdir /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
CONTAINERFILE
  engine build -q -t localhost/hr-prometheus:local -f "$ctx/Containerfile" "$ctx" >/dev/null ||
    die "Building localhost/hr-prometheus:local failed."
  say "localhost/hr-prometheus:local built from $bin."
}

case ${1:-} in
  base) shift && cmd_base "$@" ;;
  prometheus) cmd_prometheus ;;
  build) cmd_build ;;
  which) cmd_which ;;
  engine) shift && engine "$@" ;;
  compose) shift && cmd_compose "$@" ;;
  compose-version) cmd_compose_version ;;
  *) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2 && exit 2 ;;
esac
