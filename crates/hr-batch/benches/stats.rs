//! The alert report over generated alerts (10 M by default, `HR_BATCH_BENCH_ALERTS` to change):
//! from a JSONL directory, from Parquet, and the aggregation alone on a frame in memory, next
//! to two baselines: the same report as one plain Polars lazy plan (sort by revision, unique
//! windows, group-by on the string columns) on the same frame, and plain Rust (serde +
//! HashMap) over the same JSONL files.
//!
//! Whole-process seconds and peak memory for 10 M alerts: `benches/stats_10m.sh`.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use hr_batch::{DataFrame, GenerateSpec, OutputFormat, ReadOptions};

fn alerts_count() -> u64 {
    std::env::var("HR_BATCH_BENCH_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

fn write_jsonl(dir: &Path, spec: GenerateSpec, files: u64) {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).unwrap();
    let per_file = spec.alerts.div_ceil(files);
    let mut alerts = hr_batch::generate_alerts(spec).peekable();
    let mut i = 0;
    while alerts.peek().is_some() {
        let f = std::fs::File::create(dir.join(format!("alerts-{i:04}.jsonl"))).unwrap();
        let mut w = std::io::BufWriter::new(f);
        for a in alerts.by_ref().take(per_file as usize) {
            writeln!(w, "{}", a.to_json()).unwrap();
        }
        i += 1;
    }
}

/// Straightforward Rust: parse every line into an `Alert`, keep the latest revision per
/// window in a HashMap, count per patient and type.
fn baseline(dir: &Path) -> usize {
    let mut latest: HashMap<(String, i64, i64), hr_model::Alert> = HashMap::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let r = std::io::BufReader::new(std::fs::File::open(f).unwrap());
        for line in r.lines() {
            let a: hr_model::Alert = serde_json::from_str(&line.unwrap()).unwrap();
            let key = (a.patient_id.clone(), a.window_start, a.window_end);
            match latest.get(&key) {
                Some(b) if b.revision >= a.revision => {}
                _ => {
                    latest.insert(key, a);
                }
            }
        }
    }
    let mut counts: HashMap<(String, &'static str), u64> = HashMap::new();
    for a in latest.into_values() {
        *counts
            .entry((a.patient_id, a.alert_type.as_str()))
            .or_default() += 1;
    }
    counts.len()
}

/// The report as one lazy plan of Polars built-ins, the way it reads in a notebook.
fn plain_plan(alerts: DataFrame) -> DataFrame {
    hr_batch::alert_stats_plain(alerts).unwrap()
}

fn bench(c: &mut Criterion) {
    let spec = GenerateSpec {
        alerts: alerts_count(),
        ..GenerateSpec::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("alerts");
    write_jsonl(&jsonl, spec, 8);
    let mut frame = hr_batch::alerts_frame(hr_batch::generate_alerts(spec)).unwrap();
    let parquet = dir.path().join("alerts.parquet");
    hr_batch::write_table(&mut frame, &parquet, OutputFormat::Parquet).unwrap();
    let out = dir.path().join("stats");

    let mut g = c.benchmark_group(format!("stats_{}_alerts", spec.alerts));
    g.sample_size(10);
    g.bench_function("jsonl_dir", |b| {
        b.iter(|| {
            hr_batch::run_stats(&jsonl, &out, OutputFormat::Parquet, ReadOptions::default())
                .unwrap()
        })
    });
    g.bench_function("parquet", |b| {
        b.iter(|| {
            hr_batch::run_stats(
                &parquet,
                &out,
                OutputFormat::Parquet,
                ReadOptions::default(),
            )
            .unwrap()
        })
    });
    g.bench_function("aggregate_in_memory", |b| {
        b.iter(|| hr_batch::alert_stats(frame.clone()).unwrap())
    });
    g.bench_function("aggregate_in_memory_plain_polars_plan", |b| {
        b.iter(|| plain_plan(frame.clone()))
    });
    g.bench_function("baseline_serde_hashmap_jsonl", |b| {
        b.iter(|| baseline(&jsonl))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
