//! Faults on a replicated 3-node KRaft cluster: the short form of `just chaos-cluster`
//! (`examples/chaos-cluster.sh`). Three instances, exactly-once, readings in real time; the broker
//! leading the most input and changelog partitions is killed -9 and restarted, and, where network
//! namespaces are available (root), one instance is cut off from the cluster while it runs on. Each
//! faulted run's alerts, episodes, dead letters, late records and alert files must equal an
//! uninterrupted run's, window by window, and no instance may exit by itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where this build's binaries are: the test runs from `<target>/debug/deps`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

/// Whether this machine can give each node its own network namespace (root and `ip netns`).
fn netns_possible() -> bool {
    let probe = format!("hr-probe-test-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    }
    ok
}

#[test]
fn a_leader_killed_and_an_instance_cut_off_change_no_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = bin_dir();
    for b in ["hr-pipeline", "hr-sim", "examples/latency"] {
        assert!(
            bin.join(b).exists(),
            "{} is not built (cargo test --workspace builds it)",
            bin.join(b).display()
        );
    }
    let mut scenarios = vec!["leader"];
    if netns_possible() {
        scenarios.push("cut-instance");
    } else {
        eprintln!(
            "cluster: no network namespaces here (they need root and iproute2): the instance cut \
             is left to `just chaos-cluster` on a machine that has them"
        );
    }
    let out = Command::new("bash")
        .arg(root.join("examples/chaos-cluster.sh"))
        .args(&scenarios)
        .current_dir(root)
        .env("HR_BIN_DIR", &bin)
        .env("CHAOS_READINGS", "90000")
        .env("CHAOS_RATE", "3000")
        .env("CHAOS_OUTAGE", "20")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chaos-cluster failed\n{stdout}\n{stderr}"
    );
    for s in &scenarios {
        let table = stdout
            .split("== ")
            .find(|t| t.starts_with(s))
            .unwrap_or_else(|| panic!("no table for {s}:\n{stdout}"));
        assert!(table.contains("discrepancies=0"), "{s}:\n{table}");
        assert!(
            table.contains("instances that exited by themselves: 0"),
            "{s}:\n{table}"
        );
        // Topics made by `hr-pipeline topics` and `run` took the cluster's replication factor.
        let replication = table
            .lines()
            .find(|l| l.starts_with("replication: "))
            .unwrap_or_else(|| panic!("{s}:\n{table}"));
        assert_eq!(
            replication.matches(": 3 replicas").count(),
            3,
            "input, changelog and alerts have 3 replicas: {replication}"
        );
        // Every alert of the uninterrupted run is there: the baseline is not empty.
        let alerts = table
            .lines()
            .find(|l| l.starts_with("alerts "))
            .unwrap_or_else(|| panic!("{s}:\n{table}"));
        let baseline: u64 = alerts.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(baseline > 10_000, "{s}: {alerts}");
    }
    eprintln!("{stdout}");
}
