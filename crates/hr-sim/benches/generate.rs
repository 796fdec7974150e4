//! Records generated per second, against the seed script's approach as the baseline.
//!
//! `seed_style` is what the seed's producer did per message: draw a reading for a patient,
//! stamp it with the wall clock and serialise a fresh JSON string. The simulation rows do more
//! per record (drift, episodes, faults) into reused buffers; the ratio says what that costs or
//! saves.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hr_sim::{EpisodeConfig, FaultConfig, SimConfig, Simulation, generate_heart_rate_event};

fn config(faults: FaultConfig) -> SimConfig {
    SimConfig {
        patients: 1000,
        rate_per_sec: 1000.0,
        episodes: EpisodeConfig {
            rate_per_hour: 2.0,
            ..EpisodeConfig::default()
        },
        faults,
        ..SimConfig::default()
    }
}

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(1));

    let ids: Vec<String> = (0..1000).map(hr_sim::patient_id).collect();
    let mut i = 0;
    group.bench_function("seed_style", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(generate_heart_rate_event(&ids[i]).to_json())
        })
    });

    let mut sim = Simulation::new(config(FaultConfig::default())).unwrap();
    group.bench_function("simulation", |b| {
        b.iter(|| black_box(sim.next_record().map(|r| r.payload.len())))
    });

    let mut sim = Simulation::new(config(FaultConfig {
        out_of_order: 0.02,
        late: 0.01,
        malformed: 0.01,
        duplicate: 0.01,
        silence_rate_per_hour: 1.0,
        ..FaultConfig::default()
    }))
    .unwrap();
    group.bench_function("simulation_all_faults", |b| {
        b.iter(|| black_box(sim.next_record().map(|r| r.payload.len())))
    });
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
