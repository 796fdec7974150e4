# hr-stream tasks. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

port := env_var_or_default("HR_KAFKA_PORT", "9092")
bootstrap := env_var_or_default("HR_BOOTSTRAP_SERVERS", "localhost:" + port)

# List the tasks.
default:
    @just --list

# Build hr-pipeline (and, with HR_KAFKA_WARMUP_JOB=1, the latency example), start a single-node Kafka (Docker Compose if an engine answers, else Kafka's jars on the local JVM, warmed up; HR_KAFKA_WARMUP_JOB=1 also runs the job in the warm-up) and create the topics.
up:
    cargo build -q -p hr-pipeline --bins
    if [ "${HR_KAFKA_WARMUP_JOB:-0}" = 1 ]; then cargo build -q --example latency; fi
    docker/kafka-local.sh up
    cargo run -q -p hr-pipeline -- topics --bootstrap {{bootstrap}}

# Stop the local Kafka.
down:
    docker/kafka-local.sh down

# Say whether the local Kafka runs, and where.
status:
    docker/kafka-local.sh status

# Show the local Kafka's log.
logs:
    docker/kafka-local.sh logs

# Stop the local Kafka and delete its data (the resolved jars are kept).
clean:
    docker/kafka-local.sh clean

# A local 3-node KRaft cluster for failover tests: `just cluster up|down|status|kill N|start N|wipe N|cut N|heal N|...`
cluster *args:
    docker/kafka-cluster.sh {{args}}

# The whole test suite: checks (as root: installs) chromium, chromium-driver, prometheus, Java and podman first, runs every test binary (`cargo test --workspace --no-fail-fast`), stops the brokers it started (HR_KEEP_BROKER=1 keeps them); extra arguments go to cargo test.
test *args:
    examples/test.sh {{args}}

# Format and lint as CI does.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The seed's hello-world check by hand: 10 messages to hello_input, transformed into hello_output.
hello:
    cargo run -q --example hello_producer -- --bootstrap {{bootstrap}}
    cargo run -q --example hello_stream_job -- --bootstrap {{bootstrap}}

# See the whole system work: broker, monitors, streaming job, live alerts, batch report (`just demo --quick`: 10 s windows, under a minute).
demo *args:
    examples/demo.sh {{args}}

# A minimal Debian bookworm base image made from Debian's packages with debootstrap (localhost/hr-debian-base:bookworm; kept once made, `--force` makes it again), for hosts without a registry.
image-base *args:
    docker/image.sh base {{args}}

# The container image localhost/hr-stream:latest (docker/Containerfile): builds the four binaries in release and copies them in (HR_BIN_DIR=target/debug uses those instead, unbuilt); podman, or docker where its engine answers.
image:
    if [[ -z "${HR_BIN_DIR:-}" ]]; then cargo build --release -p hr-pipeline -p hr-sim -p hr-batch -p hr-dashboard --bins; fi
    docker/image.sh build

# The live ward dashboard: reads the alerts (and episodes) topics and serves http://127.0.0.1:8090 (flags pass through: `just dashboard --listen 127.0.0.1:9000`, `--auth-token T`).
dashboard *args:
    cargo run -q -p hr-dashboard -- --bootstrap {{bootstrap}} {{args}}

# Streaming throughput against the real broker: preload N readings, then raw consume (in batches, and per record) vs `hr-pipeline run --bounded` exactly-once (per commit interval, e.g. `just bench 5000000 3 "100ms 200ms 1s"`, and with alert files on) and at-least-once (events/s, ratios, start-up, peak RSS; HR_BENCH_PROPS="k=v ..." for other librdkafka settings).
bench n="5000000" runs="3" intervals="200ms":
    examples/bench.sh {{n}} {{runs}} "{{intervals}}"

# Alert latency: readings produced in real time (10 k and 100 k/s), p50/p99/max from the reading that closes a window to its alert visible read_committed, at-least-once and exactly-once per commit interval.
latency seconds="20" rates="10000 100000" intervals="100ms 200ms 500ms":
    examples/latency.sh {{seconds}} "{{rates}}" "{{intervals}}"

# The long fault test on a broker of its own: 3 instances, 20 kill -9, 2 broker kill -9, churn 1->3->2->3, a zombie, during 1 M real-time readings; compared with an uninterrupted run (CHAOS_GUARANTEE=at-least-once for the other mode).
chaos:
    examples/chaos.sh

# Faults on a 3-node cluster of its own under 3 exactly-once instances, each compared with an uninterrupted run: leader kill -9, controller kill -9, a replaced machine, a rolling restart and (as root, with network namespaces) a broker and an instance cut off (`just chaos-cluster leader wipe` runs those two).
chaos-cluster *scenarios:
    examples/chaos-cluster.sh {{scenarios}}

# Rebalance stalls on a broker of its own: 12 partitions, 10 k patients in real time, 1 -> 2 -> 4 -> 3 instances, eager vs cooperative-sticky (the default) vs the KIP-848 consumer protocol (REBALANCE_MODES picks); per step the alert stall of partitions that kept their owner and the first alert and restore time of those that moved (RUNS=N repeats, in turn).
rebalance:
    examples/rebalance.sh

# Score the pipeline against the simulator's ground truth through the real broker: 200 patients, 2 simulated hours, with the defaults, tuned for speed, and on abrupt steps (`just score --check` exits 1 on a missed target).
score *args:
    examples/score.sh {{args}}
